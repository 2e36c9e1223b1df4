/**
 * Variance-preserving schedules: x_t = sqrt(alpha_bar(t)) x0 + sqrt(1 - alpha_bar(t)) eps,
 * i.e. s(t) = sqrt(alpha_bar), sigma(t) = sqrt((1 - alpha_bar) / alpha_bar)
 * (EDM, https://arxiv.org/abs/2206.00364, Table 1, "VP" column, and eq. 4).
 *
 * Each one is defined by a closed-form alpha_bar(t) on t in [0, 1] with
 * alpha_bar(0) = 1 (and its complement 1 - alpha_bar(t), computed without
 * cancellation), plus its inverse. The discrete form with T timesteps follows
 * the paper that introduced the schedule.
 */
import { discreteSchedule } from './discrete.js';
import type { DiscreteSchedule, NoiseSchedule, ScheduleType } from './types.js';

/** A closed-form alpha_bar(t), t in [0, 1], normalized so alpha_bar(0) = 1. */
export interface AlphaBarCurve {
  /** alpha_bar(t). */
  alphaBar(t: number): number;
  /** 1 - alpha_bar(t), without cancellation near t = 0. */
  oneMinusAlphaBar(t: number): number;
  /** The t with alpha_bar(t) = ab, given ab and 1 - ab (both, for precision at either end). */
  inverse(ab: number, oneMinusAb: number): number;
}

export interface VPScheduleParts {
  readonly type: ScheduleType;
  readonly curve: AlphaBarCurve;
  readonly discrete: DiscreteSchedule;
  /** Continuous time domain. */
  readonly tMin: number;
  readonly tMax: number;
}

/** Builds the NoiseSchedule of a VP closed form. */
export function vpSchedule(parts: VPScheduleParts): NoiseSchedule {
  const { curve, tMin, tMax } = parts;
  const clampT = (t: number): number => Math.min(Math.max(t, tMin), tMax);
  // sigma^2 = (1 - alpha_bar) / alpha_bar  (EDM Table 1: sigma(t) = sqrt(e^{...} - 1) for VP).
  const sigma = (t: number): number => Math.sqrt(curve.oneMinusAlphaBar(t) / curve.alphaBar(t));
  return {
    type: parts.type,
    kind: 'vp',
    tMin,
    tMax,
    sigmaMin: sigma(tMin),
    sigmaMax: sigma(tMax),
    sigma,
    s: (t) => Math.sqrt(curve.alphaBar(t)),
    t(sigmaValue: number): number {
      const sq = sigmaValue * sigmaValue;
      // alpha_bar = 1 / (1 + sigma^2), 1 - alpha_bar = sigma^2 / (1 + sigma^2).
      return clampT(curve.inverse(1 / (1 + sq), sq / (1 + sq)));
    },
    // log SNR = log(alpha_bar / (1 - alpha_bar)) (Kingma et al. 2021, VDM, https://arxiv.org/abs/2107.00630, eq. 2-3).
    logSNR: (t) => Math.log(curve.alphaBar(t)) - Math.log(curve.oneMinusAlphaBar(t)),
    discrete: parts.discrete,
  };
}

/**
 * The discrete form from per-step betas: alpha_bar_i = prod_{j<=i} (1 - beta_j)
 * (DDPM, Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 4 and the line
 * after it), timestep i (0-based) at continuous time (i+1)/T.
 */
export function discreteFromBetas(betas: readonly number[]): DiscreteSchedule {
  const T = betas.length;
  let logAb = 0;
  const alphaBars: number[] = [];
  const sigmas: number[] = [];
  betas.forEach((beta, i) => {
    if (!(beta > 0 && beta <= 1)) throw new Error(`beta_${i} = ${beta} is not in (0, 1]`);
    logAb += Math.log1p(-beta);
    alphaBars.push(Math.exp(logAb));
    // sigma^2 = (1 - alpha_bar) / alpha_bar = e^{-log alpha_bar} - 1.
    sigmas.push(Math.sqrt(Math.expm1(-logAb)));
  });
  return discreteSchedule(sigmas, alphaBars, (i) => (i + 1) / T);
}

/**
 * Betas of a closed-form alpha_bar: beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), maxBeta)
 * (improved DDPM, Nichol & Dhariwal 2021, https://arxiv.org/abs/2102.09672,
 * section 3.2 below eq. 17: "we clip beta_t to be no larger than 0.999";
 * `betas_for_alpha_bar` in their code, reused by Diffusion-LM).
 */
