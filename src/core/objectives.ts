/**
 * Denoising score matching, the one training objective:
 *
 *   L = E_{sigma ~ p(sigma), x0 ~ data, eps ~ N(0, I)} lambda(sigma) ||D(x0 + sigma eps; sigma) - x0||^2
 *
 * (EDM, Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 2 and eq. 8;
 * Vincent 2011 / Song & Ermon 2019, https://arxiv.org/abs/1907.05600, eq. 2).
 * A training recipe is a choice of noise density p(sigma) and weighting
 * lambda(sigma); DDPM's L_simple, NCSN's objective and EDM's loss are rows of
 * that table, not separate code. The squared norm is averaged over the
 * non-batch dimensions ('mean', like DDPM's `mean_flat`) or summed ('sum',
 * like NCSN's and EDM's code), then averaged over the batch.
 *
 * Every random draw comes from the caller's `Rng`, in a fixed order:
 * first the B noise levels, then eps with x0's shape.
 */
import * as tf from '@tensorflow/tfjs';
import { coefficientTensors, type Parametrization, type RawNetwork } from './parametrizations.js';
import type { Rng } from './random.js';
import type { NoiseSchedule } from './schedules/types.js';
import type { Conditioning, Denoiser } from './types.js';

// ------------------------------------------------------------------ p(sigma)

export const NOISE_DISTRIBUTION_TYPES = ['uniform-time', 'log-normal', 'log-uniform'] as const;
export type NoiseDistributionType = (typeof NOISE_DISTRIBUTION_TYPES)[number];

/** A training noise density p(sigma). */
export interface NoiseDistribution {
  readonly type: NoiseDistributionType;
  /** n independent noise levels. */
  sample(rng: Rng, n: number): number[];
}

/**
 * Uniform time of a schedule: discrete (a training timestep i ~ U{0..T-1}, sigma = sigma_i;
 * DDPM, Ho et al. 2020, https://arxiv.org/abs/2006.11239, Algorithm 1; NCSN's uniform choice of
 * one of L levels, Song & Ermon 2019 eq. 6) or continuous (t ~ U[tMin, tMax], sigma = sigma(t);
 * Song et al. 2021, https://arxiv.org/abs/2011.13456, eq. 7).
 * `discrete` defaults to whether the schedule has training timesteps.
 */
export function uniformTimeNoise(schedule: NoiseSchedule, options: { discrete?: boolean } = {}): NoiseDistribution {
  const discrete = options.discrete ?? schedule.discrete !== undefined;
  if (discrete) {
    const d = schedule.discrete;
    if (!d) throw new Error(`uniform-time: the '${schedule.type}' schedule has no training timesteps; use discrete: false`);
    return {
      type: 'uniform-time',
      sample: (rng, n) => Array.from({ length: n }, () => d.sigmas[rng.int(d.T)] as number),
    };
  }
  return {
    type: 'uniform-time',
    sample: (rng, n) =>
      Array.from({ length: n }, () => schedule.sigma(schedule.tMin + rng.uniform() * (schedule.tMax - schedule.tMin))),
  };
}

/**
 * EDM's log-normal: ln(sigma) ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2
 * (Karras et al. 2022, https://arxiv.org/abs/2206.00364, Table 1 "Ours", training row).
 */
export function logNormalNoise(options: { pMean?: number; pStd?: number } = {}): NoiseDistribution {
  const pMean = options.pMean ?? -1.2;
  const pStd = options.pStd ?? 1.2;
  if (!(pStd >= 0)) throw new Error(`log-normal: pStd must be >= 0, got ${pStd}`);
  return { type: 'log-normal', sample: (rng, n) => Array.from({ length: n }, () => Math.exp(pMean + pStd * rng.normal())) };
}

/**
 * Log-uniform: ln(sigma) ~ U[ln sigmaMin, ln sigmaMax], the continuous limit of NCSN's uniform
 * choice among geometric levels (Song et al. 2021, https://arxiv.org/abs/2011.13456, VE SDE with t ~ U[0, 1]).
 */
export function logUniformNoise(options: { sigmaMin: number; sigmaMax: number }): NoiseDistribution {
  const { sigmaMin, sigmaMax } = options;
  if (!(sigmaMin > 0 && sigmaMax >= sigmaMin)) {
    throw new Error(`log-uniform: need 0 < sigmaMin <= sigmaMax, got ${sigmaMin}, ${sigmaMax}`);
  }
  const a = Math.log(sigmaMin);
  const b = Math.log(sigmaMax);
  return { type: 'log-uniform', sample: (rng, n) => Array.from({ length: n }, () => Math.exp(a + rng.uniform() * (b - a))) };
}

