/**
 * The k-diffusion family: Euler, Euler ancestral, Heun (EDM) and LMS, each a
 * line-by-line port of k-diffusion's `sampling.py`
 * (https://github.com/crowsonkb/k-diffusion/blob/master/k_diffusion/sampling.py)
 * in the VE frame of Karras et al. 2022 (https://arxiv.org/abs/2206.00364).
 */
import * as tf from '@tensorflow/tfjs';
import type { Denoiser } from '../types.js';
import {
  advance,
  ancestralStep,
  checkBatch,
  checkSigmas,
  denoise,
  needRng,
  report,
  start,
  toD,
  type SamplerOptions,
  type Sigmas,
  type StepCallback,
} from './common.js';

/** Stochastic churn of Karras et al. 2022, Alg. 2 (k-diffusion's s_churn, s_tmin, s_tmax, s_noise). */
export interface ChurnOptions extends SamplerOptions {
  /** S_churn: total churn; gamma_i = min(S_churn / N, sqrt(2) - 1) for sigma_i in [S_tmin, S_tmax]. Default 0 (deterministic). */
  readonly sChurn?: number;
  /** S_tmin (default 0). */
  readonly sTmin?: number;
  /** S_tmax (default Infinity). */
  readonly sTmax?: number;
  /** S_noise: std of the churn noise (default 1). */
  readonly sNoise?: number;
}

/**
 * One churn step, Karras et al. 2022 Alg. 2 lines 4-6: gamma_i, sigma_hat = sigma_i (1 + gamma_i),
 * x_hat = x + sqrt(sigma_hat^2 - sigma_i^2) eps with eps ~ N(0, S_noise^2 I).
 * Like k-diffusion, the noise is drawn on every step (whether or not gamma_i > 0)
 * so that noise sequences line up; unlike it, nothing is drawn when S_churn = 0.
 */
function churn(
  x: tf.Tensor,
  sigma: number,
  n: number,
  options: ChurnOptions | undefined,
  name: string,
): { x: tf.Tensor; sigmaHat: number } {
  const sChurn = options?.sChurn ?? 0;
  if (!(sChurn >= 0)) throw new Error(`${name}: sChurn must be >= 0, got ${sChurn}`);
  if (sChurn === 0) return { x, sigmaHat: sigma };
  const sTmin = options?.sTmin ?? 0;
  const sTmax = options?.sTmax ?? Infinity;
  const sNoise = options?.sNoise ?? 1;
  const rng = needRng(options, name, 'sChurn > 0');
  const gamma = sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / n, Math.SQRT2 - 1) : 0;
  const sigmaHat = sigma * (gamma + 1);
  const eps = tf.tidy(() => tf.mul(rng.normalTensor(x.shape), sNoise));
  if (gamma > 0) {
    const next = advance(x, () => tf.add(x, tf.mul(eps, Math.sqrt(sigmaHat ** 2 - sigma ** 2))));
    eps.dispose();
    return { x: next, sigmaHat };
  }
  eps.dispose();
  return { x, sigmaHat };
}

/**
 * Euler steps on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma:
 * Karras et al. 2022 Alg. 1 with Euler steps (first order), plus the optional
 * churn of Alg. 2 (k-diffusion `sample_euler`). One denoiser call per step.
 */
export function euler(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: ChurnOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'euler');
    checkBatch(xInit, 'euler');
    const n = s.length - 1;
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const churned = churn(x, sigma, n, options, 'euler');
      x = churned.x;
      const sigmaHat = churned.sigmaHat;
      const denoised = denoise(denoiser, x, sigmaHat, options?.cond);
      report(onStep, i, n, sigma, sigmaHat, sigmaNext, x, denoised);
      // x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) d, d = (x_hat - D(x_hat; sigma_hat)) / sigma_hat  (Alg. 2 lines 7-8)
      x = advance(x, () => tf.add(x, tf.mul(toD(x, sigmaHat, denoised), sigmaNext - sigmaHat)));
      denoised.dispose();
    }
    return x;
  });
}

export interface AncestralOptions extends SamplerOptions {
  /** Fraction of the DDPM posterior noise to re-inject (k-diffusion eta, default 1). */
  readonly eta?: number;
  /** Scale of the injected noise (default 1). */
  readonly sNoise?: number;
}

/**
 * Ancestral sampling with Euler steps (k-diffusion `sample_euler_ancestral`):
 * an Euler step down to sigma_down, then fresh noise of std sigma_up
 * (`ancestralStep`); with eta = 1 this is DDPM's ancestral sampler in the VE
 * frame (Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 6-7). One
 * rng.normalTensor per step with sigma_{i+1} > 0, after the Euler step, like
 * k-diffusion's randn_like (drawn even when eta = 0).
 */
export function eulerAncestral(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: AncestralOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'euler-ancestral');
    checkBatch(xInit, 'euler-ancestral');
    const eta = options?.eta ?? 1;
    const sNoise = options?.sNoise ?? 1;
    if (!(eta >= 0)) throw new Error(`euler-ancestral: eta must be >= 0, got ${eta}`);
    const n = s.length - 1;
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const rng = sigmaNext > 0 ? needRng(options, 'euler-ancestral') : undefined;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmaNext, eta);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      x = advance(x, () => {
        let next = tf.add(x, tf.mul(toD(x, sigma, denoised), sigmaDown - sigma));
        if (rng) next = tf.add(next, tf.mul(rng.normalTensor(x.shape), sNoise * sigmaUp));
        return next;
      });
      denoised.dispose();
    }
    return x;
  });
}

