/**
 * `npm run bench:kernels`: micro-benchmark of every kernel difflab adds to or
 * replaces in tfjs-backend-wasm (src/core/backend/kernels/), against the
 * obvious alternatives on wasm and, on smaller shapes where its ~1 GFLOP/s
 * allows, the pure-JS cpu backend. Shapes: ENGINE-FACTS's conv layer (batch
 * 32, 28x28, 64->64, 3x3) and a DiffWave-style dilated conv1d ([16, 8000, 64],
 * kernel 3, dilation 8). One timed process, single-threaded wasm.
 *
 * Each row: 1 warm-up call, then the median of timed calls (at least 2, more
 * while under ~1.5 s in total). GFLOP/s counts the useful multiply-adds of the
 * operation (2 per MAC), so wasted work in an approach shows up as a lower
 * rate. Writes bench/results/kernels.json.
 *
 * Flags: --skip-cpu, --skip-slow (drops alternatives that take seconds),
 * --out FILE.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../src/core/backend/select.js';
import { zeroInsertFilter } from '../src/core/backend/kernels/conv-gradients.js';
import { getOriginalConv2DBackpropInput, inputGradOptions } from '../src/core/backend/kernels/conv2d-backprop-input.js';
import { Rng } from '../src/core/random.js';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const outArg = args.indexOf('--out');
const here = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(outArg >= 0 && args[outArg + 1] ? args[outArg + 1]! : resolve(here, 'results/kernels.json'));
const SKIP_CPU = flag('--skip-cpu');
const SKIP_SLOW = flag('--skip-slow');

interface Row {
  readonly kernel: string;
  readonly shape: string;
  readonly impl: string;
  readonly backend: 'wasm' | 'cpu';
  readonly ms: number;
  readonly gflops: number | null;
  readonly runs: number;
  /** Speed relative to difflab's kernel on the same shape (>1: difflab faster). */
  speedupOfDifflab?: number;
}

const rows: Row[] = [];

function randn(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  return tf.tensor(v, shape);
}

/** Median wall time of fn (its result is read back, then disposed). */
function time(fn: () => tf.Tensor, budgetMs = 1500, maxRuns = 7): { ms: number; runs: number } {
  tf.tidy(() => fn().dataSync()); // warm-up: XNNPACK operator creation, heap growth
  const times: number[] = [];
  let total = 0;
  while (times.length < 2 || (total < budgetMs && times.length < maxRuns)) {
    const t0 = performance.now();
    tf.tidy(() => fn().dataSync());
    const dt = performance.now() - t0;
    times.push(dt);
    total += dt;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, runs: times.length };
}

function record(kernel: string, shape: string, impl: string, backend: 'wasm' | 'cpu', flops: number | null, fn: () => tf.Tensor, budgetMs?: number): Row {
  const { ms, runs } = time(fn, budgetMs, backend === 'cpu' ? 2 : 7);
  const row: Row = { kernel, shape, impl, backend, ms, gflops: flops === null ? null : flops / ms / 1e6, runs };
  rows.push(row);
  const rate = row.gflops === null ? '' : `${row.gflops.toFixed(1)} GFLOP/s`;
  console.log(`  ${impl.padEnd(58)} ${ms.toFixed(1).padStart(9)} ms  ${rate}`);
  return row;
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>) =>
  tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;