// ------------------------------------------------------------------ lambda(sigma)

export const LOSS_WEIGHTING_TYPES = ['uniform', 'simple', 'snr', 'snr+1', 'min-snr', 'edm', 'ncsn'] as const;
export type LossWeightingType = (typeof LOSS_WEIGHTING_TYPES)[number];

/**
 * A loss weighting lambda(sigma) on the denoiser error ||D - x0||^2 (VE frame,
 * where SNR(sigma) = 1/sigma^2).
 */
export interface LossWeighting {
  readonly type: LossWeightingType;
  (sigma: number): number;
}

function weighting(type: LossWeightingType, fn: (sigma: number) => number): LossWeighting {
  return Object.assign((sigma: number) => fn(sigma), { type });
}

/** lambda = 1: plain x0-prediction MSE ("constant" in Hang et al. 2023, https://arxiv.org/abs/2303.09556, section 3.4). */
export const uniformWeighting = (): LossWeighting => weighting('uniform', () => 1);

/**
 * Ho's L_simple, uniform in epsilon (Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 14):
 * D - x0 = -sigma (eps_hat - eps) for D = x - sigma eps_hat, so ||eps_hat - eps||^2 = ||D - x0||^2 / sigma^2.
 */
export const simpleWeighting = (): LossWeighting => weighting('simple', (s) => 1 / (s * s));

/**
 * lambda = SNR(sigma) = 1/sigma^2 (Hang et al. 2023, https://arxiv.org/abs/2303.09556, section 3.4:
 * eps-MSE is x0-MSE weighted by SNR). The same function as `simpleWeighting`.
 */
export const snrWeighting = (): LossWeighting => weighting('snr', (s) => 1 / (s * s));

/**
 * lambda = SNR + 1: the v-prediction MSE (Salimans & Ho 2022, https://arxiv.org/abs/2202.00512,
 * section 4 "SNR+1 weighting"): x0_hat - x0 = -sigma_vp (v_hat - v), sigma_vp^2 = sigma^2/(1 + sigma^2).
 */
export const snrPlusOneWeighting = (): LossWeighting => weighting('snr+1', (s) => 1 + 1 / (s * s));

/** Min-SNR-gamma (Hang et al. 2023, https://arxiv.org/abs/2303.09556, section 3.4): lambda = min(SNR, gamma), gamma = 5. */
export const minSnrWeighting = (gamma = 5): LossWeighting => {
  if (!(gamma > 0)) throw new Error(`min-snr: gamma must be > 0, got ${gamma}`);
  return weighting('min-snr', (s) => Math.min(1 / (s * s), gamma));
};

/**
 * EDM: lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2
 * (Karras et al. 2022, https://arxiv.org/abs/2206.00364, Table 1 "Ours", and eq. 8).
 */
export const edmWeighting = (sigmaData = 0.5): LossWeighting => {
  if (!(sigmaData > 0)) throw new Error(`edm weighting: sigmaData must be > 0, got ${sigmaData}`);
  return weighting('edm', (s) => (s * s + sigmaData * sigmaData) / (s * sigmaData) ** 2);
};

/**
 * NCSN (Song & Ermon 2019, https://arxiv.org/abs/1907.05600, eq. 5-6):
 * lambda(sigma) * 1/2 ||s(x~, sigma) + (x~ - x)/sigma^2||^2 with lambda(sigma) = sigma^2.
 * With s = (D - x~)/sigma^2 (EDM eq. 3) the bracket is (D - x0)/sigma^2, so the
 * weight on ||D - x0||^2 is sigma^2 / (2 sigma^4) = 1 / (2 sigma^2).
 */
export const ncsnWeighting = (): LossWeighting => weighting('ncsn', (s) => 1 / (2 * s * s));

// ------------------------------------------------------------------ the objective

export interface DSMObjective {
  readonly noise: NoiseDistribution;
  readonly weighting: LossWeighting;
  /** How ||.||^2 reduces over the non-batch dimensions: 'mean' (default) or 'sum'. */
  readonly reduction?: 'mean' | 'sum';
}

