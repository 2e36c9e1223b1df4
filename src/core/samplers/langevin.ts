/**
 * Score-based samplers that use Langevin dynamics: NCSN's annealed Langevin
 * dynamics and the predictor-corrector samplers of score SDEs. Both see the
 * model only through the score, obtained from the denoiser as
 * s(x; sigma) = (D(x; sigma) - x) / sigma^2 (Tweedie's formula; Karras et al.
 * 2022, https://arxiv.org/abs/2206.00364, eq. 3), so the same network serves
 * them and the ODE samplers.
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

/** s(x; sigma) = (D(x; sigma) - x) / sigma^2. */
function scoreFrom(x: tf.Tensor, denoised: tf.Tensor, sigma: number): tf.Tensor {
  return tf.div(tf.sub(denoised, x), sigma * sigma);
}

/** The noise levels a Langevin sampler visits: the positive entries of sigmas. */
function positiveLevels(s: readonly number[]): number[] {
  return s.filter((v) => v > 0);
}

export interface AldOptions extends SamplerOptions {
  /** epsilon: the step size at the smallest level (Song & Ermon 2019 used 2e-5 with sigma_L = 0.01). Default 2e-5. */
  readonly stepSize?: number;
  /** T: Langevin steps per noise level (default 100, as in the paper). */
  readonly stepsPerLevel?: number;
  /**
   * Finish with one denoising step x <- x + sigma_L^2 s(x; sigma_L) = D(x; sigma_L)
   * (Tweedie; Jolicoeur-Martineau et al. 2021, https://arxiv.org/abs/2009.05475, Sec. 2;
   * Song & Ermon 2020, https://arxiv.org/abs/2006.09011, Appendix). Default true.
   */
  readonly finalDenoise?: boolean;
}

/**
 * Annealed Langevin dynamics (Song & Ermon 2019, https://arxiv.org/abs/1907.05600, Alg. 1):
 * for each noise level sigma_i (the positive sigmas, descending; sigma_L the smallest),
 * alpha_i = epsilon sigma_i^2 / sigma_L^2, then T times
 *
 *   z ~ N(0, I);  x <- x + (alpha_i / 2) s(x; sigma_i) + sqrt(alpha_i) z.
 *
 * A trailing 0 in sigmas only marks the end (the optional final denoising step
 * goes there). Denoiser calls: L * T (+ 1 with finalDenoise); one
 * rng.normalTensor per Langevin step, after the denoiser call. onStep is
 * called once per level, with the level's first iterate.
 */
export function annealedLangevin(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: AldOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'ald');
    checkBatch(xInit, 'ald');
    const eps = options?.stepSize ?? 2e-5;
    const T = options?.stepsPerLevel ?? 100;
    const finalDenoise = options?.finalDenoise ?? true;
    if (!(eps > 0)) throw new Error(`ald: stepSize must be > 0, got ${eps}`);
    if (!Number.isInteger(T) || T < 1) throw new Error(`ald: stepsPerLevel must be an integer >= 1, got ${T}`);
    const levels = positiveLevels(s);
    let x = start(xInit);
    if (levels.length === 0) return x;
    const rng = needRng(options, 'ald');
    const sigmaL = levels[levels.length - 1] as number;
    levels.forEach((sigma, i) => {
      const alpha = (eps * sigma ** 2) / sigmaL ** 2;
      for (let t = 0; t < T; t++) {
        const denoised = denoise(denoiser, x, sigma, options?.cond);
        if (t === 0) report(onStep, i, levels.length, sigma, sigma, s[i + 1] ?? 0, x, denoised);
        x = advance(x, () =>
          tf.add(tf.add(x, tf.mul(scoreFrom(x, denoised, sigma), alpha / 2)), tf.mul(rng.normalTensor(x.shape), Math.sqrt(alpha))),
        );
        denoised.dispose();
      }
    });
    if (finalDenoise) {
      const denoised = denoise(denoiser, x, sigmaL, options?.cond);
      x = advance(x, () => denoised);
    }
    return x;
  });
}

export interface PcOptions extends SamplerOptions {
  /**
   * 'reverse-diffusion' (default): Song et al. 2021 Alg. 2 line 3-5, the ancestral
   * discretization x' = x + (sigma_i^2 - sigma_{i+1}^2) s(x; sigma_i) + sqrt(sigma_i^2 - sigma_{i+1}^2) z.
   * 'euler-maruyama': the reverse VE SDE dx = -d[sigma^2] s + sqrt(d[sigma^2]/du) dw in
   * u = log sigma, with the Euler-Maruyama rule (score_sde's EulerMaruyamaPredictor
   * for the geometric VE SDE): dtau = 2 sigma_i^2 log(sigma_i / sigma_{i+1}),
   * x' = x + dtau s(x; sigma_i) + sqrt(dtau) z.
   */
  readonly predictor?: 'reverse-diffusion' | 'euler-maruyama';
  /** M: Langevin corrector steps after each predictor step (default 1; 0 = predictor only). */
  readonly correctorSteps?: number;
  /** r: the corrector's target signal-to-noise ratio (default 0.16, the paper's CIFAR-10 VE value). */
  readonly snr?: number;
  /**
   * How ||z|| and ||g|| enter the corrector step size: 'batch' (default) uses
   * their means over the batch, as score_sde's LangevinCorrector does; 'sample'
   * uses each sample's own norms, as Alg. 4 is written (erratic in low
   * dimension, where a sample near a mode has a tiny ||g||).
   */
  readonly snrNorm?: 'batch' | 'sample';
}

