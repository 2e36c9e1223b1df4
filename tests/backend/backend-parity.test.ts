import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { conv2DBackpropFilterConfig } from '../../src/core/backend/kernels/conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig } from '../../src/core/backend/kernels/conv2d-backprop-input.js';
import { isBackendName, probeBackends, selectBackend, useBackend, type BackendName } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';
import { attrMap, convCases, type ConvCase, defineGradientParity, describeCase, randn, runOn, t, t4, TOL, undilated } from './parity.js';
import { expectSameTraining, trainSmallNet } from './small-net.js';

/**
 * The backend suite on a backend this machine may not have: native
 * TensorFlow (`DIFFLAB_TEST_NATIVE=1`, after `npm run install:native`) or any
 * backend by name (`DIFFLAB_TEST_BACKEND=tfjs-node-gpu|webgpu|...`, used by
 * bench/gpu/run.sh). Skipped otherwise, so CI without the native build passes;
 * with the flag set, an unavailable backend fails instead of skipping.
 * Everything is compared with the pure-JS cpu backend, like the wasm suite.
 */

function backendUnderTest(): BackendName | undefined {
  const named = process.env['DIFFLAB_TEST_BACKEND'];
  if (named) {
    if (!isBackendName(named)) throw new Error(`DIFFLAB_TEST_BACKEND=${named} is not a backend`);
    return named;
  }
  return process.env['DIFFLAB_TEST_NATIVE'] === '1' ? 'tfjs-node' : undefined;
}

const backend = backendUnderTest();
const title = backend
  ? `backend suite on ${backend}`
  : 'backend suite on native TensorFlow (skipped: set DIFFLAB_TEST_NATIVE=1 after `npm run install:native`, or DIFFLAB_TEST_BACKEND=<name>)';

