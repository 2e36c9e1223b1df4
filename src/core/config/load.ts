import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { BACKEND_NAMES } from '../backend/select.js';
import type { AnyModalityPlugin, PluginRegistry } from '../plugin.js';
import { diffusionSchema, sampleSchema } from './diffusion.js';

/** A bad config: the message is one line naming the file and the key path. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads YAML safely: the core schema only (no custom tags, no code), unique
 * keys, and a cap on alias expansion (no "billion laughs").
 */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read config (${code ?? String(err)})`);
  }
  return parseYamlText(text, file);
}

export function parseYamlText(text: string, file: string): unknown {
  const doc = parseDocument(text, { schema: 'core', customTags: [], uniqueKeys: true, prettyErrors: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const pos = problem.linePos?.[0];
    const where = pos ? `:${pos.line}:${pos.col}` : '';
    throw new ConfigError(`${file}${where}: invalid YAML: ${problem.message.split('\n')[0]}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

function keyPath(prefix: readonly (string | number)[], path: readonly PropertyKey[]): string {
  const parts = [...prefix, ...path].map((p) => (typeof p === 'number' ? `[${p}]` : String(p)));
  return parts.join('.').replace(/\.\[/g, '[') || '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue, prefix: readonly (string | number)[]): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${keyPath(prefix, [...issue.path, k])}: unknown key`).join('; ');
  }
  return `${keyPath(prefix, issue.path)}: ${issue.message}`;
}

/** Formats zod issues as one line: `file: a.b: message; c: message`. */
export function formatIssues(file: string, error: z.ZodError, prefix: readonly (string | number)[] = []): string {
  return `${file}: ${error.issues.map((i) => describeIssue(i, prefix)).join('; ')}`;
}

/** Validates `value` with `schema`, or throws a one-line ConfigError. */
export function validate<T>(schema: z.ZodType<T>, value: unknown, file: string, prefix: readonly (string | number)[] = []): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new ConfigError(formatIssues(file, r.error, prefix));
  return r.data;
}

/** The modality-agnostic training options. */
export const trainSchema = z.strictObject({
  steps: z.int().min(1).max(100_000_000).default(1000),
  batch_size: z.int().min(1).max(65_536).default(32),
  lr: z.number().gt(0).max(1).default(2e-4),
  warmup_steps: z.int().min(0).default(0),
  lr_decay: z.enum(['constant', 'cosine', 'linear', 'inverse-sqrt']).default('constant'),
  min_lr_ratio: z.number().min(0).max(1).default(0),
  weight_decay: z.number().min(0).max(1).default(0),
  adam_betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
  /** Clip the global gradient norm; null = no clipping. */
  grad_clip: z.number().gt(0).nullable().default(1),
  ema: z
    .discriminatedUnion('kind', [
      z.strictObject({
        kind: z.literal('warmup'),
        inv_gamma: z.number().gt(0).default(1),
        power: z.number().gt(0).default(2 / 3),
        max_value: z.number().min(0).max(1).default(0.9999),
        min_value: z.number().min(0).max(1).default(0),
        start_at: z.int().min(0).default(0),
      }),
      z.strictObject({
        kind: z.literal('halflife'),
        halflife_examples: z.number().gt(0).default(500_000),
        rampup_ratio: z.number().gt(0).nullable().default(0.05),
      }),
      z.strictObject({ kind: z.literal('none') }),
    ])
    .prefault({ kind: 'warmup' }),
  /** Probability of replacing a class label by the null class (classifier-free guidance training). */
  cond_dropout: z.number().min(0).max(1).default(0.1),
  /** Data-parallel workers; 'auto' = every core (wasm), 1 = in-process. */
  workers: z.union([z.literal('auto'), z.int().min(1).max(256)]).default('auto'),
  log_every: z.int().min(1).default(10),
  checkpoint_every: z.int().min(1).default(500),
  /** Keep this many most recent checkpoints. */
  keep_checkpoints: z.int().min(1).default(2),
  /** Write a sample grid every N steps (0 = never during training). */
  sample_every: z.int().min(0).default(0),
  sample_count: z.int().min(1).max(1024).default(16),
});

export const runConfigShape = {
  /** Short name of the run, used for output folders. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" and "-"').optional(),
  /** The id of a registered modality plugin. */
  modality: z.string().min(1),
  seed: z.int().min(0).max(2 ** 32 - 1).default(0),
  backend: z.enum(['auto', ...BACKEND_NAMES]).default('auto'),
  data: z.unknown().optional(),
  model: z.unknown().optional(),
  diffusion: diffusionSchema.prefault({}),
  train: trainSchema.prefault({}),
  sample: sampleSchema.prefault({}),
};

const baseRunSchema = z.strictObject(runConfigShape);

export type TrainConfig = z.infer<typeof trainSchema>;
export type RunConfig<DataConfig = unknown, ModelConfig = unknown> = Omit<z.infer<typeof baseRunSchema>, 'data' | 'model'> & {
  data: DataConfig;
  model: ModelConfig;
};

/**
 * Validates a run config: the modality-agnostic part first, then the `data`
 * and `model` sections with the schemas of the plugin the config names.
 */
export function parseRunConfig(raw: unknown, file: string, registry: PluginRegistry): RunConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${file}: expected a mapping of keys at the top level`);
  }
  const base = validate(baseRunSchema, raw, file);
  let plugin: AnyModalityPlugin;
  try {
    plugin = registry.get(base.modality);
  } catch (err) {
    throw new ConfigError(`${file}: modality: ${(err as Error).message}`);
  }
  const data: unknown = validate(plugin.dataSchema, base.data ?? {}, file, ['data']);
  const model: unknown = validate(plugin.modelSchema, base.model ?? {}, file, ['model']);
  return { ...base, data, model };
}

/** Reads and validates a run config file. */
export function loadRunConfig(file: string, registry: PluginRegistry): RunConfig {
  return parseRunConfig(readYamlFile(file), file, registry);
}
