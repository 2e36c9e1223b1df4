/**
 * The sampler registry: every sampler by a stable id, with its denoiser-call
 * count (NFE) so samplers can be compared at equal cost.
 */
import type { Sigmas, Sampler } from './common.js';
import { checkSigmas } from './common.js';
import { ddim, ddpm, type DdimOptions, type DdpmOptions } from './ddpm.js';
import { dpmSolverPP2M, dpmSolverPP2MSDE, type DpmSdeOptions } from './dpm-solver.js';
import { euler, eulerAncestral, heun, lms, type AncestralOptions, type ChurnOptions, type LmsOptions } from './karras.js';
import { annealedLangevin, predictorCorrector, type AldOptions, type PcOptions } from './langevin.js';
import type { SamplerOptions } from './common.js';

export * from './common.js';
export * from './karras.js';
export * from './dpm-solver.js';
export * from './ddpm.js';
export * from './langevin.js';

export const SAMPLER_IDS = [
  'euler',
  'euler-ancestral',
  'heun',
  'lms',
  'dpmpp-2m',
  'dpmpp-2m-sde',
  'ddpm',
  'ddim',
  'ald',
  'pc',
] as const;
export type SamplerId = (typeof SAMPLER_IDS)[number];

export interface SamplerOptionsById {
  euler: ChurnOptions;
  'euler-ancestral': AncestralOptions;
  heun: ChurnOptions;
  lms: LmsOptions;
  'dpmpp-2m': SamplerOptions;
  'dpmpp-2m-sde': DpmSdeOptions;
  ddpm: DdpmOptions;
  ddim: DdimOptions;
  ald: AldOptions;
  pc: PcOptions;
}

/** Every sampler-specific knob (what a config or benchmark may pass to any sampler). */
export type AnySamplerOptions = ChurnOptions &
  AncestralOptions &
  LmsOptions &
  DpmSdeOptions &
  DdpmOptions &
  DdimOptions &
  AldOptions &
  PcOptions;

export interface SamplerInfo<K extends SamplerId = SamplerId> {
  readonly id: K;
  readonly sample: Sampler<SamplerOptionsById[K]>;
  /** k-diffusion's function of the same semantics, where it has one. */
  readonly kDiffusion: string | null;
  /** Whether a run with these options draws noise (needs options.rng). */
  stochastic(options?: SamplerOptionsById[K]): boolean;
  /** Exact number of denoiser calls for these sigmas and options. */
  nfe(sigmas: Sigmas, options?: SamplerOptionsById[K]): number;
}

/** Steps onto a positive sigma (the rest go onto the trailing 0). */
function stepsOntoPositive(s: readonly number[]): number {
  let k = 0;
  for (let i = 1; i < s.length; i++) if ((s[i] as number) > 0) k++;
  return k;
}

const oneCallPerStep = (sigmas: Sigmas, id: string): number => checkSigmas(sigmas, id).length - 1;

