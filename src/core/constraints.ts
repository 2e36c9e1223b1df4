/**
 * Constraints on generation as denoiser wrappers: the result is again a
 * Denoiser, so it composes with every sampler, with classifier-free guidance
 * and with the other wrappers, and knows no modality. Text infilling (known
 * tokens at any positions), image inpainting (known pixels) and
 * Diffusion-LM's clamping are all uses of these two functions. `repaint`
 * wraps a sampler instead (it must re-noise between steps), and returns
 * again a sampler of the same signature.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './random.js';
import { checkSigmas, type Sampler, type SamplerOptions } from './samplers/common.js';
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

export interface RepaintOptions {
  /**
   * Resamplings per step, U in Lugmayr et al. (their best: 10 with jumps of
   * 1, sec. 4.2). U = 1 is plain replacement of the iterate.
   */
  readonly resample: number;
  /** The stream for the known entries' noise and the re-noising. */
  readonly rng: Rng;
}

/**
 * RePaint (Lugmayr et al. 2022, https://arxiv.org/abs/2201.09865, Algorithm 1
 * with jump length 1): each step sigma_i -> sigma_i+1 of `sampler` is taken
 * U times; after each, the known entries are set to values + sigma_i+1 eps
 * (their eq. 8), and, before the next try, the whole iterate is diffused back
 * to sigma_i with fresh noise of variance sigma_i^2 - sigma_i+1^2 (eq. 9 in
 * the variance-exploding form). The free entries so get U chances per level
 * to agree with the known ones, which replacement alone gives them once: on a
 * correlated Gaussian (tests/core/constraints.test.ts) the free coordinate's
 * conditional mean goes from 56 % of the exact value (U = 1) to 94 % (U = 10)
 * and 97 % (U = 20) with ancestral steps.
 *
 * The sampler is called one step at a time (sigmas [sigma_i, sigma_i+1]), so
 * multistep samplers (lms, dpmpp-2m) lose their history and run as their
 * first-order start; RePaint itself used ancestral (DDPM) steps. Costs U
 * times the sampler's network evaluations. The onStep callback sees the last
 * try of each step, with the outer step index.
 */
export function repaint<O extends SamplerOptions>(sampler: Sampler<O>, known: KnownValues, options: RepaintOptions): Sampler<O> {
  checkMask(known);
  const U = options.resample;
  if (!Number.isInteger(U) || U < 1) throw new Error(`repaint: resample must be an integer >= 1, got ${U}`);
  return (denoiser, x, sigmas, samplerOptions, onStep) => {
    const s = checkSigmas(sigmas, 'repaint');
    const total = s.length - 1;
    let cur = x.clone();
    try {
      for (let i = 0; i < total; i++) {
        const [hi, lo] = [s[i] as number, s[i + 1] as number];
        for (let u = 0; u < U; u++) {
          const report = onStep && u === U - 1 ? (info: Parameters<NonNullable<typeof onStep>>[0]) => onStep({ ...info, i, total }) : undefined;
          const stepped = sampler(denoiser, cur, [hi, lo], samplerOptions, report);
          const next = tf.tidy(() => {
            const m = tf.broadcastTo(known.mask, stepped.shape);
            const v = tf.broadcastTo(known.values, stepped.shape);
            const knownNoisy = lo > 0 ? tf.add(v, tf.mul(lo, options.rng.normalTensor(stepped.shape))) : v;
            const merged = tf.add(tf.mul(m, knownNoisy), tf.mul(tf.sub(1, m), stepped));
            if (u === U - 1) return merged;
            return tf.add(merged, tf.mul(Math.sqrt(hi * hi - lo * lo), options.rng.normalTensor(stepped.shape)));
          });
          stepped.dispose();
          cur.dispose();
          cur = next;
        }
      }
      return cur;
    } catch (err) {
      cur.dispose();
      throw err;
    }
  };
}

function checkMask(known: KnownValues): void {
  const m = known.mask.dataSync();
  for (let i = 0; i < m.length; i++) {
    if (m[i] !== 0 && m[i] !== 1) throw new Error(`replaceKnown: mask entries must be 0 or 1, found ${m[i]} at ${i}`);
  }
}
