/**
 * DPM-Solver++ multistep samplers (Lu et al. 2022, https://arxiv.org/abs/2211.01095)
 * in k-diffusion's form: the data-prediction (x0) solver written with
 * lambda = t = -log(sigma), in the VE frame where alpha = 1.
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

/**
 * DPM-Solver++(2M): Lu et al. 2022 Alg. 2 (multistep second order; k-diffusion
 * `sample_dpmpp_2m`). With t = -log sigma, h_i = t_{i+1} - t_i, r_i = h_{i-1} / h_i:
 *
 *   D_i = (1 + 1/(2 r_i)) D(x_i; sigma_i) - 1/(2 r_i) D(x_{i-1}; sigma_{i-1})
 *   x_{i+1} = (sigma_{i+1} / sigma_i) x_i - (e^{-h_i} - 1) D_i
 *
 * The first step, and the step onto sigma = 0, are first order (D_i = D(x_i; sigma_i);
 * onto 0 this is x_{i+1} = D(x_i; sigma_i)). One denoiser call per step.
 */
export function dpmSolverPP2M(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: SamplerOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'dpmpp-2m');
    checkBatch(xInit, 'dpmpp-2m');
    const n = s.length - 1;
    let x = start(xInit);
    let oldDenoised: tf.Tensor | null = null;
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      const old = oldDenoised;
      if (sigmaNext === 0) {
        // (sigma_{i+1}/sigma_i) -> 0 and -(e^{-h} - 1) -> 1: the step is the denoised estimate itself.
        x = advance(x, () => tf.clone(denoised));
      } else {
        const h = Math.log(sigma / sigmaNext);
        const ratio = sigmaNext / sigma;
        const em1 = Math.expm1(-h);
        x = advance(x, () => {
          let dd: tf.Tensor = denoised;
          if (old) {
            const hLast = Math.log((s[i - 1] as number) / sigma);
            const r = hLast / h;
            dd = tf.sub(tf.mul(denoised, 1 + 1 / (2 * r)), tf.mul(old, 1 / (2 * r)));
          }
          return tf.sub(tf.mul(x, ratio), tf.mul(dd, em1));
        });
      }
      old?.dispose();
      oldDenoised = denoised;
    }
    oldDenoised?.dispose();
    return x;
  });
}

export interface DpmSdeOptions extends SamplerOptions {
  /** Stochasticity: 0 gives the ODE solver's first-order/2M-like steps, 1 the reverse SDE (default 1). */
  readonly eta?: number;
  /** Scale of the injected noise (default 1). */
  readonly sNoise?: number;
  /** The second-order correction: 'midpoint' (default) or 'heun', as in k-diffusion. */
  readonly solverType?: 'midpoint' | 'heun';
}

/**
 * DPM-Solver++(2M) SDE (SDE-DPM-Solver++(2M) of Lu et al. 2022,
 * https://arxiv.org/abs/2211.01095, in k-diffusion's form `sample_dpmpp_2m_sde`).
 * With h = log(sigma_i / sigma_{i+1}) and eta:
 *
 *   x_{i+1} = (sigma_{i+1}/sigma_i) e^{-eta h} x_i + (1 - e^{-(1+eta) h}) D_i
 *             + c (D_i - D_{i-1}) / r_i                         (second-order correction)
 *             + sigma_{i+1} sqrt(1 - e^{-2 eta h}) S_noise z
 *
 * with r_i = h_{i-1} / h_i and c = (1 - e^{-(1+eta)h}) / 2 ('midpoint') or
 * c = 1 - (1 - e^{-(1+eta)h}) / ((1+eta) h) ('heun'); the first step has no
 * correction and the step onto sigma = 0 returns D. k-diffusion draws z from a Brownian tree by default; here
 * it is one rng.normalTensor per step with sigma_{i+1} > 0 (when eta > 0), in
 * the same place. One denoiser call per step.
 */
export function dpmSolverPP2MSDE(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: DpmSdeOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'dpmpp-2m-sde');
    checkBatch(xInit, 'dpmpp-2m-sde');
    const eta = options?.eta ?? 1;
    const sNoise = options?.sNoise ?? 1;
    const solverType = options?.solverType ?? 'midpoint';
    if (solverType !== 'midpoint' && solverType !== 'heun') {
      throw new Error(`dpmpp-2m-sde: solverType must be 'heun' or 'midpoint', got '${String(solverType)}'`);
    }
    if (!(eta >= 0)) throw new Error(`dpmpp-2m-sde: eta must be >= 0, got ${eta}`);
    const n = s.length - 1;
    let x = start(xInit);
    let oldDenoised: tf.Tensor | null = null;
    let hLast: number | null = null;
    let h: number | null = null;
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      const old = oldDenoised;
      if (sigmaNext === 0) {
        x = advance(x, () => tf.clone(denoised));
      } else {
        const hi = Math.log(sigma / sigmaNext);
        h = hi;
        const etaH = eta * hi;
        const rng = eta ? needRng(options, 'dpmpp-2m-sde', 'eta > 0') : undefined;
        const prevH = hLast;
        x = advance(x, () => {
          const oneMinus = -Math.expm1(-hi - etaH); // 1 - e^{-(h + eta h)}
          let next = tf.add(tf.mul(x, (sigmaNext / sigma) * Math.exp(-etaH)), tf.mul(denoised, oneMinus));
          if (old && prevH !== null) {
            const r = prevH / hi;
            const c = solverType === 'heun' ? oneMinus / (-hi - etaH) + 1 : 0.5 * oneMinus;
            next = tf.add(next, tf.mul(tf.sub(denoised, old), c / r));
          }
          if (rng) {
            const std = sigmaNext * Math.sqrt(-Math.expm1(-2 * etaH)) * sNoise;
            next = tf.add(next, tf.mul(rng.normalTensor(x.shape), std));
          }
          return next;
        });
      }
      old?.dispose();
      oldDenoised = denoised;
      hLast = h;
    }
    oldDenoised?.dispose();
    return x;
  });
}