const REGISTRY: { [K in SamplerId]: SamplerInfo<K> } = {
  euler: {
    id: 'euler',
    sample: euler,
    kDiffusion: 'sample_euler',
    stochastic: (o) => (o?.sChurn ?? 0) > 0,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'euler'),
  },
  'euler-ancestral': {
    id: 'euler-ancestral',
    sample: eulerAncestral,
    kDiffusion: 'sample_euler_ancestral',
    stochastic: () => true,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'euler-ancestral'),
  },
  heun: {
    id: 'heun',
    sample: heun,
    kDiffusion: 'sample_heun',
    stochastic: (o) => (o?.sChurn ?? 0) > 0,
    nfe: (sigmas) => {
      const s = checkSigmas(sigmas, 'heun');
      return s.length - 1 + stepsOntoPositive(s);
    },
  },
  lms: {
    id: 'lms',
    sample: lms,
    kDiffusion: 'sample_lms',
    stochastic: () => false,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'lms'),
  },
  'dpmpp-2m': {
    id: 'dpmpp-2m',
    sample: dpmSolverPP2M,
    kDiffusion: 'sample_dpmpp_2m',
    stochastic: () => false,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'dpmpp-2m'),
  },
  'dpmpp-2m-sde': {
    id: 'dpmpp-2m-sde',
    sample: dpmSolverPP2MSDE,
    kDiffusion: 'sample_dpmpp_2m_sde',
    stochastic: (o) => (o?.eta ?? 1) > 0,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'dpmpp-2m-sde'),
  },
  ddpm: {
    id: 'ddpm',
    sample: ddpm,
    kDiffusion: null,
    stochastic: () => true,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'ddpm'),
  },
  ddim: {
    id: 'ddim',
    sample: ddim,
    kDiffusion: null,
    stochastic: (o) => (o?.eta ?? 0) > 0,
    nfe: (sigmas) => oneCallPerStep(sigmas, 'ddim'),
  },
  ald: {
    id: 'ald',
    sample: annealedLangevin,
    kDiffusion: null,
    stochastic: () => true,
    nfe: (sigmas, o) => {
      const levels = checkSigmas(sigmas, 'ald').filter((v) => v > 0).length;
      if (levels === 0) return 0;
      return levels * (o?.stepsPerLevel ?? 100) + ((o?.finalDenoise ?? true) ? 1 : 0);
    },
  },
  pc: {
    id: 'pc',
    sample: predictorCorrector,
    kDiffusion: null,
    stochastic: () => true,
    nfe: (sigmas, o) => {
      const s = checkSigmas(sigmas, 'pc');
      return s.length - 1 + (o?.correctorSteps ?? 1) * stepsOntoPositive(s);
    },
  },
};

export function isSamplerId(id: string): id is SamplerId {
  return (SAMPLER_IDS as readonly string[]).includes(id);
}

function unknown(id: string): Error {
  return new Error(`unknown sampler '${id}'; choose one of: ${SAMPLER_IDS.join(', ')}`);
}

/** The registry entry for a sampler id; an unknown id is an error listing the valid ones. */
export function samplerInfo<K extends SamplerId>(id: K): SamplerInfo<K>;
export function samplerInfo(id: string): SamplerInfo;
export function samplerInfo(id: string): SamplerInfo {
  if (!isSamplerId(id)) throw unknown(id);
  return REGISTRY[id] as unknown as SamplerInfo;
}

/** The sampler function for an id; an unknown id is an error listing the valid ones. */
export function getSampler<K extends SamplerId>(id: K): Sampler<SamplerOptionsById[K]>;
export function getSampler(id: string): Sampler<AnySamplerOptions>;
export function getSampler(id: string): Sampler<AnySamplerOptions> {
  if (!isSamplerId(id)) throw unknown(id);
  return REGISTRY[id].sample as Sampler<AnySamplerOptions>;
}

/** Exact number of denoiser calls sampler `id` makes on these sigmas with these options. */
export function countNfe(id: string, sigmas: Sigmas, options?: AnySamplerOptions): number {
  return samplerInfo(id).nfe(sigmas, options);
}

/** Strictly descending stand-in sigmas for n steps with a trailing 0 (only their count and zeros matter to nfe). */
function standInSigmas(n: number): number[] {
  return Array.from({ length: n + 1 }, (_, i) => n - i);
}

/**
 * The largest number of steps n (for sigmas with a trailing 0, the
 * discretizations' convention) whose run makes at most `nfe` denoiser calls
 * with these options; an error if even one step costs more.
 * E.g. heun: n = floor((nfe + 1) / 2); pc with M corrector steps: floor((nfe + M) / (M + 1)).
 */
export function stepsForNfe(id: string, nfe: number, options?: AnySamplerOptions): number {
  const info = samplerInfo(id);
  if (!Number.isInteger(nfe) || nfe < 1) throw new Error(`stepsForNfe: nfe must be an integer >= 1, got ${nfe}`);
  if (info.nfe(standInSigmas(1), options) > nfe) {
    throw new Error(`${id}: one step already takes ${info.nfe(standInSigmas(1), options)} denoiser calls, more than ${nfe}`);
  }
  // nfe grows at least by one per step, so n <= nfe; binary search the largest feasible n.
  let lo = 1;
  let hi = nfe;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (info.nfe(standInSigmas(mid), options) <= nfe) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
