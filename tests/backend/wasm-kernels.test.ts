import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../../src/core/backend/select.js';
import { registerWasmTrainingKernels } from '../../src/core/backend/wasm-kernels.js';
import { zeroInsertFilter } from '../../src/core/backend/kernels/conv-gradients.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';
import {
  attrMap,
  convCases,
  defineGradientParity,
  describeCase,
  effectiveFilter,
  randn,
  runOn,
  t,
  t4,
  TOL,
  undilated,
  wasmDataIds,
} from './parity.js';

/**
 * Every difflab wasm kernel against the pure-JS cpu backend on randomized
 * (seeded) shapes, strides, dilations and paddings. The cpu kernels ignore
 * dilations, so dilated cases are referenced on cpu through the explicitly
 * zero-inserted filter (a dilated conv is exactly a conv with that filter);
 * an adjoint-identity test checks the dilated gradients independently.
 */

beforeAll(async () => {
  await useBackend('wasm');
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('registration', () => {
  it('registers the missing training kernels, idempotently and without warnings', async () => {
    const warn = vi.spyOn(console, 'warn');
    await useBackend('wasm');
    const first = registerWasmTrainingKernels();
    const conv2DInput = tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc;
    const second = registerWasmTrainingKernels();
    expect(second).toEqual(first);
    expect(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc).toBe(conv2DInput);
    for (const name of [
      tf.Conv2DBackpropFilter,
      tf.Conv2DBackpropInput,
      tf.DepthwiseConv2dNativeBackpropFilter,
      tf.DepthwiseConv2dNativeBackpropInput,
      tf.UnsortedSegmentSum,
    ]) {
      expect(first).toContain(name);
      expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    }
    expect(warn).not.toHaveBeenCalled();
  });
});

describe('Conv2DBackpropFilter', () => {
  const rng = new Rng(11);
  const cases = convCases(101, 30, false);
  it.each(cases.map((c, i) => [i, c] as const))('case %i matches cpu', async (_i, c) => {
    const x = randn(rng, c.x);
    const dy = randn(rng, c.out);
    const attrs = { strides: c.strides, pad: c.pad, dimRoundingMode: c.rounding, dataFormat: 'NHWC' };
    const [got] = await runOn('wasm', () =>
      tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({ ...attrs, dilations: c.dilations, filterShape: c.filter })) as tf.Tensor,
    );
    const eff = effectiveFilter(c);
    const [want] = await runOn('cpu', () => {
      const g = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({ ...attrs, filterShape: eff })) as tf.Tensor4D;
      return tf.stridedSlice(g, [0, 0, 0, 0], eff, [c.dilations[0], c.dilations[1], 1, 1]);
    });
    expect(maxRelError(got!, want!), describeCase(c)).toBeLessThan(TOL);
  });

  it('rejects NCHW with a clear error', async () => {
    await useBackend('wasm');
    const x = tf.zeros([1, 2, 5, 5]);
    const dy = tf.zeros([1, 3, 5, 5]);
    expect(() =>
      tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] }),
    ).toThrow(/NCHW.*not supported on wasm/);
    tf.dispose([x, dy]);
  });
});

