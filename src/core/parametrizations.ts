/**
 * Parametrizations: how a raw network F(c_in x, c_noise, cond) becomes a
 * denoiser D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond)
 * (EDM, Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 7 and Table 1).
 *
 * Everything is in the VE frame x = x0 + sigma eps (see `Denoiser`). The
 * coefficients are plain float64 numbers per noise level; `makeDenoiser`
 * broadcasts them over a batch. For every parametrization the network's
 * regression target is the "effective target" (x0 - c_skip x) / c_out
 * (EDM eq. 8), exposed as `effectiveTarget`.
 */
import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule } from './schedules/types.js';
import type { Conditioning, Denoiser } from './types.js';

/** The raw network: input c_in x, noise conditioning c_noise [B], optional conditioning. */
export type RawNetwork = (xIn: tf.Tensor, cNoise: tf.Tensor1D, cond?: Conditioning) => tf.Tensor;

export interface PreconditioningCoefficients {
  readonly cSkip: number;
  readonly cOut: number;
  readonly cIn: number;
  readonly cNoise: number;
}

export const PARAMETRIZATION_TYPES = ['epsilon', 'x0', 'v', 'score', 'edm'] as const;
export type ParametrizationType = (typeof PARAMETRIZATION_TYPES)[number];

export interface Parametrization {
  readonly type: ParametrizationType;
  /** c_skip, c_out, c_in, c_noise at one noise level. */
  coefficients(sigma: number): PreconditioningCoefficients;
}

/**
 * What the network receives as its noise input c_noise:
 * - 'time':           the schedule's continuous time t(sigma);
 * - 'timestep':       the schedule's (fractional) discrete timestep, 0..T-1
 *                     (EDM Table 1, VP column: c_noise = (M - 1) t(sigma));
 * - 'edm':            ln(sigma) / 4 (EDM Table 1, "Ours" column);
 * - 'log-half-sigma': ln(sigma / 2) (EDM Table 1, VE column, NCSN++);
 * - or any function of sigma.
 */
export type NoiseInput = 'time' | 'timestep' | 'edm' | 'log-half-sigma' | ((sigma: number) => number);

function noiseInputFn(input: NoiseInput, schedule: NoiseSchedule | undefined, who: string): (sigma: number) => number {
  if (typeof input === 'function') return input;
  switch (input) {
    case 'time':
      if (!schedule) throw new Error(`${who}: noise input 'time' needs a schedule`);
      return (sigma) => schedule.t(sigma);
    case 'timestep': {
      const d = schedule?.discrete;
      if (!d) throw new Error(`${who}: noise input 'timestep' needs a schedule with training timesteps`);
      return (sigma) => d.timestep(sigma);
    }
    case 'edm':
      return (sigma) => Math.log(sigma) / 4;
    case 'log-half-sigma':
      return (sigma) => Math.log(sigma / 2);
    default:
      throw new Error(`${who}: unknown noise input '${String(input)}'; choose one of: time, timestep, edm, log-half-sigma`);
  }
}

/** Network-time default: discrete timesteps for discrete models, continuous time otherwise. */
function defaultScheduleInput(schedule: NoiseSchedule): NoiseInput {
  return schedule.discrete ? 'timestep' : 'time';
}

/**
 * The input scale: a VP model sees x_t = s x with s = 1/sqrt(1 + sigma^2)
 * (EDM eq. 4 with alpha_bar = 1/(1 + sigma^2), Table 1 VP column: c_in = 1/sqrt(sigma^2 + 1));
 * a VE model sees x itself.
 */
function inputScale(schedule: NoiseSchedule, sigma: number): number {
  return schedule.kind === 'vp' ? 1 / Math.sqrt(1 + sigma * sigma) : 1;
}

export interface ScheduleParametrizationOptions {
  readonly noiseInput?: NoiseInput;
}

/**
 * epsilon-prediction (DDPM, Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 4 solved for x0, as used in eq. 11-12):
 * x0 = (x_t - sqrt(1 - alpha_bar) eps_hat) / sqrt(alpha_bar) = x - sigma eps_hat,
 * so c_skip = 1, c_out = -sigma, c_in = s (EDM Table 1, VP and VE columns).
 */
export function epsilonParametrization(
  schedule: NoiseSchedule,
  options: ScheduleParametrizationOptions = {},
): Parametrization {
  const cNoise = noiseInputFn(options.noiseInput ?? defaultScheduleInput(schedule), schedule, 'epsilon');
  return {
    type: 'epsilon',
    coefficients: (sigma) => ({ cSkip: 1, cOut: -sigma, cIn: inputScale(schedule, sigma), cNoise: cNoise(sigma) }),
  };
}