/**
 * Predictor-corrector sampling (Song et al. 2021, https://arxiv.org/abs/2011.13456,
 * Alg. 2 for the VE SDE; the VP SDE's Alg. 3 is the same sampler once its
 * iterate is mapped into the VE frame, up to its corrector's alpha_i = 1 - beta_i
 * factor). For each i: one predictor step sigma_i -> sigma_{i+1}, then, if
 * sigma_{i+1} > 0, M Langevin corrector steps at sigma_{i+1} (Alg. 4):
 *
 *   g = s(x; sigma), z ~ N(0, I), e = 2 (r ||z|| / ||g||)^2, x <- x + e g + sqrt(2 e) z
 *
 * with ||z|| and ||g|| averaged over the batch (score_sde's code,
 * https://github.com/yang-song/score_sde/blob/main/sampling.py, LangevinCorrector)
 * or, with snrNorm: 'sample', per sample (Alg. 4 as written). The predictor step onto sigma = 0 is the noise-free
 * denoising step x <- x + sigma_i^2 s(x; sigma_i) = D(x; sigma_i) (score_sde's
 * `denoise=True`). Denoiser calls: n + M (n - 1) for n steps ending at 0.
 * Noise: per predictor step onto sigma > 0 one rng.normalTensor after the
 * denoiser call, and one per corrector step.
 */
export function predictorCorrector(
  denoiser: Denoiser,
  xInit: tf.Tensor,
  sigmas: Sigmas,
  options?: PcOptions,
  onStep?: StepCallback,
): tf.Tensor {
  return tf.tidy(() => {
    const s = checkSigmas(sigmas, 'pc');
    const b = checkBatch(xInit, 'pc');
    const predictor = options?.predictor ?? 'reverse-diffusion';
    const M = options?.correctorSteps ?? 1;
    const snr = options?.snr ?? 0.16;
    if (predictor !== 'reverse-diffusion' && predictor !== 'euler-maruyama') {
      throw new Error(`pc: predictor must be 'reverse-diffusion' or 'euler-maruyama', got '${String(predictor)}'`);
    }
    if (!Number.isInteger(M) || M < 0) throw new Error(`pc: correctorSteps must be an integer >= 0, got ${M}`);
    if (!(snr > 0)) throw new Error(`pc: snr must be > 0, got ${snr}`);
    const n = s.length - 1;
    const snrNorm = options?.snrNorm ?? 'batch';
    if (snrNorm !== 'batch' && snrNorm !== 'sample') {
      throw new Error(`pc: snrNorm must be 'batch' or 'sample', got '${String(snrNorm)}'`);
    }
    const perRow = [b, ...xInit.shape.slice(1).map(() => 1)];
    const axes = xInit.shape.slice(1).map((_, k) => k + 1);
    let x = start(xInit);
    for (let i = 0; i < n; i++) {
      const sigma = s[i] as number;
      const sigmaNext = s[i + 1] as number;
      const rng = sigmaNext > 0 ? needRng(options, 'pc') : undefined;
      const denoised = denoise(denoiser, x, sigma, options?.cond);
      report(onStep, i, n, sigma, sigma, sigmaNext, x, denoised);
      if (!rng) {
        x = advance(x, () => tf.clone(denoised));
      } else {
        const dtau =
          predictor === 'reverse-diffusion' ? sigma ** 2 - sigmaNext ** 2 : 2 * sigma ** 2 * Math.log(sigma / sigmaNext);
        x = advance(x, () =>
          tf.add(tf.add(x, tf.mul(scoreFrom(x, denoised, sigma), dtau)), tf.mul(rng.normalTensor(x.shape), Math.sqrt(dtau))),
        );
      }
      denoised.dispose();
      if (!rng) continue;
      for (let j = 0; j < M; j++) {
        const den = denoise(denoiser, x, sigmaNext, options?.cond);
        x = advance(x, () => {
          const g = scoreFrom(x, den, sigmaNext);
          const z = rng.normalTensor(x.shape);
          const rowNorm = (t: tf.Tensor) => tf.reshape(axes.length ? tf.sqrt(tf.sum(tf.square(t), axes)) : tf.abs(t), [b]);
          const norm = (t: tf.Tensor) => (snrNorm === 'batch' ? tf.mean(rowNorm(t)) : rowNorm(t));
          // e = 2 (r ||z|| / ||g||)^2; ||g|| floored to keep e finite at an exact mode.
          const e = tf.reshape(
            tf.mul(tf.square(tf.div(tf.mul(norm(z), snr), tf.maximum(norm(g), 1e-30))), 2),
            snrNorm === 'batch' ? [] : perRow,
          );
          return tf.add(tf.add(x, tf.mul(g, e)), tf.mul(z, tf.sqrt(tf.mul(e, 2))));
        });
        den.dispose();
      }
    }
    return x;
  });
}