export interface PerSampleLoss {
  /** lambda(sigma_i) * ||D - x0||^2 per batch row, shape [B]. */
  readonly perSample: tf.Tensor1D;
  /** The noise levels drawn, one per row. */
  readonly sigmas: number[];
}

function drawNoisy(x0: tf.Tensor, rng: Rng, objective: DSMObjective): { sigmas: number[]; sigma: tf.Tensor1D; x: tf.Tensor } {
  const B = x0.shape[0];
  if (B === undefined || x0.rank < 1) throw new Error('dsm loss: x0 must have a batch dimension');
  const sigmas = objective.noise.sample(rng, B);
  const eps = rng.normalTensor(x0.shape);
  const sigmaB = tf.tensor(sigmas, [B, ...new Array<number>(x0.rank - 1).fill(1)]);
  const x = tf.add(x0, tf.mul(sigmaB, eps));
  return { sigmas, sigma: tf.tensor1d(sigmas), x };
}

function reduceRows(sq: tf.Tensor, reduction: 'mean' | 'sum'): tf.Tensor1D {
  const axes = Array.from({ length: sq.rank - 1 }, (_, i) => i + 1);
  if (axes.length === 0) return sq as tf.Tensor1D;
  return (reduction === 'sum' ? tf.sum(sq, axes) : tf.mean(sq, axes)) as tf.Tensor1D;
}

/**
 * Per-sample DSM loss lambda(sigma_i) ||D(x0_i + sigma_i eps_i; sigma_i) - x0_i||^2,
 * reduced over the non-batch dimensions.
 */
export function dsmPerSampleLoss(
  denoiser: Denoiser,
  x0: tf.Tensor,
  rng: Rng,
  objective: DSMObjective,
  cond?: Conditioning,
): PerSampleLoss {
  let sigmas: number[] = [];
  const perSample = tf.tidy(() => {
    const noisy = drawNoisy(x0, rng, objective);
    sigmas = noisy.sigmas;
    const err = reduceRows(tf.square(tf.sub(denoiser(noisy.x, noisy.sigma, cond), x0)), objective.reduction ?? 'mean');
    return tf.mul(err, tf.tensor1d(sigmas.map((s) => objective.weighting(s)))) as tf.Tensor1D;
  });
  return { perSample, sigmas };
}

/** The DSM loss: the batch mean of `dsmPerSampleLoss`, a scalar (differentiable w.r.t. the denoiser's variables). */
export function dsmLoss(denoiser: Denoiser, x0: tf.Tensor, rng: Rng, objective: DSMObjective, cond?: Conditioning): tf.Scalar {
  return tf.tidy(() => tf.mean(dsmPerSampleLoss(denoiser, x0, rng, objective, cond).perSample));
}

/**
 * The same objective in EDM's effective-target form (Karras et al. 2022, eq. 8):
 * lambda(sigma) c_out^2 ||F(c_in x, c_noise) - (x0 - c_skip x) / c_out||^2,
 * equal to `dsmPerSampleLoss` of makeDenoiser(net, param) for the same Rng state,
 * but regressing the raw network output directly.
 */
export function dsmPerSampleLossEffectiveTarget(
  net: RawNetwork,
  param: Parametrization,
  x0: tf.Tensor,
  rng: Rng,
  objective: DSMObjective,
  cond?: Conditioning,
): PerSampleLoss {
  const B = x0.shape[0];
  if (B === undefined || x0.rank < 1) throw new Error('dsm loss: x0 must have a batch dimension');
  const sigmas = objective.noise.sample(rng, B);
  const eps = rng.normalTensor(x0.shape);
  const perSample = dsmPerSampleLossGivenNoise(net, param, x0, sigmas, eps, objective, cond);
  eps.dispose();
  return { perSample, sigmas };
}

/**
 * The effective-target loss for noise drawn elsewhere: `sigmas` (one per row)
 * and `eps` (x0's shape). Trainers draw the noise on the main thread, so the
 * loss does not depend on how a batch is split across workers.
 */
