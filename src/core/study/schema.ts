import { createHash } from 'node:crypto';
import { basename, dirname, extname, resolve } from 'node:path';
import { z } from 'zod';
import { SAMPLER_IDS } from '../samplers/index.js';
import { DISCRETIZATION_IDS } from '../schedules/discretize.js';
import { diffusionFromConfig } from '../config/diffusion.js';
import { ConfigError, parseRunConfig, readYamlFile, validate, type RunConfig } from '../config/load.js';
import type { PluginRegistry } from '../plugin.js';

/**
 * The bench file of `difflab bench`: a base run config, a matrix over its
 * keys (dotted paths), one training budget for every cell, and a sampling
 * matrix every trained cell is evaluated over. Strict: unknown keys are errors.
 *
 * ```yaml
 * base: ../fashion-unet.yaml          # relative to the bench file
 * matrix:
 *   model.arch: [unet, resnet]        # a value replaces the key's whole value
 * budget: { steps: 300 }              # or { seconds: 900 } of training wall-clock
 * eval_every: 100                     # optional: FD during training, every N steps
 * sample: { sampler: [euler, heun], steps: [10, 20] }
 * eval: { n: 500, batch: 100, seed: 0 }
 * out: runs/studies/unet-vs-resnet        # relative to the working directory
 * ```
 */

/** A dotted key path into a run config, e.g. `model.arch` or `diffusion.schedule.T`. */
export const KEY_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

const nonEmpty = <T extends z.ZodType>(t: T) => z.array(t).min(1, 'list at least one value');

export const benchSchema = z.strictObject({
  /** Name of the study (default: the bench file's name). */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" and "-"').optional(),
  /** The run config every cell starts from, relative to the bench file. */
  base: z.string().min(1),
  /** Dotted key -> values; the cells are the cartesian product (no keys: one cell, the base). */
  matrix: z.record(z.string(), nonEmpty(z.unknown())).default({}),
  /** The same training budget for every cell: a number of steps, or seconds of training wall-clock. */
  budget: z.union([z.strictObject({ steps: z.int().min(1).max(100_000_000) }), z.strictObject({ seconds: z.number().gt(0).max(30 * 24 * 3600) })]),
  /** Evaluate during training every this many steps (FD vs training time); needs a feature extractor. */
  eval_every: z.int().min(1).optional(),
  /** The sampling matrix every trained cell is evaluated over. */
  sample: z
    .strictObject({
      sampler: nonEmpty(z.enum(SAMPLER_IDS)),
      steps: nonEmpty(z.int().min(1).max(100_000)),
      /** Sampling-time discretization (default: each cell's `sample.discretization`). */
      discretization: z.enum(DISCRETIZATION_IDS).optional(),
    })
    .optional(),
  eval: z
    .strictObject({
      /** Samples per evaluation. */
      n: z.int().min(2).max(1_000_000).default(500),
      /** Samples per sampler call. */
      batch: z.int().min(1).max(100_000).default(100),
      seed: z.int().min(0).max(2 ** 32 - 1).default(0),
      /** Real examples the samples are compared with (default: the whole training split). */
      real: z.int().min(2).optional(),
    })
    .prefault({}),
  /** Study folder: results.json, report.md, charts, cell runs (default runs/studies/<name>; relative to the working directory). */
  out: z.string().min(1).optional(),
});

export type BenchFile = z.infer<typeof benchSchema>;
export type Budget = BenchFile['budget'];

/** One cell of the matrix: its assignments and the validated run config. */
export interface StudyCell {
  /** Position in the expansion (matrix order, last key fastest). */
  readonly index: number;
  /** Stable id: a hash of the validated config and the budget (resume matches on it). */
  readonly id: string;
  /** `model.arch=unet, diffusion.schedule=cosine` */
  readonly label: string;
  /** Folder-safe short name. */
  readonly slug: string;
  readonly assignments: Readonly<Record<string, unknown>>;
  readonly config: RunConfig;
}