/** Runs tfjs-backend-wasm's own Conv2DBackpropInput (difflab replaced it in the registry). */
function originalConv2DBackpropInput(inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): tf.Tensor {
  const fn = getOriginalConv2DBackpropInput();
  if (!fn) throw new Error('original wasm Conv2DBackpropInput not captured');
  const info = fn({ inputs, attrs: attrs as unknown as tf.NamedAttrMap, backend: tf.backend() }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** im2col (taps as slices of padded x, concatenated) then matMul(cols^T, dy). */
function im2colFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, dilation: number, transposeFirst: boolean): tf.Tensor {
  const [b, h, w, ci] = x.shape;
  const [, oh, ow, co] = dy.shape;
  const half = ((k - 1) * dilation) >> 1;
  const padded = tf.pad(x, [[0, 0], [half, half], [half, half], [0, 0]]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) taps.push(tf.slice(padded, [0, i * dilation, j * dilation, 0], [b, oh, ow, ci]));
  const cols = tf.reshape(tf.concat(taps, 3), [b * oh * ow, k * k * ci]);
  const dy2 = tf.reshape(dy, [b * oh * ow, co]);
  const g = transposeFirst ? tf.matMul(tf.transpose(cols), dy2) : tf.matMul(cols, dy2, true, false);
  void h;
  void w;
  return tf.reshape(g, [k, k, ci, co]);
}

/** The same for a 1-D conv ([B, L, C], kernel k, dilation d, 'same'). */
function im2col1dFilterGrad(x: tf.Tensor3D, dy: tf.Tensor3D, k: number, dilation: number): tf.Tensor {
  const [b, l, ci] = x.shape;
  const co = dy.shape[2];
  const half = ((k - 1) * dilation) >> 1;
  const padded = tf.pad(x, [[0, 0], [half, half], [0, 0]]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < k; i++) taps.push(tf.slice(padded, [0, i * dilation, 0], [b, l, ci]));
  const cols = tf.reshape(tf.concat(taps, 2), [b * l, k * ci]);
  return tf.reshape(tf.matMul(tf.transpose(cols), tf.reshape(dy, [b * l, co])), [1, k, ci, co]);
}

/** Depthwise filter gradient from per-tap slices: sum(x_tap * dy) over b, h, w. */
function slicesDepthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number): tf.Tensor {
  const [b, , , c] = x.shape;
  const [, oh, ow] = dy.shape;
  const half = (k - 1) >> 1;
  const padded = tf.pad(x, [[0, 0], [half, half], [half, half], [0, 0]]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) taps.push(tf.sum(tf.mul(tf.slice(padded, [0, i, j, 0], [b, oh, ow, c]), dy), [0, 1, 2]));
  return tf.reshape(tf.stack(taps), [k, k, c, 1]);
}

/** Depthwise input gradient from per-tap slices of padded dy times the flipped taps. */
function slicesDepthwiseInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor {
  const [b, h, w, c] = dy.shape;
  const k = filter.shape[0];
  const half = (k - 1) >> 1;
  const padded = tf.pad(dy, [[0, 0], [half, half], [half, half], [0, 0]]);
  let acc: tf.Tensor = tf.zeros([b, h, w, c]);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) {
      const tap = tf.reshape(tf.slice(filter, [k - 1 - i, k - 1 - j, 0, 0], [1, 1, c, 1]), [c]);
      acc = tf.add(acc, tf.mul(tf.slice(padded, [0, i, j, 0], [b, h, w, c]), tap));
    }
  return acc;
}

