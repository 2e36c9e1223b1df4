/**
 * `npm run bench:kernels`: micro-benchmark of every kernel difflab adds to or
 * replaces in tfjs-backend-wasm (src/core/backend/kernels/), against the
 * obvious alternatives on wasm and, on smaller shapes where its ~1 GFLOP/s
 * allows, the pure-JS cpu backend. Shapes: ENGINE-FACTS's conv layer (batch
 * 32, 28x28, 64->64, 3x3) and a DiffWave-style dilated conv1d ([16, 8000, 64],
 * kernel 3, dilation 8). One timed process, single-threaded wasm.
 *
 * The implementations of one operation are timed in interleaved rounds after
 * a warm-up call each; a row reports the fastest call (the cores are shared,
 * so the minimum is the least disturbed figure) and the median. GFLOP/s counts
 * the useful multiply-adds of the operation (2 per MAC), so wasted work in an
 * approach shows up as a lower rate. Writes bench/results/kernels.json.
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
  /** Fastest timed call: the least disturbed by other processes on the shared cores. */
  readonly ms: number;
  readonly medianMs: number;
  readonly gflops: number | null;
  readonly runs: number;
  /** Alternative's time / difflab's time on the same shape (>1: difflab faster). */
  readonly speedupOfDifflab: number | null;
}

const rows: Row[] = [];

function randn(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  return tf.tensor(v, shape);
}

interface Impl {
  readonly impl: string;
  readonly fn: () => tf.Tensor;
  /** Marks difflab's kernel: the others' speedups are relative to it. */
  readonly ours?: boolean;
  /** A related operation shown for scale (e.g. the forward conv), not an alternative. */
  readonly reference?: boolean;
  /** Extra setup around each call (e.g. switching a strategy), not timed separately. */
  readonly around?: (call: () => void) => void;
}

/**
 * One timed call. wasm and cpu kernels run synchronously inside the call, so
 * no read-back is needed; reading big outputs back (dataSync) would time the
 * copy into fresh JS memory instead, which page-faults slowly on this VM
 * (measured: ~100 ms per 800 KB under load, more than the conv itself).
 */
function timeOnce(impl: Impl): number {
  let dt = 0;
  const call = () => {
    const t0 = performance.now();
    tf.tidy(() => {
      impl.fn();
    });
    dt = performance.now() - t0;
  };
  if (impl.around) impl.around(call);
  else call();
  return dt;
}

/**
 * Times the implementations of one operation in interleaved rounds (A, B, C,
 * A, B, C, ...) after one warm-up call each, so that a burst of load from
 * other processes hits all of them alike. At least 2 rounds; more while the
 * group stays under `budgetMs` (at most `maxRounds`).
 */
