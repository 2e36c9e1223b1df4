/**
 * DDPM ancestral sampling and DDIM, written in sigma space so they run with
 * any schedule: a VE-frame noise level sigma corresponds to the VP cumulative
 * product alpha_bar = 1 / (1 + sigma^2) (Karras et al. 2022,
 * https://arxiv.org/abs/2206.00364, Table 1: sigma(t) = sqrt(1/alpha_bar - 1)),
 * and a VP iterate x_vp = sqrt(alpha_bar) x. Each step maps x to the VP frame,
 * applies the paper's update, and maps back; the coefficients below are that
 * composition, with 1 - alpha_bar = sigma^2 / (1 + sigma^2) and
 * 1 - alpha_bar_t / alpha_bar_{t-1} = (sigma_t^2 - sigma_{t-1}^2) / (1 + sigma_t^2)
 * written out so nothing cancels catastrophically at small sigma.
 */
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from '../types.js';
import {
  advance,
  checkBatch,
  checkSigmas,
  denoise,
  needRng,
  report,
  start,
  type SamplerOptions,
  type Sigmas,
  type StepCallback,
} from './common.js';

export interface DdpmOptions extends SamplerOptions {
  /**
   * The reverse-step variance (Ho et al. 2020, https://arxiv.org/abs/2006.11239,
   * Sec. 3.2): 'posterior' (default) uses beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
   * (eq. 7), 'beta' uses sigma_t^2 = beta_t.
   */
  readonly variance?: 'posterior' | 'beta';
}

/**
 * DDPM ancestral sampling (Ho et al. 2020, https://arxiv.org/abs/2006.11239,
 * Alg. 2) with x0 predicted by the denoiser: each step samples the posterior
 * q(x_{t-1} | x_t, x0 = D(x_t)) of eq. 6-7,
 *
 *   mu = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
 *   x_{t-1} = mu + sqrt(var) z,
 *
 * with alpha_t = abar_t / abar_{t-1} between consecutive sigmas. No noise on
 * the step onto sigma = 0 (Alg. 2: z = 0 at t = 1). With 'posterior' variance
 * this is exactly euler-ancestral with eta = 1 (the tests check it). One
 * denoiser call and (if sigma_{i+1} > 0) one rng.normalTensor per step.
 */
export function ddpm(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: DdpmOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'ddpm');
    checkBatch(xInit, 'ddpm');
    const variance = options?.variance ?? 'posterior';
    if (variance !== 'posterior' && variance !== 'beta') {
      throw new Error(`ddpm: variance must be 'posterior' or 'beta', got '${String(variance)}'`);
    }
    const n = s.length - 1;
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const rng = sigmaNext > 0 ? needRng(options, 'ddpm') : undefined;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      const abar = 1 / (1 + sigma ** 2);
      const abarPrev = 1 / (1 + sigmaNext ** 2);
      const oneMinusAbar = sigma ** 2 / (1 + sigma ** 2);
      const oneMinusAbarPrev = sigmaNext ** 2 / (1 + sigmaNext ** 2);
      const alpha = abar / abarPrev;
      const beta = (sigma ** 2 - sigmaNext ** 2) / (1 + sigma ** 2);
      // Posterior mean (eq. 7) in the VP frame, x_t^vp = sqrt(abar) x, then divided by sqrt(abarPrev).
      const cX0 = (Math.sqrt(abarPrev) * beta) / oneMinusAbar / Math.sqrt(abarPrev);
      const cXt = ((Math.sqrt(alpha) * oneMinusAbarPrev) / oneMinusAbar) * Math.sqrt(abar) / Math.sqrt(abarPrev);
      const varVp = variance === 'posterior' ? (oneMinusAbarPrev / oneMinusAbar) * beta : beta;
      const std = Math.sqrt(varVp / abarPrev);
      x = advance(x, () => {
        const mean = tf.add(tf.mul(denoised, cX0), tf.mul(x, cXt));
        return rng ? tf.add(mean, tf.mul(rng.normalTensor(x.shape), std)) : mean;
      });
      denoised.dispose();
    }
    return x;
  });
}

export interface DdimOptions extends SamplerOptions {
  /** eta of Song et al. 2021 eq. 16: 0 (default) is deterministic DDIM, 1 is DDPM's posterior variance. */
  readonly eta?: number;
}

/**
 * DDIM (Song, Meng & Ermon 2021, https://arxiv.org/abs/2010.02502, eq. 12):
 *
 *   x_{t-1} = sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1} - s_t^2) eps_hat + s_t z,
 *   s_t(eta) = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1})   (eq. 16)
 *
 * with x0_hat = D(x; sigma) and eps_hat = (x - x0_hat) / sigma (the VE frame's
 * x = x0 + sigma eps). s_t^2 is capped at 1 - abar_{t-1} (only matters for
 * eta > 1; k-diffusion caps its sigma_up the same way). In the VE frame this is
 * x_{i+1} = x0_hat + sqrt(sigma_{i+1}^2 - s^2 / abar_{i+1}) eps_hat + (s / sqrt(abar_{i+1})) z;
 * eta = 0 equals Euler and eta = 1 equals DDPM / euler-ancestral (tests check both).
 * One denoiser call per step; one rng.normalTensor per step when eta > 0 and sigma_{i+1} > 0.
 */
export function ddim(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: DdimOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'ddim');
    checkBatch(xInit, 'ddim');
    const eta = options?.eta ?? 0;
    if (!(eta >= 0)) throw new Error(`ddim: eta must be >= 0, got ${eta}`);
    const n = s.length - 1;
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const rng = eta > 0 && sigmaNext > 0 ? needRng(options, 'ddim', 'eta > 0') : undefined;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      const abarPrev = 1 / (1 + sigmaNext ** 2);
      const oneMinusAbar = sigma ** 2 / (1 + sigma ** 2);
      const oneMinusAbarPrev = sigmaNext ** 2 / (1 + sigmaNext ** 2);
      const oneMinusRatio = (sigma ** 2 - sigmaNext ** 2) / (1 + sigma ** 2); // 1 - abar_t / abar_{t-1}
      const st2 = Math.min(eta ** 2 * (oneMinusAbarPrev / oneMinusAbar) * oneMinusRatio, oneMinusAbarPrev);
      // Divide eq. 12 by sqrt(abar_{t-1}) to return to the VE frame.
      const cEps = Math.sqrt(Math.max(oneMinusAbarPrev - st2, 0) / abarPrev);
      const cZ = Math.sqrt(st2 / abarPrev);
      x = advance(x, () => {
        const epsHat = tf.div(tf.sub(x, denoised), sigma);
        const next = tf.add(denoised, tf.mul(epsHat, cEps));
        return rng ? tf.add(next, tf.mul(rng.normalTensor(x.shape), cZ)) : next;
      });
      denoised.dispose();
    }
    return x;
  });
}