async function main(): Promise<void> {
  await useBackend('wasm');
  console.log(`difflab wasm kernel benchmark (${cpus()[0]?.model ?? 'cpu'}, load ${loadavg()[0]!.toFixed(2)})\n`);

  // ---- ENGINE-FACTS conv layer: batch 32, 28x28, 64 -> 64, 3x3 'same'.
  const B = 32;
  const S = 28;
  const C = 64;
  const conv = 2 * B * S * S * C * C * 9;
  const shape = '[32,28,28,64] 3x3 64->64 same';
  const x = randn([B, S, S, C], 1) as tf.Tensor4D;
  const w = randn([3, 3, C, C], 2) as tf.Tensor4D;
  const dy = randn([B, S, S, C], 3) as tf.Tensor4D;
  const filterAttrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, C, C] };
  const inputAttrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [B, S, S, C] };

  console.log(`reference: Conv2D forward ${shape}`);
  record('Conv2D (reference)', shape, 'wasm conv2d forward (XNNPACK)', 'wasm', conv, () => tf.conv2d(x, w, 1, 'same'));

  console.log(`\nConv2DBackpropFilter ${shape}`);
  const f1 = record('Conv2DBackpropFilter', shape, 'difflab: one Conv2D of [C,H,W,B] * [H,W,B,Co]', 'wasm', conv, () => run(tf.Conv2DBackpropFilter, { x, dy }, filterAttrs));
  const alts: Row[] = [];
  alts.push(record('Conv2DBackpropFilter', shape, 'im2col (9 slices + concat) + matMul(transposeA)', 'wasm', conv, () => im2colFilterGrad(x, dy, 3, 1, false)));
  alts.push(record('Conv2DBackpropFilter', shape, 'im2col + transpose + matMul', 'wasm', conv, () => im2colFilterGrad(x, dy, 3, 1, true)));
  for (const r of alts) r.speedupOfDifflab = r.ms / f1.ms;

  console.log(`\nConv2DBackpropInput stride 1 ${shape}`);
  const i1 = record('Conv2DBackpropInput', shape, 'difflab: Conv2D of dy with flipped, transposed filter', 'wasm', conv, () => run(tf.Conv2DBackpropInput, { dy, filter: w }, inputAttrs));
  const o1 = record('Conv2DBackpropInput', shape, 'tfjs-backend-wasm Conv2DBackpropInput (replaced)', 'wasm', conv, () =>
    originalConv2DBackpropInput({ dy, filter: w }, inputAttrs),
  );
  o1.speedupOfDifflab = o1.ms / i1.ms;

  // Stride 2: 28x28 -> 14x14 (a UNet downsampling conv).
  const shape2 = '[32,28,28,64] 3x3 64->64 stride 2 same';
  const conv2 = conv / 4;
  const dy2 = randn([B, S / 2, S / 2, C], 4) as tf.Tensor4D;
  const inputAttrs2 = { ...inputAttrs, strides: 2 };
  console.log(`\nConv2DBackpropInput ${shape2}`);
  const i2 = record('Conv2DBackpropInput', shape2, 'difflab: stride-phase Conv2D + DepthToSpace', 'wasm', conv2, () => run(tf.Conv2DBackpropInput, { dy: dy2, filter: w }, inputAttrs2));
  inputGradOptions.stridedStrategy = 'upsample';
  const u2 = record('Conv2DBackpropInput', shape2, 'Conv2D of zero-upsampled dy (PadV2), flipped filter', 'wasm', conv2, () =>
    run(tf.Conv2DBackpropInput, { dy: dy2, filter: w }, inputAttrs2),
  );
  inputGradOptions.stridedStrategy = 'phase';
  u2.speedupOfDifflab = u2.ms / i2.ms;
  const o2 = record('Conv2DBackpropInput', shape2, 'tfjs-backend-wasm Conv2DBackpropInput (replaced)', 'wasm', conv2, () => originalConv2DBackpropInput({ dy: dy2, filter: w }, inputAttrs2));
  o2.speedupOfDifflab = o2.ms / i2.ms;
  console.log(`\nConv2DBackpropFilter ${shape2}`);
  const f2 = record('Conv2DBackpropFilter', shape2, 'difflab: one Conv2D (dilation = stride)', 'wasm', conv2, () => run(tf.Conv2DBackpropFilter, { x, dy: dy2 }, { ...filterAttrs, strides: 2 }));
  void f2;

  // ---- DiffWave-style dilated conv1d: [16, 8000, 64], kernel 3, dilation 8, 'same'.
  const L = 8000;
  const B1 = 16;
  const D = 8;
  const shape1d = '[16,8000,64] k3 64->64 dilation 8 same';
  const conv1d = 2 * B1 * L * C * C * 3;
  const x1 = randn([B1, L, C], 5) as tf.Tensor3D;
  const w1 = randn([3, C, C], 6) as tf.Tensor3D;
  const dy1 = randn([B1, L, C], 7) as tf.Tensor3D;
  const x14 = tf.reshape(x1, [B1, 1, L, C]) as tf.Tensor4D;
  const dy14 = tf.reshape(dy1, [B1, 1, L, C]) as tf.Tensor4D;
  const w14 = tf.reshape(w1, [1, 3, C, C]) as tf.Tensor4D;
  console.log(`\ndilated conv1d ${shape1d}`);
  record('Conv2D (reference)', shape1d, 'wasm conv1d forward (XNNPACK, dilated)', 'wasm', conv1d, () => tf.conv1d(x1, w1, 1, 'same', 'NWC', D));
  const fd = record('Conv2DBackpropFilter', shape1d, 'difflab: one Conv2D (stride = dilation)', 'wasm', conv1d, () =>
    run(tf.Conv2DBackpropFilter, { x: x14, dy: dy14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: [1, D], filterShape: [1, 3, C, C] }),
  );
  const effW = 2 * D + 1;
  const fdAlt: Row[] = [];
  fdAlt.push(
    record('Conv2DBackpropFilter', shape1d, `zero-inserted ${effW}-tap filter, undilated kernel, every ${D}th tap`, 'wasm', conv1d, () => {
      const g = run(tf.Conv2DBackpropFilter, { x: x14, dy: dy14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [1, effW, C, C] });
      return tf.stridedSlice(g, [0, 0, 0, 0], [1, effW, C, C], [1, D, 1, 1]);
    }),
  );
  fdAlt.push(record('Conv2DBackpropFilter', shape1d, 'im2col (3 slices + concat) + transpose + matMul', 'wasm', conv1d, () => im2col1dFilterGrad(x1, dy1, 3, D)));
  for (const r of fdAlt) r.speedupOfDifflab = r.ms / fd.ms;
  const id = record('Conv2DBackpropInput', shape1d, 'difflab: Conv2D of dy, flipped filter, dilated', 'wasm', conv1d, () =>
    run(tf.Conv2DBackpropInput, { dy: dy14, filter: w14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: [1, D], inputShape: [B1, 1, L, C] }),
  );
  if (!SKIP_SLOW) {
    const alt = record('Conv2DBackpropInput', shape1d, `tfjs-backend-wasm kernel on the zero-inserted ${effW}-tap filter`, 'wasm', conv1d, () =>
      originalConv2DBackpropInput(
        { dy: dy14, filter: zeroInsertFilter(w14, 1, D) },
        { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [B1, 1, L, C] },
      ),
      0,
    );
    alt.speedupOfDifflab = alt.ms / id.ms;
  }

  // ---- Depthwise 3x3 on the conv layer's activations.
  const dshape = '[32,28,28,64] depthwise 3x3 same';
  const dconv = 2 * B * S * S * C * 9;
  const dwf = randn([3, 3, C, 1], 8) as tf.Tensor4D;
  console.log(`\ndepthwise ${dshape}`);
  record('DepthwiseConv2dNative (reference)', dshape, 'wasm depthwiseConv2d forward', 'wasm', dconv, () => tf.depthwiseConv2d(x, dwf, 1, 'same'));
  const dfa = { strides: 1, pad: 'same', dilations: [1, 1], filterShape: [3, 3, C, 1] };
  const dff = record('DepthwiseConv2dNativeBackpropFilter', dshape, 'difflab: one depthwise conv (batch folded into channels) + Sum', 'wasm', dconv, () =>
    run(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, dfa),
  );
  const dffAlt = record('DepthwiseConv2dNativeBackpropFilter', dshape, '9 tap slices * dy, summed', 'wasm', dconv, () => slicesDepthwiseFilterGrad(x, dy, 3));
  dffAlt.speedupOfDifflab = dffAlt.ms / dff.ms;
  const dia = { strides: 1, pad: 'same', dilations: [1, 1], inputShape: [B, S, S, C] };
  const dfi = record('DepthwiseConv2dNativeBackpropInput', dshape, 'difflab: depthwise conv of dy with flipped filter', 'wasm', dconv, () =>
    run(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: dwf }, dia),
  );
  const dfiAlt = record('DepthwiseConv2dNativeBackpropInput', dshape, '9 tap slices of padded dy * flipped taps, added', 'wasm', dconv, () => slicesDepthwiseInputGrad(dy, dwf));
  dfiAlt.speedupOfDifflab = dfiAlt.ms / dfi.ms;

  // ---- UnsortedSegmentSum as tf.gather's gradient: 4096 lookups of 256-wide rows in a 1000-row table.
  const N = 4096;
  const E = 256;
  const V = 1000;
  const sshape = `x [${N},${E}], ${V} segments`;
  const ids = tf.tensor1d(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), 'int32');
  const vals = randn([N, E], 9);
  console.log(`\nUnsortedSegmentSum ${sshape}`);
  const us = record('UnsortedSegmentSum', sshape, 'difflab: one ScatterNd (+ id range check)', 'wasm', null, () => tf.unsortedSegmentSum(vals, ids, V));
  const oneHotT = record('UnsortedSegmentSum', sshape, 'one-hot [N,V] + matMul(transposeA)', 'wasm', 2 * N * V * E, () =>
    tf.matMul(tf.oneHot(ids, V), vals, true, false),
  );
  oneHotT.speedupOfDifflab = oneHotT.ms / us.ms;
  const oneHot = record('UnsortedSegmentSum', sshape, 'one-hot built as [V,N] (transpose) + matMul', 'wasm', 2 * N * V * E, () =>
    tf.matMul(tf.transpose(tf.oneHot(ids, V)), vals),
  );
  oneHot.speedupOfDifflab = oneHot.ms / us.ms;
  const gshape = `gather grad: table [${V},${E}], ${N} ids`;
  const table = randn([V, E], 10);
  record('GatherV2 gradient', gshape, 'tf.grad of gather (transposes + UnsortedSegmentSum)', 'wasm', null, () =>
    tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, ids)))(table),
  );

  // ---- cpu backend, on smaller shapes (it runs about 1 GFLOP/s).
  if (!SKIP_CPU) {
    await useBackend('cpu');
    const b = 4;
    const cshape = '[4,28,28,64] 3x3 64->64 same';
    const cconv = (conv / B) * b;
    const cx = randn([b, S, S, C], 11) as tf.Tensor4D;
    const cdy = randn([b, S, S, C], 12) as tf.Tensor4D;
    const cw = randn([3, 3, C, C], 13) as tf.Tensor4D;
    console.log(`\ncpu backend (batch ${b}) ${cshape}`);
    record('Conv2DBackpropFilter', cshape, 'cpu backend', 'cpu', cconv, () => run(tf.Conv2DBackpropFilter, { x: cx, dy: cdy }, filterAttrs), 0);
    record('Conv2DBackpropInput', cshape, 'cpu backend', 'cpu', cconv, () => run(tf.Conv2DBackpropInput, { dy: cdy, filter: cw }, { ...inputAttrs, inputShape: [b, S, S, C] }), 0);
    const cdw = randn([3, 3, C, 1], 14) as tf.Tensor4D;
    const cdconv = (dconv / B) * b;
    record('DepthwiseConv2dNativeBackpropFilter', `[4,28,28,64] depthwise 3x3 same`, 'cpu backend', 'cpu', cdconv, () =>
      run(tf.DepthwiseConv2dNativeBackpropFilter, { x: cx, dy: cdy }, dfa), 0);
    record('DepthwiseConv2dNativeBackpropInput', `[4,28,28,64] depthwise 3x3 same`, 'cpu backend', 'cpu', cdconv, () =>
      run(tf.DepthwiseConv2dNativeBackpropInput, { dy: cdy, filter: cdw }, { ...dia, inputShape: [b, S, S, C] }), 0);
    const small = () => ({ ids: tf.tensor1d(Int32Array.from({ length: 512 }, (_, i) => (i * 7919) % 100), 'int32'), x: randn([512, 256], 15) });
    const onCpu = small();
    record('UnsortedSegmentSum', 'x [512,256], 100 segments', 'cpu backend (one mask pass per segment)', 'cpu', null, () =>
      tf.unsortedSegmentSum(onCpu.x, onCpu.ids, 100), 0);
    await useBackend('wasm');
    const onWasm = small();
    record('UnsortedSegmentSum', 'x [512,256], 100 segments', 'difflab wasm (same shape as the cpu row)', 'wasm', null, () =>
      tf.unsortedSegmentSum(onWasm.x, onWasm.ids, 100));
  }

  printTable();
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(
    OUT,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadavg: loadavg() },
        tfjs: tf.version_core,
        note: 'single-threaded wasm; median ms; gflops = useful 2*MACs / time; speedupOfDifflab = alternative ms / difflab ms',
        rows,
      },
      null,
      2,
    ),
  );
  console.log(`\nwrote ${OUT}`);
}

function printTable(): void {
  console.log('\n| kernel | shape | implementation | backend | ms | GFLOP/s | difflab speedup |');
  console.log('| --- | --- | --- | --- | ---: | ---: | ---: |');
  for (const r of rows) {
    const g = r.gflops === null ? '–' : r.gflops.toFixed(1);
    const s = r.speedupOfDifflab === undefined ? '' : `${r.speedupOfDifflab.toFixed(1)}x`;
    console.log(`| ${r.kernel} | ${r.shape} | ${r.impl} | ${r.backend} | ${r.ms.toFixed(1)} | ${g} | ${s} |`);
  }
}

await main();