describe('Conv2DBackpropInput (overridden)', () => {
  const rng = new Rng(12);
  const cases = [...convCases(102, 30, false), ...convCases(104, 20, false, true)];
  it.each(cases.map((c, i) => [i, c] as const))('case %i matches cpu', async (_i, c) => {
    const f = randn(rng, c.filter);
    const dy = randn(rng, c.out);
    const attrs = { strides: c.strides, pad: c.pad, dimRoundingMode: c.rounding, dataFormat: 'NHWC', inputShape: c.x };
    const [got] = await runOn('wasm', () =>
      tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: t(dy), filter: t(f) }, attrMap({ ...attrs, dilations: c.dilations })) as tf.Tensor,
    );
    const [want] = await runOn('cpu', () => {
      const filter = undilated(c) ? t4(f) : zeroInsertFilter(t4(f), c.dilations[0], c.dilations[1]);
      return tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: t(dy), filter }, attrMap(attrs)) as tf.Tensor;
    });
    expect(maxRelError(got!, want!), describeCase(c)).toBeLessThan(TOL);
  });

  it('still handles NCHW (through tfjs-backend-wasm’s own kernel)', async () => {
    const r = new Rng(5);
    const f = randn(r, [3, 3, 2, 4]);
    const dy = randn(r, [2, 4, 4, 4]);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW', inputShape: [2, 2, 7, 7] };
    const run = () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: t(dy), filter: t(f) }, attrs) as tf.Tensor;
    const [got] = await runOn('wasm', run);
    const [want] = await runOn('cpu', run);
    expect(maxRelError(got!, want!)).toBeLessThan(TOL);
  });

  it('conv2dTranspose (forward use of the kernel) matches cpu', async () => {
    const r = new Rng(6);
    const x = randn(r, [2, 5, 6, 4]);
    const f = randn(r, [3, 3, 3, 4]);
    const run = () => tf.conv2dTranspose(t4(x), t4(f), [2, 10, 12, 3], 2, 'same');
    const [got] = await runOn('wasm', run);
    const [want] = await runOn('cpu', run);
    expect(maxRelError(got!, want!)).toBeLessThan(TOL);
  });
});

describe('DepthwiseConv2dNativeBackpropFilter / Input', () => {
  const rng = new Rng(13);
  const cases = convCases(103, 24, true);
  it.each(cases.map((c, i) => [i, c] as const))('case %i matches cpu', async (_i, c) => {
    const x = randn(rng, c.x);
    const f = randn(rng, c.filter);
    const dy = randn(rng, c.out);
    const common = { strides: c.strides, pad: c.pad, dimRoundingMode: c.rounding };
    const got = await runOn('wasm', () => [
      tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({
        ...common,
        dilations: c.dilations,
        filterShape: c.filter,
      })) as tf.Tensor,
      tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: t(dy), filter: t(f) }, attrMap({
        ...common,
        dilations: c.dilations,
        inputShape: c.x,
      })) as tf.Tensor,
    ]);
    const eff = effectiveFilter(c);
    const want = await runOn('cpu', () => {
      const g = tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({
        ...common,
        dilations: [1, 1],
        filterShape: eff,
      })) as tf.Tensor4D;
      const filter = undilated(c) ? t4(f) : zeroInsertFilter(t4(f), c.dilations[0], c.dilations[1]);
      return [
        tf.stridedSlice(g, [0, 0, 0, 0], eff, [c.dilations[0], c.dilations[1], 1, 1]),
        tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: t(dy), filter }, attrMap({
          ...common,
          dilations: [1, 1],
          inputShape: c.x,
        })) as tf.Tensor,
      ];
    });
    expect(maxRelError(got[0]!, want[0]!), `filter grad ${describeCase(c)}`).toBeLessThan(TOL);
    expect(maxRelError(got[1]!, want[1]!), `input grad ${describeCase(c)}`).toBeLessThan(TOL);
  });
});

