/**
 * Sampling-time discretizations: which noise levels a sampler visits.
 *
 * Every function returns a *descending* array of sigmas (VE frame) followed by
 * a trailing 0, k-diffusion's `append_zero` convention: n steps means n + 1
 * entries, sigmas[0] = the starting noise level, sigmas[n] = 0.
 * The choice is independent of the schedule the model was trained with
 * (Karras et al. 2022, https://arxiv.org/abs/2206.00364, section 3).
 */
import type { DiscreteSchedule, NoiseSchedule } from './types.js';

export const DISCRETIZATION_IDS = ['uniform', 'karras', 'log-uniform', 'leading', 'linspace', 'trailing'] as const;
export type DiscretizationId = (typeof DISCRETIZATION_IDS)[number];

/** The timestep spacings of Lin et al. 2023 (https://arxiv.org/abs/2305.08891, Table 2). */
export const TIMESTEP_SPACINGS = ['leading', 'linspace', 'trailing'] as const;
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

function checkSteps(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`number of sampling steps must be an integer >= 1, got ${n}`);
}

function checkRange(sigmaMin: number, sigmaMax: number): void {
  if (!(sigmaMin > 0) || !(sigmaMax >= sigmaMin) || !Number.isFinite(sigmaMax)) {
    throw new Error(`need 0 < sigmaMin <= sigmaMax < inf, got sigmaMin=${sigmaMin}, sigmaMax=${sigmaMax}`);
  }
}

/** i/(n-1) for i = 0..n-1 (just [0] when n = 1), like numpy's linspace(0, 1, n). */
function ramp(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (n === 1 ? 0 : i / (n - 1)));
}

/** Appends the final 0 (k-diffusion `append_zero`). */
export function appendZero(sigmas: readonly number[]): number[] {
  return [...sigmas, 0];
}

/**
 * Karras rho-spacing (EDM, https://arxiv.org/abs/2206.00364, eq. 5):
 * sigma_i = (sigmaMax^(1/rho) + i/(n-1) (sigmaMin^(1/rho) - sigmaMax^(1/rho)))^rho,
 * i = 0..n-1, then sigma_n = 0. rho = 7 is the paper's choice.
 */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  checkSteps(n);
  checkRange(sigmaMin, sigmaMax);
  if (!(rho > 0)) throw new Error(`karras: rho must be > 0, got ${rho}`);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return appendZero(ramp(n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho));
}

/**
 * Log-uniform (geometric) spacing: sigma_i = sigmaMax (sigmaMin/sigmaMax)^(i/(n-1)),
 * EDM's VE discretization (https://arxiv.org/abs/2206.00364, Table 1, "VE"
 * column, sigma_{i<N} row) and k-diffusion's `get_sigmas_exponential`.
 */
export function logUniformSigmas(n: number, sigmaMin: number, sigmaMax: number): number[] {
  checkSteps(n);
  checkRange(sigmaMin, sigmaMax);
  const a = Math.log(sigmaMax);
  const b = Math.log(sigmaMin);
  return appendZero(ramp(n).map((r) => Math.exp(a + r * (b - a))));
}

/**
 * Uniform in the schedule's continuous time: t_i = tMax + i/(n-1) (tMin - tMax),
 * sigma_i = sigma(t_i) (EDM, https://arxiv.org/abs/2206.00364, Table 1, "VP"
 * column: t_i = 1 + i/(N-1) (eps_s - 1)). Optional tMin/tMax narrow the range.
 */
export function uniformTimeSigmas(
  schedule: NoiseSchedule,
  n: number,
  range: { tMin?: number; tMax?: number } = {},
): number[] {
  checkSteps(n);
  const tMin = range.tMin ?? schedule.tMin;
  const tMax = range.tMax ?? schedule.tMax;
  if (!(tMin >= schedule.tMin && tMax <= schedule.tMax && tMin <= tMax)) {
    throw new Error(
      `uniform: need ${schedule.tMin} <= tMin <= tMax <= ${schedule.tMax} for the ${schedule.type} schedule, got [${tMin}, ${tMax}]`,
    );
  }
  return appendZero(ramp(n).map((r) => schedule.sigma(tMax + r * (tMin - tMax))));
}

/** numpy's round (half to even), so timesteps match the reference implementations bit for bit. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The n training timesteps (0-based, descending) a discrete-model sampler
 * visits, for the three spacings of Lin et al. 2023
 * (https://arxiv.org/abs/2305.08891, Table 2; diffusers' `timestep_spacing`):
 *
 * - leading  (DDIM, PNDM, Stable Diffusion): floor(T/n) * i + stepsOffset, i = 0..n-1
 * - linspace (iDDPM):                        round(linspace(0, T-1, n))
 * - trailing (DPM-Solver, Lin et al.'s fix): round(T - i T/n) - 1, i = 0..n-1
 *
 * The paper's table counts timesteps from 1; add 1 to these to compare.
 */
