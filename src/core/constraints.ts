/**
 * Constraints on generation as denoiser wrappers: the result is again a
 * Denoiser, so it composes with every sampler, with classifier-free guidance
 * and with the other wrappers, and knows no modality. Text infilling (known
 * tokens at any positions), image inpainting (known pixels) and
 * Diffusion-LM's clamping are all uses of these two functions.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './random.js';
import type { Conditioning, Denoiser } from './types.js';

/** Known parts of x0: `values` and a 0/1 `mask` (1 = known), each broadcastable to x's shape [B, ...]. */
export interface KnownValues {
  readonly values: tf.Tensor;
  readonly mask: tf.Tensor;
}

export interface ReplacementOptions {
  /**
   * Also replace the known entries of the denoiser's *input* by the known
   * values noised to the current level, x0 + sigma eps with fresh eps from
   * this stream (the replacement step of Song et al. 2021,
   * https://arxiv.org/abs/2011.13456, appendix I.2, and RePaint, Lugmayr et
   * al. 2022, https://arxiv.org/abs/2201.09865, eq. 8). Without it the
   * network sees the sampler's own iterate, whose known entries the replaced
   * x0_hat already keep on a path x0 + sigma * (initial noise direction).
   */
  readonly renoise?: Rng;
}

/**
 * Imputation by replacement: D'(x; sigma) = m * v + (1 - m) * D(x'; sigma),
 * where x' is x, or with `renoise` m * (v + sigma eps) + (1 - m) * x. Every
 * sampler steps towards D', so the known entries end exactly at `values`
 * (the last step of a sampler ending at sigma = 0 returns D') and the free
 * entries follow the model's denoiser given noisy versions of the known
 * ones. This is an approximation of sampling p(x_free | x_known): exact when
 * the known and free entries are independent under the model, and close when
 * the known entries identify the mode the free ones belong to; Song et al.
 * (appendix I.2) and Lugmayr et al. (sec. 4.2) discuss the gap.
 */
export function replaceKnown(denoiser: Denoiser, known: KnownValues, options: ReplacementOptions = {}): Denoiser {
  checkMask(known);
  return (x: tf.Tensor, sigma: tf.Tensor1D, cond?: Conditioning) =>
    tf.tidy(() => {
      const b = x.shape[0] as number;
      const m = tf.broadcastTo(known.mask, x.shape);
      const v = tf.broadcastTo(known.values, x.shape);
      const free = tf.sub(1, m);
      let input = x;
      if (options.renoise) {
        const sig = tf.reshape(sigma, [b, ...new Array<number>(x.rank - 1).fill(1)]);
        const noisy = tf.add(v, tf.mul(sig, options.renoise.normalTensor(x.shape)));
        input = tf.add(tf.mul(m, noisy), tf.mul(free, x));
      }
      const d = denoiser(input, sigma, cond);
      return tf.add(tf.mul(m, v), tf.mul(free, d));
    });
}

export interface ProjectionOptions {
  /** Project only at noise levels sigma <= this (default: every level). */
  readonly maxSigma?: number;
}

/**
 * Projects every denoised estimate onto a constraint set: D'(x; sigma) =
 * P(D(x; sigma)). Diffusion-LM's clamping trick (Li et al. 2022,
 * https://arxiv.org/abs/2205.14217, sec. 4.2: x0_hat is mapped to its
 * nearest word embedding before each step) and DDPM's clipping of x0_hat to
 * the data range [-1, 1] (Ho et al. 2020, `clip_denoised`) are such
 * projections. Rows whose sigma is above `maxSigma` are left as D gave them.
 */
export function projectDenoised(denoiser: Denoiser, project: (x0: tf.Tensor) => tf.Tensor, options: ProjectionOptions = {}): Denoiser {
  const maxSigma = options.maxSigma ?? Infinity;
  return (x: tf.Tensor, sigma: tf.Tensor1D, cond?: Conditioning) =>
    tf.tidy(() => {
      const d = denoiser(x, sigma, cond);
      if (maxSigma === Infinity) return project(d);
      const s = sigma.dataSync();
      if (s.every((v) => v > maxSigma)) return d;
      const b = x.shape[0] as number;
      const rows = tf.reshape(tf.lessEqual(sigma, maxSigma), [b, ...new Array<number>(x.rank - 1).fill(1)]);
      return tf.where(tf.broadcastTo(rows, d.shape), project(d), d);
    });
}

function checkMask(known: KnownValues): void {
  const m = known.mask.dataSync();
  for (let i = 0; i < m.length; i++) {
    if (m[i] !== 0 && m[i] !== 1) throw new Error(`replaceKnown: mask entries must be 0 or 1, found ${m[i]} at ${i}`);
  }
}