export interface Study {
  readonly file: string;
  readonly name: string;
  readonly baseFile: string;
  /** Folder relative data paths of the base config resolve against. */
  readonly baseDir: string;
  readonly bench: BenchFile;
  readonly out: string;
  readonly cells: readonly StudyCell[];
  /** The samplers x steps every cell is evaluated over ([] when the bench file has no `sample`). */
  readonly sampling: readonly { readonly sampler: (typeof SAMPLER_IDS)[number]; readonly steps: number }[];
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Returns a deep copy of `raw` with `value` set at the dotted `path`,
 * creating missing mappings. The value replaces whatever was there (a whole
 * mapping for `diffusion.schedule`). Throws when the path goes through a value
 * that is not a mapping.
 */
export function setKeyPath(raw: unknown, path: string, value: unknown): Record<string, unknown> {
  if (!KEY_PATH.test(path)) throw new Error(`${path}: expected a dotted key path such as model.arch`);
  if (!isMapping(raw)) throw new Error('the base config is not a mapping');
  const root = structuredClone(raw);
  const parts = path.split('.');
  let node: Record<string, unknown> = root;
  for (let i = 0; i < parts.length - 1; i++) {
    const k = parts[i]!;
    const next = node[k];
    if (next === undefined || next === null) {
      node[k] = {};
    } else if (!isMapping(next)) {
      throw new Error(`${parts.slice(0, i + 1).join('.')} is ${Array.isArray(next) ? 'a list' : `the value ${JSON.stringify(next)}`}, not a mapping`);
    }
    node = node[k] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = structuredClone(value);
  return root;
}

/** The cartesian product of the matrix, last key varying fastest; `{}` gives one empty assignment. */
export function cartesian(matrix: Readonly<Record<string, readonly unknown[]>>): Record<string, unknown>[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [key, values] of Object.entries(matrix)) {
    const next: Record<string, unknown>[] = [];
    for (const a of out) for (const v of values) next.push({ ...a, [key]: v });
    out = next;
  }
  return out;
}

/** A short text for a matrix value: scalars as they are, mappings by their `type`/`arch`/`kind` and other keys (or compact JSON). */
export function shortValue(v: unknown): string {
  if (isMapping(v)) {
    const keys = Object.keys(v);
    const tag = ['type', 'arch', 'kind'].find((k) => typeof v[k] === 'string');
    if (tag && keys.length === 1) return v[tag] as string;
    if (tag) return `${v[tag] as string}(${keys.filter((k) => k !== tag).map((k) => `${k}=${shortValue(v[k])}`).join(',')})`;
  }
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** Order in which keys are applied: shorter paths first, so `diffusion.schedule.T` refines `diffusion.schedule`. */
function applyOrder(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => a.split('.').length - b.split('.').length);
}

/** Keys the bench file owns: the budget sets train.steps, the sampling matrix replaces `sample`. */
const RESERVED: readonly { readonly prefix: string; readonly why: string }[] = [
  { prefix: 'train.steps', why: 'the bench file\'s budget sets it' },
  { prefix: 'sample', why: 'use the bench file\'s `sample` matrix' },
  { prefix: 'modality', why: 'every cell must use the same modality plugin' },
];

function hash(text: string, n = 10): string {
  return createHash('sha256').update(text).digest('hex').slice(0, n);
}

/**
 * Expands a bench file into validated cells. Every error is one line naming
 * the bench file and the matrix key (and the value that failed).
 */
export function expandStudy(raw: unknown, file: string, registry: PluginRegistry, options: { out?: string } = {}): Study {
  if (!isMapping(raw)) throw new ConfigError(`${file}: expected a mapping of keys at the top level`);
  const bench = validate(benchSchema, raw, file);
  for (const key of Object.keys(bench.matrix)) {
    if (!KEY_PATH.test(key)) throw new ConfigError(`${file}: matrix.${key}: expected a dotted key path such as model.arch`);
    const r = RESERVED.find((x) => key === x.prefix || key.startsWith(`${x.prefix}.`));
    if (r) throw new ConfigError(`${file}: matrix.${key}: cannot be varied (${r.why})`);
  }
  const baseFile = resolve(dirname(file), bench.base);
  let baseRaw: unknown;
  let base: RunConfig;
  try {
    baseRaw = readYamlFile(baseFile);
    // The base must be valid on its own: its errors name the base file.
    base = parseRunConfig(baseRaw, baseFile, registry);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(`${file}: base: ${err.message}`);
  }
  const name = bench.name ?? basename(file, extname(file));
  const order = applyOrder(Object.keys(bench.matrix));
  const cells: StudyCell[] = cartesian(bench.matrix).map((assignments, index) => {
    let cellRaw = baseRaw as Record<string, unknown>;
    for (const key of order) {
      try {
        cellRaw = setKeyPath(cellRaw, key, assignments[key]);
      } catch (err) {
        throw new ConfigError(`${file}: matrix.${key}: cannot set it in ${bench.base}: ${(err as Error).message}`);
      }
    }
    const label = Object.entries(assignments).map(([k, v]) => `${k}=${shortValue(v)}`).join(', ') || 'base';
    let config: RunConfig;
    try {
      config = parseRunConfig(cellRaw, file, registry);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // "file: model.arch: Invalid option" -> "file: matrix cell {model.arch=transformer}: model.arch: Invalid option"
      const rest = err.message.startsWith(`${file}: `) ? err.message.slice(file.length + 2) : err.message;
      throw new ConfigError(`${file}: matrix cell {${label}}: ${rest}`);
    }
    if (config.modality !== base.modality) throw new ConfigError(`${file}: matrix cell {${label}}: modality must stay '${base.modality}'`);
    try {
      // Schedule, parametrization and objective must fit together (e.g. a noise range inside the schedule's).
      diffusionFromConfig(config.diffusion);
    } catch (err) {
      throw new ConfigError(`${file}: matrix cell {${label}}: diffusion: ${(err as Error).message.split('\n')[0]}`);
    }
    const budgetSteps = 'steps' in bench.budget ? bench.budget.steps : undefined;
    const withBudget: RunConfig = budgetSteps !== undefined ? { ...config, train: { ...config.train, steps: budgetSteps } } : config;
    const id = hash(JSON.stringify({ config: withBudget, budget: bench.budget }));
    const slugText = Object.entries(assignments)
      .map(([k, v]) => `${k.split('.').pop()}-${shortValue(v)}`)
      .join('_')
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .slice(0, 60);
    return { index, id, label, slug: `${String(index).padStart(2, '0')}-${slugText || 'base'}-${id.slice(0, 6)}`, assignments, config: withBudget };
  });
  const sampling = bench.sample ? bench.sample.sampler.flatMap((sampler) => bench.sample!.steps.map((steps) => ({ sampler, steps }))) : [];
  const out = resolve(options.out ?? bench.out ?? `runs/studies/${name}`);
  return { file, name, baseFile, baseDir: dirname(baseFile), bench, out, cells, sampling };
}

/** Reads and expands a bench file. */
export function loadStudy(file: string, registry: PluginRegistry, options: { out?: string } = {}): Study {
  return expandStudy(readYamlFile(file), file, registry, options);
}

/** A hash of everything but the matrix that makes two cells' results comparable (budget, sampling, eval). */
export function studyFingerprint(study: Study): string {
  const { budget, eval_every, sample, eval: ev } = study.bench;
  return hash(JSON.stringify({ budget, eval_every: eval_every ?? null, sample: sample ?? null, eval: ev }), 16);
}