/** x0-prediction: D = F(c_in x), c_skip = 0, c_out = 1 (Ho et al. 2020, section 3.2, the "predict x0" ablation). */
export function x0Parametrization(schedule: NoiseSchedule, options: ScheduleParametrizationOptions = {}): Parametrization {
  const cNoise = noiseInputFn(options.noiseInput ?? defaultScheduleInput(schedule), schedule, 'x0');
  return {
    type: 'x0',
    coefficients: (sigma) => ({ cSkip: 0, cOut: 1, cIn: inputScale(schedule, sigma), cNoise: cNoise(sigma) }),
  };
}

/**
 * v-prediction (Salimans & Ho 2022, https://arxiv.org/abs/2202.00512, section 4 and appendix D):
 * v = alpha eps - sigma_vp x0 and x0 = alpha z - sigma_vp v, with alpha = 1/sqrt(1 + sigma^2),
 * sigma_vp = sigma/sqrt(1 + sigma^2), z = alpha x. Hence
 * c_skip = 1/(1 + sigma^2), c_out = -sigma/sqrt(1 + sigma^2), c_in = 1/sqrt(1 + sigma^2)
 * for any schedule (the VE-frame sigma determines alpha and sigma_vp).
 */
export function vParametrization(schedule: NoiseSchedule, options: ScheduleParametrizationOptions = {}): Parametrization {
  const cNoise = noiseInputFn(options.noiseInput ?? defaultScheduleInput(schedule), schedule, 'v');
  return {
    type: 'v',
    coefficients: (sigma) => {
      const r = Math.sqrt(1 + sigma * sigma);
      return { cSkip: 1 / (r * r), cOut: -sigma / r, cIn: 1 / r, cNoise: cNoise(sigma) };
    },
  };
}

export interface ScoreParametrizationOptions {
  /** Default 'log-half-sigma' (NCSN++, EDM Table 1 VE column); 'time'/'timestep' need `schedule`. */
  readonly noiseInput?: NoiseInput;
  readonly schedule?: NoiseSchedule;
}

/**
 * Score (NCSN): the network predicts F = sigma * score, i.e. score = F / sigma
 * (Song & Ermon 2020, https://arxiv.org/abs/2006.09011, technique 3: s(x, sigma) = s(x)/sigma).
 * With score = (D - x)/sigma^2 (EDM eq. 3), D = x + sigma F: c_skip = 1,
 * c_out = sigma, c_in = 1 (EDM Table 1, VE column).
 */
export function scoreParametrization(options: ScoreParametrizationOptions = {}): Parametrization {
  const cNoise = noiseInputFn(options.noiseInput ?? 'log-half-sigma', options.schedule, 'score');
  return {
    type: 'score',
    coefficients: (sigma) => ({ cSkip: 1, cOut: sigma, cIn: 1, cNoise: cNoise(sigma) }),
  };
}

export interface EDMPreconditioningOptions {
  /** Standard deviation of the data (0.5 for images in [-1, 1]). */
  readonly sigmaData?: number;
  /** Default 'edm' = ln(sigma)/4. */
  readonly noiseInput?: NoiseInput;
  readonly schedule?: NoiseSchedule;
}

/**
 * EDM preconditioning (Karras et al. 2022, https://arxiv.org/abs/2206.00364, Table 1 "Ours",
 * derived in appendix B.6):
 * c_skip = sigma_data^2 / (sigma^2 + sigma_data^2), c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2),
 * c_in = 1 / sqrt(sigma^2 + sigma_data^2), c_noise = ln(sigma) / 4.
 */
export function edmPreconditioning(options: EDMPreconditioningOptions = {}): Parametrization {
  const sd = options.sigmaData ?? 0.5;
  if (!(sd > 0)) throw new Error(`edm preconditioning: sigmaData must be > 0, got ${sd}`);
  const cNoise = noiseInputFn(options.noiseInput ?? 'edm', options.schedule, 'edm');
  return {
    type: 'edm',
    coefficients: (sigma) => {
      const q = sigma * sigma + sd * sd;
      return { cSkip: (sd * sd) / q, cOut: (sigma * sd) / Math.sqrt(q), cIn: 1 / Math.sqrt(q), cNoise: cNoise(sigma) };
    },
  };
}