/**
 * Heun's second-order method on the probability-flow ODE with the stochastic
 * churn of Karras et al. 2022 Alg. 2 (k-diffusion `sample_heun`): an Euler
 * predictor, then the trapezoidal correction d' = (d_i + d_{i+1}) / 2 (Alg. 2
 * lines 9-11); the step onto sigma = 0 is a plain Euler step (line 9's
 * condition). 2 denoiser calls per step, 1 for the step to sigma = 0.
 */
export function heun(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: ChurnOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'heun');
    checkBatch(xInit, 'heun');
    const n = s.length - 1;
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const churned = churn(x, sigma, n, options, 'heun');
      x = churned.x;
      const sigmaHat = churned.sigmaHat;
      const denoised = denoise(denoiser, x, sigmaHat, options?.cond);
      report(onStep, i, n, sigma, sigmaHat, sigmaNext, x, denoised);
      const dt = sigmaNext - sigmaHat;
      if (sigmaNext === 0) {
        x = advance(x, () => tf.add(x, tf.mul(toD(x, sigmaHat, denoised), dt)));
      } else {
        const d = tf.tidy(() => toD(x, sigmaHat, denoised));
        const x2 = tf.tidy(() => tf.add(x, tf.mul(d, dt)));
        const denoised2 = denoise(denoiser, x2, sigmaNext, options?.cond);
        x = advance(x, () => {
          const d2 = toD(x2, sigmaNext, denoised2);
          return tf.add(x, tf.mul(tf.add(d, d2), dt / 2));
        });
        tf.dispose([d, x2, denoised2]);
      }
      denoised.dispose();
    }
    return x;
  });
}

export interface LmsOptions extends SamplerOptions {
  /** Number of past derivatives used (k-diffusion default 4). */
  readonly order?: number;
}

/** Gauss-Legendre nodes and weights on [-1, 1], 4 points: exact for polynomials of degree <= 7. */
const GL4_NODES = [-0.8611363115940526, -0.33998104358485626, 0.33998104358485626, 0.8611363115940526];
const GL4_WEIGHTS = [0.34785484513745385, 0.6521451548625461, 0.6521451548625461, 0.34785484513745385];

/**
 * k-diffusion's `linear_multistep_coeff(order, t, i, j)`: the integral over
 * [t_i, t_{i+1}] of the Lagrange basis polynomial through t_i, ..., t_{i-order+1}
 * that is 1 at t_{i-j} (Adams-Bashforth with variable steps; Hairer, Norsett &
 * Wanner, Solving ODEs I, 2nd ed., III.1 eq. 1.5). k-diffusion integrates it
 * with scipy's quad; the integrand is a polynomial of degree order-1 <= 7 here,
 * so 4-point Gauss-Legendre is exact.
 */
export function linearMultistepCoeff(order: number, t: readonly number[], i: number, j: number): number {
  if (order - 1 > i) throw new Error(`Order ${order} too high for step ${i}`);
  if (order > 8) throw new Error(`lms: order ${order} > 8 is not supported`);
  const a = t[i] as number;
  const b = t[i + 1] as number;
  const fn = (tau: number): number => {
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      prod *= (tau - (t[i - k] as number)) / ((t[i - j] as number) - (t[i - k] as number));
    }
    return prod;
  };
  let sum = 0;
  for (let q = 0; q < 4; q++) sum += (GL4_WEIGHTS[q] as number) * fn(0.5 * (b - a) * (GL4_NODES[q] as number) + 0.5 * (a + b));
  return 0.5 * (b - a) * sum;
}

/**
 * Linear multistep (Adams-Bashforth in sigma) on the probability-flow ODE
 * (k-diffusion `sample_lms`, order 4 by default; the first steps use all the
 * derivatives available). One denoiser call per step.
 */
export function lms(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: LmsOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'lms');
    checkBatch(xInit, 'lms');
    const order = options?.order ?? 4;
    if (!Number.isInteger(order) || order < 1 || order > 8) throw new Error(`lms: order must be an integer in [1, 8], got ${order}`);
    const n = s.length - 1;
    let x = start(xInit);
    const ds: tf.Tensor[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const sigma = s[i] as number;
        const denoised = denoise(denoiser, x, sigma, options?.cond);
        ds.push(tf.tidy(() => toD(x, sigma, denoised)));
        if (ds.length > order) (ds.shift() as tf.Tensor).dispose();
        report(onStep, i, n, sigma, sigma, s[i + 1] as number, x, denoised);
        denoised.dispose();
        const curOrder = Math.min(i + 1, order);
        const coeffs = Array.from({ length: curOrder }, (_, j) => linearMultistepCoeff(curOrder, s, i, j));
        x = advance(x, () => {
          let acc = x;
          coeffs.forEach((c, j) => {
            acc = tf.add(acc, tf.mul(ds[ds.length - 1 - j] as tf.Tensor, c));
          });
          return acc;
        });
      }
    } finally {
      tf.dispose(ds);
    }
    return x;
  });
}