export function betasForAlphaBar(curve: AlphaBarCurve, T: number, maxBeta = 0.999): number[] {
  checkT(T);
  return Array.from({ length: T }, (_, i) => {
    const a0 = curve.alphaBar(i / T);
    const a1 = curve.alphaBar((i + 1) / T);
    // 1 - a1/a0 = ((1 - a1) - (1 - a0)) / a0, exact near t = 0.
    const beta = (curve.oneMinusAlphaBar((i + 1) / T) - curve.oneMinusAlphaBar(i / T)) / a0;
    return a1 <= 0 ? maxBeta : Math.min(beta, maxBeta);
  });
}

function checkT(T: number): void {
  if (!Number.isInteger(T) || T < 1) throw new Error(`T must be an integer >= 1, got ${T}`);
}

/**
 * A VP schedule whose continuous form is `curve` and whose discrete form is
 * built from `betasForAlphaBar`. Time domain: tMin = 1/T (the first training
 * timestep); tMax = 1, or, when the last beta was clipped (alpha_bar(1) = 0),
 * the time where the continuous alpha_bar reaches the discrete final
 * alpha_bar, so sigmaMax is the discrete model's finite largest sigma.
 */
function vpFromCurve(type: ScheduleType, curve: AlphaBarCurve, T: number, maxBeta: number): NoiseSchedule {
  const discrete = discreteFromBetas(betasForAlphaBar(curve, T, maxBeta));
  const lastAb = discrete.alphaBars[T - 1] as number;
  const lastSigma = discrete.sigmas[T - 1] as number;
  const tEnd = curve.alphaBar(1);
  const clipped = !(tEnd > 0) || Math.abs(lastAb - tEnd) > 1e-9 * lastAb;
  const tMax = clipped ? curve.inverse(lastAb, (lastSigma * lastSigma) / (1 + lastSigma * lastSigma)) : 1;
  return vpSchedule({ type, curve, discrete, tMin: 1 / T, tMax });
}

// ---------------------------------------------------------------- linear (DDPM)

export interface LinearScheduleOptions {
  readonly betaStart?: number;
  readonly betaEnd?: number;
  readonly T?: number;
}

/**
 * DDPM's linear betas (Ho et al. 2020, https://arxiv.org/abs/2006.11239,
 * section 4: beta_1 = 1e-4 ... beta_T = 0.02 linearly, T = 1000).
 *
 * Discrete: alpha_bar_i = prod_{j<=i} (1 - beta_j) (eq. 4).
 * Continuous: its T -> infinity limit, the VP SDE with
 * beta(t) = T betaStart + t T (betaEnd - betaStart) and
 * alpha_bar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2))
 * (Song et al. 2021, https://arxiv.org/abs/2011.13456, appendix B, eq. 33,
 * beta_min = 0.1, beta_max = 20). The two agree to O(beta^2) per step, not
 * exactly: log alpha_bar differs by sum(beta_j^2)/2 + O(beta/T) (< 0.08 for
 * DDPM's numbers).
 */
export function linearSchedule(options: LinearScheduleOptions = {}): NoiseSchedule {
  const betaStart = options.betaStart ?? 1e-4;
  const betaEnd = options.betaEnd ?? 0.02;
  const T = options.T ?? 1000;
  checkT(T);
  if (!(betaStart > 0 && betaEnd >= betaStart && betaEnd < 1)) {
    throw new Error(`linear schedule: need 0 < betaStart <= betaEnd < 1, got ${betaStart}, ${betaEnd}`);
  }
  const betas = Array.from({ length: T }, (_, i) => (T === 1 ? betaStart : betaStart + (i / (T - 1)) * (betaEnd - betaStart)));
  const bMin = T * betaStart;
  const bDelta = T * (betaEnd - betaStart);
  // -log alpha_bar(t) = beta_min t + (beta_max - beta_min) t^2 / 2  (Song et al. 2021, eq. 33).
  const negLogAb = (t: number): number => bMin * t + 0.5 * bDelta * t * t;
  const curve: AlphaBarCurve = {
    alphaBar: (t) => Math.exp(-negLogAb(t)),
    oneMinusAlphaBar: (t) => -Math.expm1(-negLogAb(t)),
    inverse(_ab, oneMinusAb) {
      const L = -Math.log1p(-oneMinusAb);
      // Root of bDelta/2 t^2 + bMin t - L = 0 in the cancellation-free form.
      return (2 * L) / (bMin + Math.sqrt(bMin * bMin + 2 * bDelta * L));
    },
  };
  return vpSchedule({ type: 'linear', curve, discrete: discreteFromBetas(betas), tMin: 1 / T, tMax: 1 });
}

// ---------------------------------------------------------------- cosine (iDDPM)

export interface CosineScheduleOptions {
  readonly s?: number;
  readonly T?: number;
  readonly maxBeta?: number;
}

/**
 * The cosine schedule (Nichol & Dhariwal 2021, https://arxiv.org/abs/2102.09672, eq. 17):
 * alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t + s) / (1 + s) * pi / 2), s = 0.008,
 * betas clipped at 0.999.
 */