export function dsmPerSampleLossGivenNoise(
  net: RawNetwork,
  param: Parametrization,
  x0: tf.Tensor,
  sigmas: ArrayLike<number>,
  eps: tf.Tensor,
  objective: Pick<DSMObjective, 'weighting' | 'reduction'>,
  cond?: Conditioning,
): tf.Tensor1D {
  return tf.tidy(() => {
    const c = coefficientTensors(param, sigmas, x0.rank);
    const x = tf.add(x0, tf.mul(tf.reshape(tf.tensor1d(Array.from(sigmas)), c.cIn.shape), eps));
    const target = tf.div(tf.sub(x0, tf.mul(c.cSkip, x)), c.cOut);
    const f = net(tf.mul(c.cIn, x), c.cNoise, cond);
    const err = reduceRows(tf.square(tf.sub(f, target)), objective.reduction ?? 'mean');
    const w = Array.from(sigmas, (s) => objective.weighting(s) * param.coefficients(s).cOut ** 2);
    return tf.mul(err, tf.tensor1d(w)) as tf.Tensor1D;
  });
}

/** Batch mean of `dsmPerSampleLossEffectiveTarget`. */
export function dsmLossEffectiveTarget(
  net: RawNetwork,
  param: Parametrization,
  x0: tf.Tensor,
  rng: Rng,
  objective: DSMObjective,
  cond?: Conditioning,
): tf.Scalar {
  return tf.tidy(() => tf.mean(dsmPerSampleLossEffectiveTarget(net, param, x0, rng, objective, cond).perSample));
}

// ------------------------------------------------------------------ configs

export type NoiseDistributionConfig =
  | { readonly type: 'uniform-time'; readonly discrete?: boolean }
  | { readonly type: 'log-normal'; readonly pMean?: number; readonly pStd?: number }
  | { readonly type: 'log-uniform'; readonly sigmaMin?: number; readonly sigmaMax?: number };

export type LossWeightingConfig =
  | { readonly type: 'uniform' | 'simple' | 'snr' | 'snr+1' | 'ncsn' }
  | { readonly type: 'min-snr'; readonly gamma?: number }
  | { readonly type: 'edm'; readonly sigmaData?: number };

export interface ObjectiveConfig {
  readonly noise: NoiseDistributionConfig;
  readonly weighting: LossWeightingConfig;
  readonly reduction?: 'mean' | 'sum';
}

/** Builds p(sigma) by id; 'uniform-time' needs the schedule, 'log-uniform' defaults to its sigma range. */
export function createNoiseDistribution(config: NoiseDistributionConfig, schedule?: NoiseSchedule): NoiseDistribution {
  switch (config.type) {
    case 'uniform-time':
      if (!schedule) throw new Error(`the 'uniform-time' noise distribution needs a schedule`);
      return uniformTimeNoise(schedule, config.discrete !== undefined ? { discrete: config.discrete } : {});
    case 'log-normal':
      return logNormalNoise(config);
    case 'log-uniform': {
      const sigmaMin = config.sigmaMin ?? schedule?.sigmaMin;
      const sigmaMax = config.sigmaMax ?? schedule?.sigmaMax;
      if (sigmaMin === undefined || sigmaMax === undefined) {
        throw new Error(`the 'log-uniform' noise distribution needs sigmaMin and sigmaMax, or a schedule`);
      }
      return logUniformNoise({ sigmaMin, sigmaMax });
    }
    default:
      throw new Error(
        `unknown noise distribution '${String((config as { type?: unknown }).type)}'; choose one of: ${NOISE_DISTRIBUTION_TYPES.join(', ')}`,
      );
  }
}

/** Builds lambda(sigma) by id. */
export function createLossWeighting(config: LossWeightingConfig): LossWeighting {
  switch (config.type) {
    case 'uniform':
      return uniformWeighting();
    case 'simple':
      return simpleWeighting();
    case 'snr':
      return snrWeighting();
    case 'snr+1':
      return snrPlusOneWeighting();
    case 'ncsn':
      return ncsnWeighting();
    case 'min-snr':
      return minSnrWeighting(config.gamma);
    case 'edm':
      return edmWeighting(config.sigmaData);
    default:
      throw new Error(
        `unknown loss weighting '${String((config as { type?: unknown }).type)}'; choose one of: ${LOSS_WEIGHTING_TYPES.join(', ')}`,
      );
  }
}

/** Builds a DSM objective from its config. */
export function createObjective(config: ObjectiveConfig, schedule?: NoiseSchedule): DSMObjective {
  return {
    noise: createNoiseDistribution(config.noise, schedule),
    weighting: createLossWeighting(config.weighting),
    ...(config.reduction !== undefined ? { reduction: config.reduction } : {}),
  };
}