export interface ParametrizationConfig {
  readonly type: ParametrizationType;
  readonly sigmaData?: number;
  readonly noiseInput?: 'time' | 'timestep' | 'edm' | 'log-half-sigma';
}

/** Builds a parametrization by stable id; unknown ids are an error listing the valid ones. */
export function createParametrization(config: ParametrizationConfig, schedule?: NoiseSchedule): Parametrization {
  const needSchedule = (): NoiseSchedule => {
    if (!schedule) throw new Error(`the '${config.type}' parametrization needs a noise schedule`);
    return schedule;
  };
  const opts = config.noiseInput !== undefined ? { noiseInput: config.noiseInput } : {};
  switch (config.type) {
    case 'epsilon':
      return epsilonParametrization(needSchedule(), opts);
    case 'x0':
      return x0Parametrization(needSchedule(), opts);
    case 'v':
      return vParametrization(needSchedule(), opts);
    case 'score':
      return scoreParametrization(schedule ? { ...opts, schedule } : opts);
    case 'edm':
      return edmPreconditioning({
        ...opts,
        ...(schedule ? { schedule } : {}),
        ...(config.sigmaData !== undefined ? { sigmaData: config.sigmaData } : {}),
      });
    default:
      throw new Error(
        `unknown parametrization '${String((config as { type?: unknown }).type)}'; choose one of: ${PARAMETRIZATION_TYPES.join(', ')}`,
      );
  }
}

/** Per-row coefficient tensors for a batch: cSkip, cOut, cIn shaped [B, 1, ..., 1] (rank `rank`), cNoise [B]. */
export interface CoefficientTensors {
  readonly cSkip: tf.Tensor;
  readonly cOut: tf.Tensor;
  readonly cIn: tf.Tensor;
  readonly cNoise: tf.Tensor1D;
}

/** Coefficients of a batch of noise levels (plain numbers), as broadcastable tensors. The caller disposes them. */
export function coefficientTensors(param: Parametrization, sigmas: ArrayLike<number>, rank: number): CoefficientTensors {
  const B = sigmas.length;
  const shape = [B, ...new Array<number>(Math.max(rank - 1, 0)).fill(1)];
  const skip = new Float32Array(B);
  const out = new Float32Array(B);
  const cin = new Float32Array(B);
  const noise = new Float32Array(B);
  for (let i = 0; i < B; i++) {
    const c = param.coefficients(sigmas[i] as number);
    skip[i] = c.cSkip;
    out[i] = c.cOut;
    cin[i] = c.cIn;
    noise[i] = c.cNoise;
  }
  return {
    cSkip: tf.tensor(skip, shape),
    cOut: tf.tensor(out, shape),
    cIn: tf.tensor(cin, shape),
    cNoise: tf.tensor1d(noise),
  };
}

/**
 * The effective training target of the raw network (EDM eq. 8):
 * F_target = (x0 - c_skip x) / c_out, with x = x0 + sigma eps.
 * For eps-prediction this is eps; for x0, x0; for v, alpha eps - sigma_vp x0; for score, -eps.
 */
export function effectiveTarget(param: Parametrization, x0: tf.Tensor, x: tf.Tensor, sigmas: ArrayLike<number>): tf.Tensor {
  return tf.tidy(() => {
    const c = coefficientTensors(param, sigmas, x.rank);
    return tf.div(tf.sub(x0, tf.mul(c.cSkip, x)), c.cOut);
  });
}

/**
 * Wraps a raw network into the Denoiser contract:
 * D(x; sigma, cond) = c_skip x + c_out F(c_in x, c_noise, cond) (EDM eq. 7).
 * Reads sigma's values (a [B] vector) synchronously to evaluate the float64 coefficients.
 */
export function makeDenoiser(net: RawNetwork, param: Parametrization): Denoiser {
  return (x, sigma, cond) =>
    tf.tidy(() => {
      const B = x.shape[0];
      if (sigma.rank !== 1 || sigma.shape[0] !== B) {
        throw new Error(`denoiser: sigma must have shape [${String(B)}], got [${sigma.shape.join(', ')}]`);
      }
      const c = coefficientTensors(param, sigma.dataSync(), x.rank);
      const f = net(tf.mul(c.cIn, x), c.cNoise, cond);
      if (f.shape.length !== x.shape.length || f.shape.some((d, i) => d !== x.shape[i])) {
        throw new Error(`network output shape [${f.shape.join(', ')}] differs from input shape [${x.shape.join(', ')}]`);
      }
      return tf.add(tf.mul(c.cSkip, x), tf.mul(c.cOut, f));
    });
}