function group(
  kernel: string,
  shape: string,
  backend: 'wasm' | 'cpu',
  flops: number | null,
  impls: Impl[],
  budgetMs = 6000,
  maxRounds = 5,
): void {
  console.log(`\n${kernel}  ${shape}  (${backend})`);
  for (const impl of impls) timeOnce(impl); // warm-up: XNNPACK operator creation, heap growth
  const times: number[][] = impls.map(() => []);
  let total = 0;
  for (let round = 0; round < maxRounds && (round < 2 || total < budgetMs); round++) {
    impls.forEach((impl, i) => {
      const dt = timeOnce(impl);
      times[i]!.push(dt);
      total += dt;
    });
  }
  const best = times.map((t) => Math.min(...t));
  const ours = impls.findIndex((i) => i.ours);
  impls.forEach((impl, i) => {
    const sorted = [...times[i]!].sort((a, b) => a - b);
    const ms = best[i]!;
    const row: Row = {
      kernel,
      shape,
      impl: impl.impl,
      backend,
      ms,
      medianMs: sorted[Math.floor(sorted.length / 2)]!,
      gflops: flops === null ? null : flops / ms / 1e6,
      runs: sorted.length,
      speedupOfDifflab: ours < 0 || ours === i || impl.reference ? null : ms / best[ours]!,
    };
    rows.push(row);
    const rate = row.gflops === null ? '' : `${row.gflops.toFixed(1).padStart(6)} GFLOP/s`;
    const speed = row.speedupOfDifflab === null ? '' : `  difflab ${row.speedupOfDifflab.toFixed(1)}x faster`;
    console.log(`  ${impl.impl.padEnd(66)} ${ms.toFixed(1).padStart(9)} ms ${rate}${speed}`);
  });
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
  console.log(`difflab wasm kernel benchmark (${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)})`);

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

  group('Conv2DBackpropFilter', shape, 'wasm', conv, [
    { impl: 'difflab: one Conv2D of [C,H,W,B] * [H,W,B,Co]', ours: true, fn: () => run(tf.Conv2DBackpropFilter, { x, dy }, filterAttrs) },
    { impl: 'im2col (9 slices + concat) + matMul(transposeA)', fn: () => im2colFilterGrad(x, dy, 3, 1, false) },
    { impl: 'im2col + transpose + matMul', fn: () => im2colFilterGrad(x, dy, 3, 1, true) },
    { impl: 'reference: Conv2D forward of the same layer', reference: true, fn: () => tf.conv2d(x, w, 1, 'same') },
  ]);
  group('Conv2DBackpropInput', shape, 'wasm', conv, [
    { impl: 'difflab: Conv2D of dy with flipped, transposed filter', ours: true, fn: () => run(tf.Conv2DBackpropInput, { dy, filter: w }, inputAttrs) },
    { impl: 'tfjs-backend-wasm Conv2DBackpropInput (replaced)', fn: () => originalConv2DBackpropInput({ dy, filter: w }, inputAttrs) },
  ]);

  // Stride 2: 28x28 -> 14x14 (a UNet downsampling conv).
  const shape2 = '[32,28,28,64] 3x3 64->64 stride 2 same';
  const conv2 = conv / 4;
  const dy2 = randn([B, S / 2, S / 2, C], 4) as tf.Tensor4D;
  const inputAttrs2 = { ...inputAttrs, strides: 2 };
  const upsample = (call: () => void) => {
    inputGradOptions.stridedStrategy = 'upsample';
    try {
      call();
    } finally {
      inputGradOptions.stridedStrategy = 'phase';
    }
  };
  group('Conv2DBackpropInput', shape2, 'wasm', conv2, [
    { impl: 'difflab: stride-phase Conv2D + depth-to-space transpose', ours: true, fn: () => run(tf.Conv2DBackpropInput, { dy: dy2, filter: w }, inputAttrs2) },
    { impl: 'Conv2D of zero-upsampled dy (PadV2), flipped filter', around: upsample, fn: () => run(tf.Conv2DBackpropInput, { dy: dy2, filter: w }, inputAttrs2) },
    { impl: 'tfjs-backend-wasm Conv2DBackpropInput (replaced)', fn: () => originalConv2DBackpropInput({ dy: dy2, filter: w }, inputAttrs2) },
  ]);
  group('Conv2DBackpropFilter', shape2, 'wasm', conv2, [
    { impl: 'difflab: one Conv2D (its dilation = the stride)', ours: true, fn: () => run(tf.Conv2DBackpropFilter, { x, dy: dy2 }, { ...filterAttrs, strides: 2 }) },
  ]);

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
  const effW = 2 * D + 1;
  group('Conv2DBackpropFilter', shape1d, 'wasm', conv1d, [
    {
      impl: 'difflab: one Conv2D (its stride = the dilation)',
      ours: true,
      fn: () =>
        run(tf.Conv2DBackpropFilter, { x: x14, dy: dy14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: [1, D], filterShape: [1, 3, C, C] }),
    },
    {
      impl: `zero-inserted ${effW}-tap filter, undilated kernel, every ${D}th tap`,
      fn: () => {
        const g = run(tf.Conv2DBackpropFilter, { x: x14, dy: dy14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [1, effW, C, C] });
        return tf.stridedSlice(g, [0, 0, 0, 0], [1, effW, C, C], [1, D, 1, 1]);
      },
    },
    { impl: 'im2col (3 slices + concat) + transpose + matMul', fn: () => im2col1dFilterGrad(x1, dy1, 3, D) },
    { impl: 'reference: conv1d forward (XNNPACK, dilated)', reference: true, fn: () => tf.conv1d(x1, w1, 1, 'same', 'NWC', D) },
  ]);
  const inputImpls: Impl[] = [
    {
      impl: 'difflab: Conv2D of dy, flipped filter, dilated',
      ours: true,
      fn: () =>
        run(tf.Conv2DBackpropInput, { dy: dy14, filter: w14 }, { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: [1, D], inputShape: [B1, 1, L, C] }),
    },
  ];
  if (!SKIP_SLOW) {
    inputImpls.push({
      impl: `tfjs-backend-wasm kernel on the zero-inserted ${effW}-tap filter`,
      fn: () =>
        originalConv2DBackpropInput(
          { dy: dy14, filter: zeroInsertFilter(w14, 1, D) },
          { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [B1, 1, L, C] },
        ),
    });
  }
  group('Conv2DBackpropInput', shape1d, 'wasm', conv1d, inputImpls, 0, 2);

  // ---- Depthwise 3x3 on the conv layer's activations.
  const dshape = '[32,28,28,64] depthwise 3x3 same';
  const dconv = 2 * B * S * S * C * 9;
  const dwf = randn([3, 3, C, 1], 8) as tf.Tensor4D;
  const dfa = { strides: 1, pad: 'same', dilations: [1, 1], filterShape: [3, 3, C, 1] };
  const dia = { strides: 1, pad: 'same', dilations: [1, 1], inputShape: [B, S, S, C] };
  group('DepthwiseConv2dNativeBackpropFilter', dshape, 'wasm', dconv, [
    { impl: 'difflab: one depthwise conv (batch folded into channels) + Sum', ours: true, fn: () => run(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, dfa) },
    { impl: '9 tap slices * dy, summed', fn: () => slicesDepthwiseFilterGrad(x, dy, 3) },
    { impl: 'reference: depthwiseConv2d forward', reference: true, fn: () => tf.depthwiseConv2d(x, dwf, 1, 'same') },
  ]);
  group('DepthwiseConv2dNativeBackpropInput', dshape, 'wasm', dconv, [
    { impl: 'difflab: depthwise conv of dy with flipped filter', ours: true, fn: () => run(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: dwf }, dia) },
    { impl: '9 tap slices of padded dy * flipped taps, added', fn: () => slicesDepthwiseInputGrad(dy, dwf) },
  ]);

  // ---- UnsortedSegmentSum as tf.gather's gradient: 4096 lookups of 256-wide rows, 1000-row table.
  const N = 4096;
  const E = 256;
  const V = 1000;
  const ids = tf.tensor1d(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), 'int32');
  const vals = randn([N, E], 9);
  const table = randn([V, E], 10);
  group('UnsortedSegmentSum', `x [${N},${E}], ${V} segments`, 'wasm', null, [
    { impl: 'difflab: one ScatterNd (+ id range check)', ours: true, fn: () => tf.unsortedSegmentSum(vals, ids, V) },
    { impl: 'one-hot [N,V] + matMul(transposeA)', fn: () => tf.matMul(tf.oneHot(ids, V), vals, true, false) },
    { impl: 'one-hot transposed to [V,N] + matMul', fn: () => tf.matMul(tf.transpose(tf.oneHot(ids, V)), vals) },
    { impl: 'reference: whole tf.grad of gather (incl. forward GatherV2)', reference: true, fn: () => tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, ids)))(table) },
  ]);

  // ---- cpu backend on smaller shapes (it runs about 1 GFLOP/s); the same shapes on wasm for comparison.
  if (!SKIP_CPU) {
    const b = 4;
    const cshape = `[${b},28,28,64] 3x3 64->64 same`;
    const dcshape = `[${b},28,28,64] depthwise 3x3 same`;
    const cconv = (conv / B) * b;
    const cdconv = (dconv / B) * b;
    const smallIds = Int32Array.from({ length: 512 }, (_, i) => (i * 7919) % 100);
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      const cx = randn([b, S, S, C], 11) as tf.Tensor4D;
      const cdy = randn([b, S, S, C], 12) as tf.Tensor4D;
      const cw = randn([3, 3, C, C], 13) as tf.Tensor4D;
      const cdw = randn([3, 3, C, 1], 14) as tf.Tensor4D;
      const sx = randn([512, 256], 15);
      const sids = tf.tensor1d(smallIds, 'int32');
      const who = backend === 'cpu' ? 'cpu backend' : 'difflab wasm (same shape as the cpu row)';
      const budget = backend === 'cpu' ? 0 : 2000;
      group('Conv2DBackpropFilter', cshape, backend, cconv, [{ impl: who, fn: () => run(tf.Conv2DBackpropFilter, { x: cx, dy: cdy }, filterAttrs) }], budget, 2);
      group('Conv2DBackpropInput', cshape, backend, cconv, [
        { impl: who, fn: () => run(tf.Conv2DBackpropInput, { dy: cdy, filter: cw }, { ...inputAttrs, inputShape: [b, S, S, C] }) },
      ], budget, 2);
      group('DepthwiseConv2dNativeBackpropFilter', dcshape, backend, cdconv, [
        { impl: who, fn: () => run(tf.DepthwiseConv2dNativeBackpropFilter, { x: cx, dy: cdy }, dfa) },
      ], budget, 2);
      group('DepthwiseConv2dNativeBackpropInput', dcshape, backend, cdconv, [
        { impl: who, fn: () => run(tf.DepthwiseConv2dNativeBackpropInput, { dy: cdy, filter: cdw }, { ...dia, inputShape: [b, S, S, C] }) },
      ], budget, 2);
      group('UnsortedSegmentSum', 'x [512,256], 100 segments', backend, null, [
        { impl: backend === 'cpu' ? 'cpu backend (one mask pass per segment)' : who, fn: () => tf.unsortedSegmentSum(sx, sids, 100) },
      ], budget, 2);
    }
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
        note: 'single-threaded wasm; ms = fastest of interleaved timed calls (medianMs also given); gflops = useful 2*MACs / ms; speedupOfDifflab = alternative ms / difflab ms',
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
    const s = r.speedupOfDifflab === null ? '' : `${r.speedupOfDifflab.toFixed(1)}x`;
    console.log(`| ${r.kernel} | ${r.shape} | ${r.impl} | ${r.backend} | ${r.ms.toFixed(1)} | ${g} | ${s} |`);
  }
}

await main();
