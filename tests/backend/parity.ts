import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { useBackend, type BackendName } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

/**
 * Shared by the backend tests (wasm always, native TensorFlow behind
 * DIFFLAB_TEST_NATIVE=1): seeded random data and conv geometries, running a
 * computation on one backend with a leak check, and the tf.grads parity
 * cases every training backend must pass against the pure-JS cpu backend.
 */

export const TOL = 1e-4;
export type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
export type Rounding = 'floor' | 'round' | 'ceil' | undefined;

export interface Data {
  readonly shape: number[];
  readonly values: Float32Array;
}

export function randn(rng: Rng, shape: number[]): Data {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.normal();
  return { shape, values };
}

/** Kernel attributes as the engine types them (ours carry tuples and unions). */
export const attrMap = (o: object) => o as unknown as tf.NamedAttrMap;
export const t = (d: Data) => tf.tensor(d.values, d.shape);
export const t4 = (d: Data) => tf.tensor4d(d.values, d.shape as [number, number, number, number]);

/**
 * Runs fn on a backend and returns its outputs as plain arrays (no tensors kept). Reads asynchronously:
 * tfjs-backend-webgpu cannot read synchronously in Node (its readSync goes through OffscreenCanvas).
 */
export async function runOn(backend: BackendName, fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await useBackend(backend);
  return expectNoTensorLeak(async () => {
    const outs = tf.tidy(fn);
    const list = Array.isArray(outs) ? outs : [outs];
    const arrays = await Promise.all(list.map(async (o) => Float32Array.from(await o.data())));
    tf.dispose(list);
    return arrays;
  }, `${backend} computation`);
}

export function wasmDataIds(): number {
  return (tf.engine().findBackend('wasm') as unknown as { numDataIds(): number }).numDataIds();
}

export interface ConvCase {
  readonly x: [number, number, number, number];
  readonly filter: [number, number, number, number];
  readonly strides: [number, number];
  readonly dilations: [number, number];
  readonly pad: Pad;
  readonly rounding: Rounding;
  readonly out: number[];
}

/**
 * Random conv geometry; depthwise filters are [KH, KW, C, multiplier].
 * `stridedOnly`: equal strides 2-3 and no dilation (the stride-phase path of
 * Conv2DBackpropInput).
 */
export function convCases(seed: number, count: number, depthwise: boolean, stridedOnly = false): ConvCase[] {
  const rng = new Rng(seed);
  const cases: ConvCase[] = [];
  while (cases.length < count) {
    const b = 1 + rng.int(3);
    const h = 3 + rng.int(9);
    const w = 3 + rng.int(9);
    const c = 1 + rng.int(5);
    const co = depthwise ? 1 + rng.int(3) : 1 + rng.int(5);
    const kh = 1 + rng.int(stridedOnly ? 5 : 4);
    const kw = 1 + rng.int(stridedOnly ? 5 : 4);
    const s = 2 + rng.int(2);
    const strides: [number, number] = stridedOnly ? [s, s] : [1 + rng.int(3), 1 + rng.int(3)];
    // The kernels take strides and dilations together although tf ops forbid it.
    const dilations: [number, number] = stridedOnly || rng.uniform() < 0.5 ? [1, 1] : [1 + rng.int(3), 1 + rng.int(3)];
    const kind = rng.int(4);
    const pad: Pad =
      kind === 0
        ? 'same'
        : kind === 1
          ? 'valid'
          : kind === 2
            ? rng.int(3)
            : [[0, 0], [rng.int(4), rng.int(4)], [rng.int(4), rng.int(4)], [0, 0]];
    const rounding: Rounding = typeof pad === 'number' ? (['floor', 'round', 'ceil', undefined] as const)[rng.int(4)] : undefined;
    const info = tf.backend_util.computeConv2DInfo([b, h, w, c], [kh, kw, c, co], strides, dilations, pad, rounding, depthwise);
    if (info.outHeight <= 0 || info.outWidth <= 0) continue;
    cases.push({ x: [b, h, w, c], filter: [kh, kw, c, co], strides, dilations, pad, rounding, out: info.outShape });
  }
  return cases;
}

