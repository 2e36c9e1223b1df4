/**
 * Variance-exploding schedules: s(t) = 1, x_t = x0 + sigma(t) eps.
 */
import { discreteSchedule } from './discrete.js';
import type { NoiseSchedule } from './types.js';

export interface GeometricScheduleOptions {
  readonly sigmaMin?: number;
  readonly sigmaMax?: number;
  /** Number of noise levels of the discrete form (NCSN's L). */
  readonly T?: number;
}

/**
 * Geometric VE (NCSN/SMLD): sigma(t) = sigma_min (sigma_max / sigma_min)^t, t in [0, 1]
 * (Song et al. 2021, https://arxiv.org/abs/2011.13456, section 3.4 / appendix C;
 * Song & Ermon 2019, https://arxiv.org/abs/1907.05600, section 4.2: a geometric
 * sequence of L noise levels). Discrete level i (0 = smallest) at t = i/(T-1).
 * Defaults: sigma in [0.01, 50], T = 1000 (Song et al. 2021's CIFAR-10 VE SDE).
 */
export function geometricSchedule(options: GeometricScheduleOptions = {}): NoiseSchedule {
  const sigmaMin = options.sigmaMin ?? 0.01;
  const sigmaMax = options.sigmaMax ?? 50;
  const T = options.T ?? 1000;
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin && Number.isFinite(sigmaMax))) {
    throw new Error(`geometric schedule: need 0 < sigmaMin < sigmaMax < inf, got ${sigmaMin}, ${sigmaMax}`);
  }
  if (!Number.isInteger(T) || T < 2) throw new Error(`geometric schedule: T must be an integer >= 2, got ${T}`);
  const logMin = Math.log(sigmaMin);
  const logRatio = Math.log(sigmaMax) - logMin;
  const sigma = (t: number): number => Math.exp(logMin + t * logRatio);
  const timeOf = (i: number): number => i / (T - 1);
  const sigmas = Array.from({ length: T }, (_, i) => sigma(timeOf(i)));
  return {
    type: 'geometric',
    kind: 've',
    tMin: 0,
    tMax: 1,
    sigmaMin,
    sigmaMax,
    sigma,
    s: () => 1,
    t: (sig) => Math.min(Math.max((Math.log(sig) - logMin) / logRatio, 0), 1),
    logSNR: (t) => -2 * (logMin + t * logRatio),
    discrete: discreteSchedule(sigmas, new Array<number>(T).fill(1), timeOf),
  };
}

export interface EDMScheduleOptions {
  readonly sigmaMin?: number;
  readonly sigmaMax?: number;
}

/**
 * EDM (Karras et al. 2022, https://arxiv.org/abs/2206.00364, Table 1, "Ours"
 * column): sigma(t) = t, s(t) = 1, sigma in [0.002, 80]. The time domain is
 * therefore [sigmaMin, sigmaMax], not [0, 1]. A continuous-time model: no
 * discrete form.
 */
export function edmSchedule(options: EDMScheduleOptions = {}): NoiseSchedule {
  const sigmaMin = options.sigmaMin ?? 0.002;
  const sigmaMax = options.sigmaMax ?? 80;
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin && Number.isFinite(sigmaMax))) {
    throw new Error(`edm schedule: need 0 < sigmaMin < sigmaMax < inf, got ${sigmaMin}, ${sigmaMax}`);
  }
  return {
    type: 'edm',
    kind: 've',
    tMin: sigmaMin,
    tMax: sigmaMax,
    sigmaMin,
    sigmaMax,
    sigma: (t) => t,
    s: () => 1,
    t: (sig) => Math.min(Math.max(sig, sigmaMin), sigmaMax),
    logSNR: (t) => -2 * Math.log(t),
    discrete: undefined,
  };
}