export function spacedTimesteps(spacing: TimestepSpacing, n: number, T: number, stepsOffset = 0): number[] {
  checkSteps(n);
  if (!Number.isInteger(T) || T < 1) throw new Error(`T must be an integer >= 1, got ${T}`);
  if (n > T) throw new Error(`cannot take ${n} sampling steps from ${T} training timesteps`);
  let ts: number[];
  switch (spacing) {
    case 'leading': {
      const ratio = Math.floor(T / n);
      ts = Array.from({ length: n }, (_, i) => i * ratio + stepsOffset);
      break;
    }
    case 'linspace':
      ts = ramp(n).map((r) => roundHalfEven(r * (T - 1)));
      break;
    case 'trailing': {
      const ratio = T / n;
      ts = Array.from({ length: n }, (_, i) => roundHalfEven(T - i * ratio) - 1).reverse();
      break;
    }
    default:
      throw new Error(`unknown timestep spacing '${String(spacing)}'; choose one of: ${TIMESTEP_SPACINGS.join(', ')}`);
  }
  for (const t of ts) {
    if (t < 0 || t > T - 1) throw new Error(`${spacing}: timestep ${t} is outside [0, ${T - 1}] (stepsOffset=${stepsOffset})`);
  }
  return ts.reverse();
}

/** The sigmas of the chosen training timesteps, descending, with the trailing 0. */
export function timestepSigmas(
  discrete: DiscreteSchedule,
  spacing: TimestepSpacing,
  n: number,
  stepsOffset = 0,
): number[] {
  return appendZero(
    spacedTimesteps(spacing, n, discrete.T, stepsOffset).map((i) => {
      const s = discrete.sigmas[i];
      if (s === undefined) throw new Error(`timestep ${i} outside the schedule`);
      return s;
    }),
  );
}

export interface DiscretizationOptions {
  /** Karras rho (default 7). */
  readonly rho?: number;
  /** Override the schedule's sigma range (karras, log-uniform). */
  readonly sigmaMin?: number;
  readonly sigmaMax?: number;
  /** Override the schedule's time range (uniform). */
  readonly tMin?: number;
  readonly tMax?: number;
  /** Added to 'leading' timesteps (Stable Diffusion uses 1). */
  readonly stepsOffset?: number;
}

/** A discretization: the n-step sigma array for a schedule. */
export type Discretization = (schedule: NoiseSchedule, n: number) => number[];

function isDiscretizationId(id: string): id is DiscretizationId {
  return (DISCRETIZATION_IDS as readonly string[]).includes(id);
}

/** Builds a discretization by stable id; an unknown id is an error listing the valid ones. */
export function createDiscretization(id: string, options: DiscretizationOptions = {}): Discretization {
  if (!isDiscretizationId(id)) {
    throw new Error(`unknown discretization '${id}'; choose one of: ${DISCRETIZATION_IDS.join(', ')}`);
  }
  switch (id) {
    case 'uniform':
      return (schedule, n) => {
        const range: { tMin?: number; tMax?: number } = {};
        if (options.tMin !== undefined) range.tMin = options.tMin;
        if (options.tMax !== undefined) range.tMax = options.tMax;
        return uniformTimeSigmas(schedule, n, range);
      };
    case 'karras':
      return (schedule, n) =>
        karrasSigmas(n, options.sigmaMin ?? schedule.sigmaMin, options.sigmaMax ?? schedule.sigmaMax, options.rho ?? 7);
    case 'log-uniform':
      return (schedule, n) =>
        logUniformSigmas(n, options.sigmaMin ?? schedule.sigmaMin, options.sigmaMax ?? schedule.sigmaMax);
    case 'leading':
    case 'linspace':
    case 'trailing':
      return (schedule, n) => {
        if (!schedule.discrete) {
          throw new Error(`the '${id}' spacing needs a schedule with training timesteps; '${schedule.type}' has none`);
        }
        return timestepSigmas(schedule.discrete, id, n, options.stepsOffset ?? 0);
      };
  }
}

/** One-call form: the descending n-step sigmas (with trailing 0) of `schedule` under discretization `id`. */
export function sigmasFor(
  id: string,
  schedule: NoiseSchedule,
  n: number,
  options: DiscretizationOptions = {},
): number[] {
  return createDiscretization(id, options)(schedule, n);
}