export const undilated = (c: ConvCase) => c.dilations[0] === 1 && c.dilations[1] === 1;
export const effectiveFilter = (c: ConvCase): [number, number, number, number] => [
  (c.filter[0] - 1) * c.dilations[0] + 1,
  (c.filter[1] - 1) * c.dilations[1] + 1,
  c.filter[2],
  c.filter[3],
];

export function describeCase(c: ConvCase): string {
  return `x=${c.x} f=${c.filter} s=${c.strides} d=${c.dilations} pad=${JSON.stringify(c.pad)} round=${c.rounding}`;
}

/** tf.grads through convs (strided, dilated, depthwise) and gathers on `backend` against the cpu backend. */
export function defineGradientParity(backend: BackendName): void {
describe(`gradients through tf.grads on ${backend} match cpu`, () => {
  const rng = new Rng(15);

  async function compareGrads(label: string, f: (...args: tf.Tensor[]) => tf.Tensor, inputs: Data[], consts: () => tf.Tensor[] = () => []) {
    const run = () => {
      const c = consts();
      const g = tf.grads((...args: tf.Tensor[]) => f(...args, ...c));
      return g(inputs.map(t));
    };
    const got = await runOn(backend, run);
    const want = await runOn('cpu', run);
    got.forEach((g, i) => expect(maxRelError(g, want[i]!), `${label}: gradient ${i}`).toBeLessThan(TOL));
  }

  /** A loss with a random readout so that every output element matters. */
  function readout(y: tf.Tensor, seed: number): tf.Tensor {
    return tf.sum(tf.mul(y, t(randn(new Rng(seed), y.shape))));
  }

  for (const [stride, pad] of [
    [1, 'same'],
    [2, 'same'],
    [1, 'valid'],
    [2, 'valid'],
  ] as const) {
    it(`conv2d stride ${stride} ${pad}`, async () => {
      await compareGrads(
        `conv2d s${stride} ${pad}`,
        (x, w) => readout(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad), 1),
        [randn(rng, [2, 9, 8, 3]), randn(rng, [3, 3, 3, 5])],
      );
    });
  }

  for (const dilation of [1, 2, 8]) {
    it(`conv1d dilation ${dilation} (causal-style 'same')`, async () => {
      await compareGrads(
        `conv1d d${dilation}`,
        (x, w) => readout(tf.conv1d(x as tf.Tensor3D, w as tf.Tensor3D, 1, 'same', 'NWC', dilation), 2),
        [randn(rng, [2, 40, 4]), randn(rng, [3, 4, 6])],
      );
    });
  }

  it('conv2d with dilation 2 and valid padding', async () => {
    await compareGrads(
      'conv2d d2',
      (x, w) => readout(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid', 'NHWC', [2, 3]), 3),
      [randn(rng, [2, 11, 12, 3]), randn(rng, [3, 2, 3, 4])],
    );
  });

  for (const [stride, dilation, mult] of [
    [1, 1, 1],
    [2, 1, 2],
    [1, 2, 1],
    [1, 3, 2],
  ] as const) {
    it(`depthwiseConv2d stride ${stride} dilation ${dilation} multiplier ${mult}`, async () => {
      await compareGrads(
        `depthwise s${stride} d${dilation} m${mult}`,
        (x, w) => readout(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, 'same', 'NHWC', dilation), 4),
        [randn(rng, [2, 10, 9, 3]), randn(rng, [3, 3, 3, mult])],
      );
    });
  }

  it('gather (embedding lookup) with repeated ids', async () => {
    const ids = Int32Array.from([3, 0, 3, 7, 1, 3, 9, 0]);
    await compareGrads(
      'gather',
      (table, idx) => readout(tf.gather(table!, idx as tf.Tensor1D), 5),
      [randn(rng, [10, 6])],
      () => [tf.tensor1d(ids, 'int32')],
    );
  });

  it('gather along axis 1', async () => {
    const ids = Int32Array.from([2, 2, 0, 4]);
    await compareGrads(
      'gather axis 1',
      (table, idx) => readout(tf.gather(table!, idx as tf.Tensor1D, 1), 6),
      [randn(rng, [3, 5, 2])],
      () => [tf.tensor1d(ids, 'int32')],
    );
  });
});
}