export function cosineSchedule(options: CosineScheduleOptions = {}): NoiseSchedule {
  const s = options.s ?? 0.008;
  const T = options.T ?? 1000;
  if (!(s >= 0)) throw new Error(`cosine schedule: s must be >= 0, got ${s}`);
  const angle = (t: number): number => ((t + s) / (1 + s)) * (Math.PI / 2);
  const a0 = angle(0);
  const f0 = Math.cos(a0) ** 2;
  const curve: AlphaBarCurve = {
    alphaBar: (t) => Math.cos(angle(t)) ** 2 / f0,
    // f(0) - f(t) = cos^2 a0 - cos^2 a = sin(a - a0) sin(a + a0).
    oneMinusAlphaBar: (t) => (Math.sin(angle(t) - a0) * Math.sin(angle(t) + a0)) / f0,
    inverse(ab) {
      return (Math.acos(Math.min(1, Math.sqrt(ab * f0))) * 2 * (1 + s)) / Math.PI - s;
    },
  };
  return vpFromCurve('cosine', curve, T, options.maxBeta ?? 0.999);
}

// ---------------------------------------------------------------- sigmoid (Chen 2023)

export interface SigmoidScheduleOptions {
  readonly start?: number;
  readonly end?: number;
  readonly tau?: number;
  readonly T?: number;
  readonly maxBeta?: number;
}

const sigmoidFn = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * The sigmoid schedule (Chen 2023, "On the importance of noise scheduling for
 * diffusion models", https://arxiv.org/abs/2301.10972, Algorithm 1):
 * gamma(t) = (v_end - sigmoid((t (end - start) + start) / tau)) / (v_end - v_start),
 * v_start = sigmoid(start / tau), v_end = sigmoid(end / tau); defaults start = -3,
 * end = 3, tau = 1. gamma plays alpha_bar's role. Chen's clip_min is replaced by
 * the discrete form's beta clip (which bounds the final alpha_bar the same way).
 */
export function sigmoidSchedule(options: SigmoidScheduleOptions = {}): NoiseSchedule {
  const start = options.start ?? -3;
  const end = options.end ?? 3;
  const tau = options.tau ?? 1;
  const T = options.T ?? 1000;
  if (!(end > start) || !(tau > 0)) throw new Error(`sigmoid schedule: need end > start and tau > 0`);
  const vStart = sigmoidFn(start / tau);
  const vEnd = sigmoidFn(end / tau);
  const span = vEnd - vStart;
  const v = (t: number): number => sigmoidFn((t * (end - start) + start) / tau);
  const curve: AlphaBarCurve = {
    alphaBar: (t) => (vEnd - v(t)) / span,
    oneMinusAlphaBar: (t) => (v(t) - vStart) / span,
    inverse(_ab, oneMinusAb) {
      const p = vStart + oneMinusAb * span;
      return (tau * Math.log(p / (1 - p)) - start) / (end - start);
    },
  };
  return vpFromCurve('sigmoid', curve, T, options.maxBeta ?? 0.999);
}

// ---------------------------------------------------------------- sqrt (Diffusion-LM)

export interface SqrtScheduleOptions {
  readonly s?: number;
  readonly T?: number;
  readonly maxBeta?: number;
}

/**
 * Diffusion-LM's sqrt schedule (Li et al. 2022, https://arxiv.org/abs/2205.14217,
 * section 4.2 / appendix: alpha_bar(t) = 1 - sqrt(t + s), s = 1e-4), built like
 * their code with `betas_for_alpha_bar` (max beta 0.999). Because those betas
 * only use ratios, the discrete alpha_bar is (1 - sqrt(t + s)) / (1 - sqrt(s));
 * the continuous form uses the same normalization so alpha_bar(0) = 1.
 */
export function sqrtSchedule(options: SqrtScheduleOptions = {}): NoiseSchedule {
  const s = options.s ?? 1e-4;
  const T = options.T ?? 1000;
  if (!(s > 0 && s < 1)) throw new Error(`sqrt schedule: s must be in (0, 1), got ${s}`);
  const rs = Math.sqrt(s);
  const norm = 1 - rs;
  const curve: AlphaBarCurve = {
    alphaBar: (t) => (1 - Math.sqrt(t + s)) / norm,
    // sqrt(t+s) - sqrt(s) = t / (sqrt(t+s) + sqrt(s)).
    oneMinusAlphaBar: (t) => t / (Math.sqrt(t + s) + rs) / norm,
    inverse(ab) {
      const r = 1 - ab * norm;
      return r * r - s;
    },
  };
  return vpFromCurve('sqrt', curve, T, options.maxBeta ?? 0.999);
}
