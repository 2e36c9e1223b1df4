import { z } from 'zod';
import { createObjective, type DSMObjective } from '../objectives.js';
import { createParametrization, type Parametrization } from '../parametrizations.js';
import { SAMPLER_IDS } from '../samplers/index.js';
import { DISCRETIZATION_IDS } from '../schedules/discretize.js';
import { createSchedule, type NoiseSchedule, type ScheduleConfig } from '../schedules/index.js';

/**
 * The `diffusion` and `sample` sections of a run config (snake_case YAML),
 * and their translation into the core's objects. Choosing "DDPM" is choosing
 * one row of each: schedule linear, parametrization epsilon, objective
 * uniform-time + simple; "EDM" is schedule edm, parametrization edm,
 * objective log-normal + edm.
 */
const positive = z.number().gt(0);
const T = z.int().min(2).max(100_000);

export const scheduleSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('linear'), beta_start: positive.max(1).default(1e-4), beta_end: positive.max(1).default(0.02), T: T.default(1000) }),
  z.strictObject({ type: z.literal('cosine'), s: z.number().min(0).default(0.008), T: T.default(1000), max_beta: positive.max(1).default(0.999) }),
  z.strictObject({
    type: z.literal('sigmoid'),
    start: z.number().default(-3),
    end: z.number().default(3),
    tau: positive.default(1),
    T: T.default(1000),
    max_beta: positive.max(1).default(0.999),
  }),
  z.strictObject({ type: z.literal('sqrt'), s: positive.default(1e-4), T: T.default(2000), max_beta: positive.max(1).default(0.999) }),
  z.strictObject({ type: z.literal('geometric'), sigma_min: positive.default(0.01), sigma_max: positive.default(50), T: T.default(1000) }),
  z.strictObject({ type: z.literal('edm'), sigma_min: positive.default(0.002), sigma_max: positive.default(80) }),
]);

export const parametrizationSchema = z.strictObject({
  type: z.enum(['epsilon', 'x0', 'v', 'score', 'edm']).default('epsilon'),
  sigma_data: positive.default(0.5),
  /** What the network receives as c_noise; default: the parametrization's own choice. */
  noise_input: z.enum(['time', 'timestep', 'edm', 'log-half-sigma']).optional(),
});

export const noiseSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('uniform-time'), discrete: z.boolean().optional() }),
  z.strictObject({ type: z.literal('log-normal'), p_mean: z.number().default(-1.2), p_std: positive.default(1.2) }),
  z.strictObject({ type: z.literal('log-uniform'), sigma_min: positive.optional(), sigma_max: positive.optional() }),
]);

export const weightingSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.enum(['uniform', 'simple', 'snr', 'snr+1', 'ncsn']) }),
  z.strictObject({ type: z.literal('min-snr'), gamma: positive.default(5) }),
  z.strictObject({ type: z.literal('edm'), sigma_data: positive.default(0.5) }),
]);

export const diffusionSchema = z.strictObject({
  schedule: scheduleSchema.prefault({ type: 'linear' }),
  parametrization: parametrizationSchema.prefault({}),
  objective: z
    .strictObject({
      noise: noiseSchema.prefault({ type: 'uniform-time' }),
      weighting: weightingSchema.prefault({ type: 'simple' }),
      reduction: z.enum(['mean', 'sum']).default('mean'),
    })
    .prefault({}),
});

export const sampleSchema = z.strictObject({
  sampler: z.enum(SAMPLER_IDS).default('dpmpp-2m'),
  steps: z.int().min(1).max(100_000).default(20),
  discretization: z.enum(DISCRETIZATION_IDS).default('karras'),
  rho: positive.default(7),
  /** Sampler-specific knobs (eta, s_churn, ...), passed through in camelCase. */
  options: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
  /** Classifier-free guidance weight for class-conditional models (1 = conditional, no guidance). */
  guidance: z.number().min(0).max(100).default(1),
  /**
   * Snap every denoised estimate onto the encodings of the data (the network's
   * LearnedEncoding.project: Diffusion-LM's clamping trick, Li et al. 2022, sec. 4.2).
   */
  clamp: z.boolean().default(false),
});

export type DiffusionConfig = z.infer<typeof diffusionSchema>;
export type SampleConfig = z.infer<typeof sampleSchema>;

export function scheduleFromConfig(c: DiffusionConfig['schedule']): NoiseSchedule {
  const map: Record<string, unknown> = { type: c.type };
  for (const [k, v] of Object.entries(c)) if (k !== 'type') map[camel(k)] = v;
  return createSchedule(map as ScheduleConfig);
}

export interface DiffusionParts {
  readonly schedule: NoiseSchedule;
  readonly parametrization: Parametrization;
  readonly objective: DSMObjective;
}

/** Builds the schedule, parametrization and objective a config names. */
export function diffusionFromConfig(c: DiffusionConfig): DiffusionParts {
  const schedule = scheduleFromConfig(c.schedule);
  const p = c.parametrization;
  const parametrization = createParametrization(
    { type: p.type, sigmaData: p.sigma_data, ...(p.noise_input ? { noiseInput: p.noise_input } : {}) },
    schedule,
  );
  const n = c.objective.noise;
  const noise =
    n.type === 'uniform-time'
      ? { type: n.type, ...(n.discrete !== undefined ? { discrete: n.discrete } : {}) }
      : n.type === 'log-normal'
        ? { type: n.type, pMean: n.p_mean, pStd: n.p_std }
        : { type: n.type, ...(n.sigma_min ? { sigmaMin: n.sigma_min } : {}), ...(n.sigma_max ? { sigmaMax: n.sigma_max } : {}) };
  const w = c.objective.weighting;
  const weighting =
    w.type === 'min-snr' ? { type: w.type, gamma: w.gamma } : w.type === 'edm' ? { type: w.type, sigmaData: w.sigma_data } : { type: w.type };
  const objective = createObjective({ noise, weighting, reduction: c.objective.reduction }, schedule);
  return { schedule, parametrization, objective };
}

function camel(k: string): string {
  return k === 'T' ? k : k.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase());
}