describe('UnsortedSegmentSum', () => {
  const rng = new Rng(14);
  const shapes: Array<{ x: number[]; segments: number; outOfRange: boolean }> = [
    { x: [7, 3], segments: 4, outOfRange: false },
    { x: [1, 5], segments: 1, outOfRange: false },
    { x: [20, 2, 3], segments: 6, outOfRange: false },
    { x: [33], segments: 9, outOfRange: false },
    { x: [12, 4], segments: 5, outOfRange: true },
    { x: [64, 16], segments: 50, outOfRange: false },
  ];
  it.each(shapes.map((s, i) => [i, s] as const))('case %i matches cpu', async (_i, s) => {
    const x = randn(rng, s.x);
    const n = s.x[0]!;
    const ids = Int32Array.from({ length: n }, () => (s.outOfRange ? rng.int(s.segments + 4) - 2 : rng.int(s.segments)));
    const run = () => tf.unsortedSegmentSum(t(x), tf.tensor1d(ids, 'int32'), s.segments);
    const [got] = await runOn('wasm', run);
    const [want] = await runOn('cpu', run);
    expect(got!.length).toBe(s.segments * (x.values.length / n));
    expect(maxRelError(got!, want!)).toBeLessThan(TOL);
  });

  it('sums int32 data and accepts multi-dimensional segment ids (TensorFlow semantics)', async () => {
    await useBackend('wasm');
    const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32');
    const ids = tf.tensor2d([2, 0, 2, 2], [2, 2], 'int32');
    const out = tf.unsortedSegmentSum(x, ids as unknown as tf.Tensor1D, 3);
    expect(out.shape).toEqual([3, 2]);
    expect(Array.from(out.dataSync())).toEqual([3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8]);
    tf.dispose([x, ids, out]);
  });
});

defineGradientParity('wasm');

describe('dilated gradients satisfy the adjoint identity against the cpu forward conv', () => {
  // <conv(x, w), dy> = <x, dL/dx> = <w, dL/dw> for L = <conv(x, w), dy>.
  it('conv1d dilation 4 on wasm', async () => {
    const rng = new Rng(16);
    const x = randn(rng, [2, 30, 3]);
    const w = randn(rng, [3, 3, 5]);
    const dy = randn(rng, [2, 30, 5]);
    const [gx, gw] = await runOn('wasm', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, 1, 'same', 'NWC', 4), t(dy))))([t(x), t(w)]),
    );
    const [forward] = await runOn('cpu', () => tf.sum(tf.mul(tf.conv1d(t(x) as tf.Tensor3D, t(w) as tf.Tensor3D, 1, 'same', 'NWC', 4), t(dy))));
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * (b[i] as number), 0);
    // Linearity in x and in w separately: <x, dL/dx> and <w, dL/dw> both equal L.
    expect(Math.abs(dot(x.values, gx!) - forward![0]!) / Math.abs(forward![0]!)).toBeLessThan(TOL);
    expect(Math.abs(dot(w.values, gw!) - forward![0]!) / Math.abs(forward![0]!)).toBeLessThan(TOL);
  });
});

describe('memory', () => {
  it('kernels and gradients leak neither tensors nor wasm heap buffers', async () => {
    await useBackend('wasm');
    const rng = new Rng(17);
    const x = t4(randn(rng, [2, 9, 9, 3]));
    const w = t4(randn(rng, [3, 3, 3, 4]));
    const dw = t4(randn(rng, [3, 3, 3, 2]));
    const x1 = tf.tensor3d(randn(rng, [2, 20, 3]).values, [2, 20, 3]);
    const w1 = tf.tensor3d(randn(rng, [3, 3, 4]).values, [3, 3, 4]);
    const table = tf.tensor2d(randn(rng, [10, 4]).values, [10, 4]);
    const rows = tf.tensor2d(randn(rng, [5, 4]).values, [5, 4]);
    const ids = tf.tensor1d([1, 3, 3, 12, -1], 'int32');
    const gatherIds = tf.tensor1d([1, 3, 3], 'int32');
    const step = () => {
      const grads = [
        ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))))([x, w]),
        ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, 1, 'same', 'NWC', 3))))([x1, w1]),
        ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid'))))([x, dw]),
        tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.gather(a, gatherIds))))(table),
        tf.unsortedSegmentSum(rows, ids, 4), // ids out of range take the spare-row path
      ];
      tf.dispose(grads);
    };
    step(); // warm-up: first calls may allocate cached state
    const heapBefore = wasmDataIds();
    await expectNoTensorLeak(() => {
      for (let i = 0; i < 3; i++) step();
    }, 'gradient steps');
    expect(wasmDataIds() - heapBefore, 'wasm data ids leaked').toBe(0);
    tf.dispose([x, w, dw, x1, w1, table, rows, ids, gatherIds]);
  });
});
