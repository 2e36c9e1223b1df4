import * as tf from '@tensorflow/tfjs';
import { normalInit } from './init.js';
import { Linear, silu } from './layers.js';
import type { Scope } from './module.js';

/**
 * Embeddings of the scalar noise conditioning c_noise (a timestep index,
 * continuous time, ln(sigma)/4, ... whatever the parametrization passes).
 */

/**
 * The sinusoidal embedding of DDPM (Ho et al. 2020, https://arxiv.org/abs/2006.11239,
 * `get_timestep_embedding` in diffusion_tf/nn.py), the transformer's positional
 * encoding (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, sec. 3.5):
 * with half = floor(dim / 2) and f_i = maxPeriod^(-i / (half - 1)), i < half,
 *   emb(t) = [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})]
 * and a zero column appended when dim is odd. Frequencies run from 1 down to
 * 1/maxPeriod, so inputs from ~1e-3 (ln(sigma)/4 steps) up to ~maxPeriod
 * (timestep indices) are resolved.
 */
export function sinusoidalEmbedding(t: tf.Tensor, dim: number, maxPeriod = 10000): tf.Tensor2D {
  if (!Number.isInteger(dim) || dim < 2) throw new Error(`sinusoidalEmbedding: dim must be an integer >= 2, got ${dim}`);
  if (t.rank !== 1) throw new Error(`sinusoidalEmbedding: expected t of shape [B], got [${t.shape}]`);
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    const step = Math.log(maxPeriod) / Math.max(half - 1, 1);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp(-step * i);
    const args = tf.mul(tf.reshape(tf.cast(t, 'float32'), [-1, 1]), tf.tensor2d(freqs, [1, half]));
    const parts = [tf.sin(args), tf.cos(args)];
    if (dim % 2 === 1) parts.push(tf.zeros([t.shape[0] as number, 1]));
    return tf.concat(parts, 1) as tf.Tensor2D;
  });
}

/**
 * Random Fourier features (Tancik et al. 2020, https://arxiv.org/abs/2006.10739),
 * as NCSN++'s GaussianFourierProjection (Song et al. 2021,
 * https://arxiv.org/abs/2011.13456, app. H; input ln(sigma)):
 *   emb(t) = [sin(2 pi t w), cos(2 pi t w)],  w ~ N(0, scale^2), dim/2 of them.
 * The frequencies are fixed (not trained), so they are a buffer: a checkpoint
 * must store them (see ParamStore.buffers).
 */
export class FourierFeatures {
  readonly freqs: tf.Variable;

  constructor(
    scope: Scope,
    readonly dim: number,
    readonly scale = 16,
  ) {
    if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new Error(`FourierFeatures: dim must be an even integer >= 2, got ${dim}`);
    if (!(scale > 0)) throw new Error(`FourierFeatures: scale must be > 0, got ${scale}`);
    this.freqs = scope.buffer('freqs', normalInit(scope.rng, [1, dim / 2], scale));
  }

  /** t [B] -> [B, dim]. */
  apply(t: tf.Tensor): tf.Tensor2D {
    if (t.rank !== 1) throw new Error(`FourierFeatures: expected t of shape [B], got [${t.shape}]`);
    const args = tf.mul(tf.reshape(tf.cast(t, 'float32'), [-1, 1]), tf.mul(this.freqs, 2 * Math.PI));
    return tf.concat([tf.sin(args), tf.cos(args)], 1) as tf.Tensor2D;
  }
}

/**
 * A multi-layer perceptron Linear -> SiLU -> ... -> Linear (no activation
 * after the last layer). Layers are children `0`, `1`, ...
 */
export class Mlp {
  readonly layers: Linear[];

  constructor(scope: Scope, dims: readonly number[]) {
    if (dims.length < 2) throw new Error(`Mlp: needs at least [in, out] dims, got [${dims}]`);
    this.layers = [];
    for (let i = 0; i + 1 < dims.length; i++) this.layers.push(new Linear(scope.child(i), dims[i] as number, dims[i + 1] as number));
  }

  apply(x: tf.Tensor): tf.Tensor {
    let h = x;
    this.layers.forEach((layer, i) => {
      h = layer.apply(i === 0 ? h : silu(h));
    });
    return h;
  }
}

export type NoiseEmbeddingKind = 'sinusoidal' | 'fourier';

export interface NoiseEmbeddingOptions {
  readonly kind: NoiseEmbeddingKind;
  /** Width of the sinusoidal / Fourier features. */
  readonly dim: number;
  /** Width of the MLP's hidden layer and output (DDPM: 4 x the base channels). */
  readonly hidden: number;
  /**
   * c_noise is multiplied by this before embedding: e.g. 1000 for a
   * continuous time in [0, 1] (score_sde feeds t * 999 to DDPM++), 1 for
   * timestep indices or ln(sigma)/4.
   */
  readonly inputScale?: number;
  /** Sinusoidal: the longest period (10000 in DDPM). */
  readonly maxPeriod?: number;
  /** Fourier: the standard deviation of the frequencies (16 in NCSN++). */
  readonly fourierScale?: number;
}

/**
 * The noise-level embedding of DDPM / NCSN++: features of c_noise, then
 * Linear -> SiLU -> Linear to `hidden` (DDPM's `temb` dense layers). Each
 * residual block adds its own projection of SiLU(emb).
 */
export class NoiseEmbedding {
  readonly features: FourierFeatures | undefined;
  readonly mlp: Mlp;

  constructor(
    scope: Scope,
    readonly options: NoiseEmbeddingOptions,
  ) {
    this.features = options.kind === 'fourier' ? new FourierFeatures(scope.child('fourier'), options.dim, options.fourierScale ?? 16) : undefined;
    this.mlp = new Mlp(scope.child('mlp'), [options.dim, options.hidden, options.hidden]);
  }

  /** c_noise [B] -> [B, hidden]. */
  apply(cNoise: tf.Tensor): tf.Tensor2D {
    const scale = this.options.inputScale ?? 1;
    const c = tf.cast(cNoise, 'float32'); // integer timesteps are fine too
    const t = scale === 1 ? c : tf.mul(c, scale);
    const f = this.features ? this.features.apply(t) : sinusoidalEmbedding(t, this.options.dim, this.options.maxPeriod ?? 10000);
    return this.mlp.apply(f) as tf.Tensor2D;
  }
}
