import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../random.js';

/**
 * Weight initializers. All randomness comes from a difflab `Rng` and the
 * values are computed in JS, so wasm, cpu and any other backend start from
 * bit-identical weights.
 */

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** U(-bound, bound). */
export function uniformInit(rng: Rng, shape: readonly number[], bound: number): tf.Tensor {
  const n = size(shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng.uniform() - 1) * bound;
  return tf.tensor(out, [...shape], 'float32');
}

/** N(0, std^2). */
export function normalInit(rng: Rng, shape: readonly number[], std = 1): tf.Tensor {
  const n = size(shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
  return tf.tensor(out, [...shape], 'float32');
}

/**
 * PyTorch's `kaiming_uniform_(w, a, mode='fan_in', nonlinearity='leaky_relu')`
 * (He et al. 2015, https://arxiv.org/abs/1502.01852):
 * bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).
 * With a = sqrt(5), nn.Linear's and nn.Conv*'s default, the bound is 1/sqrt(fan_in).
 */
export function kaimingUniform(rng: Rng, shape: readonly number[], fanIn: number, a = Math.sqrt(5)): tf.Tensor {
  const gain = Math.sqrt(2 / (1 + a * a));
  return uniformInit(rng, shape, gain * Math.sqrt(3 / fanIn));
}

/** PyTorch's default bias of nn.Linear / nn.Conv*: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function defaultBias(rng: Rng, shape: readonly number[], fanIn: number): tf.Tensor {
  return uniformInit(rng, shape, fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0);
}

/**
 * How a layer starts:
 * - 'default': PyTorch's defaults (kaiming-uniform, a = sqrt(5); bias U(+-1/sqrt(fan_in)));
 * - 'zeros':   weight and bias zero, for the last layer of a residual branch
 *              and a network's output layer, as DDPM (Ho et al. 2020,
 *              https://arxiv.org/abs/2006.11239, `init_scale=0.`) and improved
 *              DDPM (Nichol & Dhariwal 2021, https://arxiv.org/abs/2102.09672,
 *              `zero_module`) do, so every residual block starts as the identity.
 */
export type LayerInit = 'default' | 'zeros';