describe.skipIf(!backend)(title, () => {
  const b = backend as BackendName;
  const native = b === 'tfjs-node' || b === 'tfjs-node-gpu';

  beforeAll(async () => {
    const report = (await probeBackends()).find((r) => r.name === b);
    if (!report?.available) throw new Error(`${b} is not available: ${report?.reason}`);
    await useBackend(b);
  });

  describe('selection', () => {
    it('is preferred over every backend after it in the order', async () => {
      const reports = await probeBackends();
      const first = reports.find((r) => r.available);
      const chosen = await selectBackend();
      expect(chosen.name).toBe(first?.name);
      // Only backends listed before it can win over it (tfjs-node-gpu over tfjs-node, ...).
      const names = reports.map((r) => r.name);
      expect(names.indexOf(chosen.name)).toBeLessThanOrEqual(names.indexOf(b));
      expect(tf.getBackend()).toBe(chosen.tfjsName);
    });

    it.runIf(native)("difflab's wasm kernels stay on wasm: the native backend keeps TensorFlow's own", async () => {
      await useBackend('wasm'); // registers difflab's kernels
      const sel = await useBackend(b);
      // Only the padding wrappers around TensorFlow's own conv kernels (src/core/backend/native-kernels.ts).
      expect(sel.addedKernels).toEqual([tf.Conv2D, tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput]);
      expect(tf.getBackend()).toBe('tensorflow');
      for (const ours of [conv2DBackpropFilterConfig, conv2DBackpropInputConfig]) {
        expect(ours.backendName).toBe('wasm');
        const theirs = tf.getKernel(ours.kernelName, 'tensorflow');
        expect(theirs, ours.kernelName).toBeDefined();
        expect(theirs?.kernelFunc).not.toBe(ours.kernelFunc);
      }
    });
  });

  // Raw kernels on the geometries the (undilated) gradient functions hand them; dilations reach these backends
  // as zero-inserted filters (src/core/backend/kernels/conv-gradients.ts), covered by the gradient cases below.
  // TensorFlow's kernels take only 'same'/'valid' padding (tfjs-node rejects numbers and explicit pads) and equal
  // depthwise strides, so the native cases are drawn from that subset.
  const supported = (c: ConvCase, depthwise: boolean): boolean =>
    undilated(c) && (!native || ((c.pad === 'same' || c.pad === 'valid') && (!depthwise || c.strides[0] === c.strides[1])));
  describe('conv backprop kernels match cpu', () => {
    const rng = new Rng(21);
    const cases = convCases(201, 60, false).filter((c) => supported(c, false)).slice(0, 16);
    it.each(cases.map((c, i) => [i, c] as const))('Conv2DBackpropFilter/Input case %i', async (_i, c) => {
      const x = randn(rng, c.x);
      const f = randn(rng, c.filter);
      const dy = randn(rng, c.out);
      const common = { strides: c.strides, pad: c.pad, dimRoundingMode: c.rounding, dataFormat: 'NHWC' };
      const run = () => [
        tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({ ...common, filterShape: c.filter })) as tf.Tensor,
        tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: t(dy), filter: t(f) }, attrMap({ ...common, inputShape: c.x })) as tf.Tensor,
      ];
      const got = await runOn(b, run);
      const want = await runOn('cpu', run);
      expect(maxRelError(got[0]!, want[0]!), `filter grad ${describeCase(c)}`).toBeLessThan(TOL);
      expect(maxRelError(got[1]!, want[1]!), `input grad ${describeCase(c)}`).toBeLessThan(TOL);
    });

    const dcases = convCases(203, 80, true).filter((c) => supported(c, true)).slice(0, 12);
    it.each(dcases.map((c, i) => [i, c] as const))('DepthwiseConv2dNativeBackpropFilter/Input case %i', async (_i, c) => {
      const x = randn(rng, c.x);
      const f = randn(rng, c.filter);
      const dy = randn(rng, c.out);
      const common = { strides: c.strides, pad: c.pad, dimRoundingMode: c.rounding, dilations: [1, 1] };
      const run = () => [
        tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: t(x), dy: t(dy) }, attrMap({ ...common, filterShape: c.filter })) as tf.Tensor,
        tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: t(dy), filter: t(f) }, attrMap({ ...common, inputShape: c.x })) as tf.Tensor,
      ];
      const got = await runOn(b, run);
      const want = await runOn('cpu', run);
      expect(maxRelError(got[0]!, want[0]!), `filter grad ${describeCase(c)}`).toBeLessThan(TOL);
      expect(maxRelError(got[1]!, want[1]!), `input grad ${describeCase(c)}`).toBeLessThan(TOL);
    });

    it('conv2dTranspose and unsortedSegmentSum', async () => {
      const r = new Rng(22);
      const x = randn(r, [2, 5, 6, 4]);
      const f = randn(r, [3, 3, 3, 4]);
      const rows = randn(r, [12, 3]);
      const ids = Int32Array.from({ length: 12 }, () => r.int(5));
      const run = () => [
        tf.conv2dTranspose(t4(x), t4(f), [2, 10, 12, 3], 2, 'same'),
        tf.unsortedSegmentSum(t(rows), tf.tensor1d(ids, 'int32'), 5),
      ];
      const got = await runOn(b, run);
      const want = await runOn('cpu', run);
      got.forEach((g, i) => expect(maxRelError(g, want[i]!), `output ${i}`).toBeLessThan(TOL));
    });
  });

  defineGradientParity(b);

  // Numeric and explicit padding (the U-Net's strided down-sampling conv): tfjs-node rejects them, difflab's
  // wrappers pad explicitly on native TensorFlow. Forward and both gradients against cpu, with every rounding mode.
  describe('conv2d with numeric and explicit padding matches cpu', () => {
    const rng = new Rng(24);
    const cases = convCases(205, 80, false)
      .filter((c) => undilated(c) && c.pad !== 'same' && c.pad !== 'valid')
      .slice(0, 16);
    it.each(cases.map((c, i) => [i, c] as const))('case %i', async (_i, c) => {
      const x = randn(rng, c.x);
      const f = randn(rng, c.filter);
      const readout = randn(rng, c.out);
      const run = () => {
        const loss = (p: tf.Tensor, q: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, c.strides, c.pad as 'same', 'NHWC', 1, c.rounding), t(readout)));
        return [tf.conv2d(t4(x), t4(f), c.strides, c.pad as 'same', 'NHWC', 1, c.rounding), ...tf.grads(loss)([t(x), t(f)])];
      };
      const got = await runOn(b, run);
      const want = await runOn('cpu', run);
      got.forEach((g, i) => expect(maxRelError(g, want[i]!), `${['output', 'input grad', 'filter grad'][i]} ${describeCase(c)}`).toBeLessThan(TOL));
    });
  });

  describe('training', () => {
    it('a conv net with a class embedding matches the cpu backend step by step and leaks nothing', async () => {
      const got = await trainSmallNet(b);
      const cpu = await trainSmallNet('cpu');
      expectSameTraining(got, cpu);
    });
  });

  describe('memory', () => {
    it('gradient steps leak neither tensors nor backend buffers', async () => {
      await useBackend(b);
      const rng = new Rng(23);
      const x = t4(randn(rng, [2, 9, 9, 3]));
      const w = t4(randn(rng, [3, 3, 3, 4]));
      const x1 = tf.tensor3d(randn(rng, [2, 20, 3]).values, [2, 20, 3]);
      const w1 = tf.tensor3d(randn(rng, [3, 3, 4]).values, [3, 3, 4]);
      const step = () =>
        tf.dispose([
          ...tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 2, 'same'))))([x, w]),
          ...tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.conv1d(p as tf.Tensor3D, q as tf.Tensor3D, 1, 'same', 'NWC', 3))))([x1, w1]),
        ]);
      step();
      const ids = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
      const before = ids();
      await expectNoTensorLeak(() => {
        for (let i = 0; i < 3; i++) step();
      }, `${b} gradient steps`);
      expect(ids() - before, `${b} data ids leaked`).toBe(0);
      tf.dispose([x, w, x1, w1]);
    });
  });
});
