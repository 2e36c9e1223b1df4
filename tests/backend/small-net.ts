import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { useBackend, type BackendName } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

/**
 * A small class-conditional conv denoiser trained with Adam, the same on
 * every backend from identical weights and data: the backend tests compare
 * its per-step losses with the cpu backend's, and a step must not leak. It
 * exercises every training kernel difflab adds to wasm: Conv2DBackpropFilter/Input (conv2d, strided conv2d, dilated
 * conv1d, conv2dTranspose), the depthwise gradients and UnsortedSegmentSum
 * (gradient of the class-embedding gather).
 */

const B = 6;
const H = 8;
const C = 8;
const CLASSES = 5;
export const STEPS = 6;

interface Init {
  readonly [name: string]: { shape: number[]; values: Float32Array };
}

function initWeights(rng: Rng): Init {
  const w = (shape: number[], fanIn: number) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() / Math.sqrt(fanIn);
    return { shape, values };
  };
  return {
    conv1: w([3, 3, 2, C], 18),
    bias1: w([C], 10),
    embed: w([CLASSES, C], 1),
    dil: w([3, C, C], 3 * C),
    depth: w([3, 3, C, 1], 9),
    down: w([3, 3, C, C], 9 * C),
    up: w([3, 3, 2, C], 9 * C),
  };
}

function batch(rng: Rng, step: number) {
  const n = B * H * H * 2;
  const x = new Float32Array(n);
  const noise = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    noise[i] = rng.normal();
    x[i] = Math.sin((i % (H * H * 2)) * 0.3 + step) + 0.5 * noise[i]!;
  }
  const labels = Int32Array.from({ length: B }, (_, i) => (i + step) % CLASSES);
  return { x, noise, labels };
}

const silu = (t: tf.Tensor) => tf.mul(t, tf.sigmoid(t));

/**
 * Trains the net on `backend` from fixed weights and data for STEPS Adam steps; asserts that no step after the first
 * leaks tensors or backend buffers. Returns the per-step losses and the final weights.
 */
export async function trainSmallNet(backend: BackendName): Promise<{ losses: number[]; weights: Float32Array[] }> {
  await useBackend(backend);
  const init = initWeights(new Rng(2024));
  const vars = Object.fromEntries(
    Object.entries(init).map(([k, v]) => [k, tf.variable(tf.tensor(v.values, v.shape), true, `${backend}_${k}`)]),
  ) as Record<keyof Init & string, tf.Variable>;
  const v = (k: string) => vars[k] as tf.Variable;
  const optimizer = tf.train.adam(1e-2, 0.9, 0.999, 1e-4);
  const dataRng = new Rng(7);
  const losses: number[] = [];

  const model = (x: tf.Tensor4D, labels: tf.Tensor1D): tf.Tensor4D => {
    const emb = tf.reshape(tf.gather(v('embed'), labels), [B, 1, 1, C]);
    let h = silu(tf.add(tf.add(tf.conv2d(x, v('conv1') as tf.Tensor4D, 1, 'same'), v('bias1')), emb)) as tf.Tensor4D;
    // Rows as one sequence: a dilated 1-D conv (DiffWave-style).
    const seq = tf.conv1d(tf.reshape(h, [B, H * H, C]) as tf.Tensor3D, v('dil') as tf.Tensor3D, 1, 'same', 'NWC', 2);
    h = tf.add(h, silu(tf.reshape(seq, [B, H, H, C]))) as tf.Tensor4D;
    h = silu(tf.depthwiseConv2d(h, v('depth') as tf.Tensor4D, 1, 'same', 'NHWC', 2)) as tf.Tensor4D;
    const low = silu(tf.conv2d(h, v('down') as tf.Tensor4D, 2, 'same')) as tf.Tensor4D;
    return tf.conv2dTranspose(low, v('up') as tf.Tensor4D, [B, H, H, 2], 2, 'same');
  };

  const step = async (i: number) => {
    const { x, noise, labels } = batch(dataRng, i);
    const loss = tf.tidy(() => {
      const xt = tf.tensor4d(x, [B, H, H, 2]);
      const nt = tf.tensor4d(noise, [B, H, H, 2]);
      const lt = tf.tensor1d(labels, 'int32');
      const cost = optimizer.minimize(() => tf.mean(tf.square(tf.sub(model(xt, lt), nt))) as tf.Scalar, true);
      if (!cost) throw new Error('minimize returned no cost');
      return cost;
    });
    losses.push((await loss.data())[0]!); // async: webgpu cannot read synchronously in Node
    loss.dispose();
  };

  await step(0); // creates Adam's slot variables
  const heap = tf.backend() as unknown as { numDataIds(): number };
  const heapBefore = heap.numDataIds();
  for (let i = 1; i < STEPS; i++) await expectNoTensorLeak(() => step(i), `${backend} training step ${i}`);
  expect(heap.numDataIds() - heapBefore, `${backend}: backend buffers leaked`).toBe(0);

  const weights = await Promise.all(Object.values(vars).map(async (t) => Float32Array.from(await t.data())));
  optimizer.dispose();
  tf.dispose(Object.values(vars));
  return { losses, weights };
}

type Trained = Awaited<ReturnType<typeof trainSmallNet>>;

/** Per-step losses within 1e-4 and final weights within 1e-3 (relative) of the cpu run; the loss went down. */
export function expectSameTraining(got: Trained, cpu: Trained): void {
  expect(got.losses).toHaveLength(STEPS);
  got.losses.forEach((l, i) => {
    expect(Number.isFinite(l)).toBe(true);
    expect(Math.abs(l - cpu.losses[i]!) / Math.abs(cpu.losses[i]!), `loss at step ${i}: ${l} vs ${cpu.losses[i]}`).toBeLessThan(1e-4);
  });
  // Training moved the weights, identically on both backends.
  got.weights.forEach((w, i) => expect(maxRelError(w, cpu.weights[i]!), `weight ${i}`).toBeLessThan(1e-3));
  expect(got.losses[STEPS - 1]).toBeLessThan(got.losses[0]!);
}
