import { z } from 'zod';

/**
 * The audio plugin's config sections (strict: unknown keys are errors;
 * snake_case keys, like the rest of a run config).
 *
 * `data` reads WAV files from a folder (or a list file), brings every clip
 * to one sample rate, one channel and one length, and optionally labels and
 * splits them by fields of the file name. FSDD, for instance:
 *
 *   data:
 *     path: ../shared/datasets/fsdd/recordings
 *     sample_rate: 8000
 *     length: 8000
 *     pattern: "{digit}_{speaker}_{index}.wav"
 *     labels: { field: digit }
 *     split: { by: index, test_range: [0, 4] }     # FSDD's official split
 *
 * Paths: an absolute path is used as is; a relative one is tried against the
 * working directory first, then against the config file's folder.
 */

/** A `{name}` field of a file-name pattern. */
const FIELD = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** The field names of a file-name pattern, in order (validated by the schema). */
export function patternFields(pattern: string): string[] {
  return [...pattern.matchAll(FIELD)].map((m) => m[1]!);
}

/** Problems of a file-name pattern, or undefined when it is usable. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.includes('/') || pattern.includes('\\')) return 'a pattern matches file names only: no "/" or "\\"';
  const fields = patternFields(pattern);
  if (fields.length === 0) return 'has no {field}; write e.g. "{label}_{speaker}_{index}.wav"';
  const stray = pattern.replace(FIELD, '').match(/[{}]/);
  if (stray) return `has a "${stray[0]}" that is not part of a {field} (field names are letters, digits and "_")`;
  const seen = new Set<string>();
  for (const f of fields) {
    if (seen.has(f)) return `names the field {${f}} twice`;
    seen.add(f);
  }
  if (/\}\{/.test(pattern)) return 'has two fields with nothing between them, which is ambiguous; put a literal separator between fields';
  return undefined;
}

const fieldName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a field name is letters, digits and "_"');

/** Where labels come from: none, the top-level sub-folder of each file, or a field of `pattern`. */
const labelsSchema = z.union([z.enum(['none', 'folder']), z.strictObject({ field: fieldName })], {
  error: "labels must be 'none', 'folder' or { field: <a field of pattern> }",
});

/**
 * How files are split into train and test: 'none' (both splits read every
 * file), or by a field of `pattern`: files whose field lies in the inclusive
 * numeric range `test_range`, or equals one of `test_values`, are the test
 * split and all others the train split.
 */
const splitSchema = z.union(
  [
    z.literal('none'),
    z.strictObject({ by: fieldName, test_range: z.tuple([z.number(), z.number()]) }),
    z.strictObject({ by: fieldName, test_values: z.array(z.union([z.string(), z.number()]).transform(String)).min(1) }),
  ],
  { error: "split must be 'none', { by: <field>, test_range: [lo, hi] } or { by: <field>, test_values: [...] }" },
);

export const audioDataSchema = z
  .strictObject({
    /** A folder of .wav files, or a text file listing one WAV path per line (relative to the list's folder; '#' starts a comment). */
    path: z.string().min(1),
    /** Files of the test split, when they live elsewhere (a folder or list file); null = the split comes from `split` or `path`. */
    test_path: z.string().min(1).nullable().default(null),
    /** Look for .wav files in sub-folders too. */
    recursive: z.boolean().default(true),
    /** Every clip is resampled to this rate (band-limited windowed sinc) when its file differs. */
    sample_rate: z.int().min(1000).max(384_000).default(8000),
    /** Multi-channel files: average the channels ('downmix'), or treat them as bad files ('error'). */
    channels: z.enum(['downmix', 'error']).default('downmix'),
    /** Clip length in samples: every example is [length, 1]. */
    length: z.int().min(16).max(10_000_000).default(8000),
    /** Where a longer clip is cut: from its start, its centre, or a uniformly random offset per batch. */
    crop: z.enum(['start', 'center', 'random']).default('center'),
    /** Where a shorter clip sits in the zero-padded window: at its start ('end' pads after it), centred, or at a random offset per batch. */
    pad: z.enum(['end', 'center', 'random']).default('center'),
    /** Loudness normalization of each whole clip, before cropping: to a peak level, an RMS level, or none. */
    normalize: z.enum(['none', 'peak', 'rms']).default('peak'),
    /** Target of `normalize`: peak amplitude (default 0.95) or RMS (default 0.1, -20 dBFS). */
    normalize_level: z.number().gt(0).max(1).nullable().default(null),
    /** File-name pattern with {field}s, e.g. "{digit}_{speaker}_{index}.wav"; names that do not match are bad files. */
    pattern: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .superRefine((p, ctx) => {
        const problem = p === null ? undefined : patternProblem(p);
        if (problem) ctx.addIssue({ code: 'custom', message: `pattern ${problem}` });
      }),
    labels: labelsSchema.default('none'),
    split: splitSchema.default('none'),
    /** Keep only the first N files of the split (in sorted path order). */
    limit: z.int().min(1).nullable().default(null),
    /** Skip bad files (not RIFF/WAVE, truncated, no samples, unsupported encoding, unmatched name), counted and logged, instead of failing on the first. */
    skip_bad_files: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    const fields = c.pattern !== null && !patternProblem(c.pattern) ? patternFields(c.pattern) : [];
    const needField = (field: string, path: (string | number)[], what: string) => {
      if (c.pattern === null) ctx.addIssue({ code: 'custom', path, message: `${what} needs data.pattern with a {${field}} field` });
      else if (fields.length > 0 && !fields.includes(field)) {
        ctx.addIssue({ code: 'custom', path, message: `${what}: pattern "${c.pattern}" has no {${field}} field (it has ${fields.map((f) => `{${f}}`).join(', ')})` });
      }
    };
    if (typeof c.labels === 'object') needField(c.labels.field, ['labels', 'field'], 'labels');
    if (c.labels === 'folder' && !c.recursive) ctx.addIssue({ code: 'custom', path: ['labels'], message: "labels 'folder' needs recursive: true" });
    if (typeof c.split === 'object') {
      needField(c.split.by, ['split', 'by'], 'split');
      if ('test_range' in c.split && c.split.test_range[0] > c.split.test_range[1]) {
        ctx.addIssue({ code: 'custom', path: ['split', 'test_range'], message: `range [${c.split.test_range.join(', ')}] is empty (lo > hi)` });
      }
      if (c.test_path !== null) ctx.addIssue({ code: 'custom', path: ['test_path'], message: 'set split or test_path, not both' });
    }
    if (c.normalize === 'none' && c.normalize_level !== null) {
      ctx.addIssue({ code: 'custom', path: ['normalize_level'], message: "has no effect with normalize: none" });
    }
  });

export type AudioDataConfig = z.output<typeof audioDataSchema>;
export type AudioDataConfigInput = z.input<typeof audioDataSchema>;

/** The level `normalize` brings clips to. */
export function normalizeLevel(c: Pick<AudioDataConfig, 'normalize' | 'normalize_level'>): number | undefined {
  if (c.normalize === 'none') return undefined;
  return c.normalize_level ?? (c.normalize === 'peak' ? 0.95 : 0.1);
}

/**
 * The `model` section: a DiffWave-style denoiser (Kong et al. 2021,
 * https://arxiv.org/abs/2009.09761). `arch` defaults to 'diffwave'.
 *
 * The defaults are the paper's residual stack at a size a 2-core CPU can
 * train (the paper's unconditional model: 36 layers of 256 channels,
 * dilation cycle 10).
 */
export const diffwaveConfigSchema = z
  .strictObject({
    arch: z.literal('diffwave'),
    /** C: channels of every residual layer. */
    residual_channels: z.int().min(1).max(1024).default(64),
    /** N: residual layers. */
    layers: z.int().min(1).max(256).default(20),
    /** Layer i dilates by 2^(i mod dilation_cycle) (the paper: 10, dilations 1..512). */
    dilation_cycle: z.int().min(1).max(16).default(10),
    /** Width of the dilated convolutions (odd, so that 'same' padding is symmetric). */
    kernel_size: z.int().min(1).max(31).default(3),
    /** Features of c_noise: sinusoidal (DiffWave, DDPM) or random Fourier features. */
    noise_embedding: z.enum(['sinusoidal', 'fourier']).default('sinusoidal'),
    /** Width of the noise features (DiffWave: 128). */
    embedding_dim: z.int().min(2).max(4096).default(128),
    /** Width of the embedding MLP, shared by all layers (DiffWave: 512). */
    embedding_hidden: z.int().min(1).max(8192).default(512),
    /** c_noise is multiplied by this before the embedding: 1 for EDM's ln(sigma)/4 or timestep indices, ~1000 for t in [0, 1]. */
    embedding_input_scale: z.number().gt(0).max(1e6).default(1),
    /** Std of the Fourier frequencies. */
    fourier_scale: z.number().gt(0).max(1e4).default(16),
    /** Learned class embedding with a null class (id = number of classes) for classifier-free guidance. */
    class_conditional: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.kernel_size % 2 === 0) ctx.addIssue({ code: 'custom', path: ['kernel_size'], message: `must be odd, got ${c.kernel_size}` });
    if (c.noise_embedding === 'fourier' && c.embedding_dim % 2 !== 0) {
      ctx.addIssue({ code: 'custom', path: ['embedding_dim'], message: `must be even for Fourier features, got ${c.embedding_dim}` });
    }
  });

export const audioModelSchema = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('arch' in v) ? { ...v, arch: 'diffwave' } : v),
  z.discriminatedUnion('arch', [diffwaveConfigSchema], { error: (issue) => (issue.code === 'invalid_union' ? "arch must be 'diffwave'" : undefined) }),
);

export type DiffWaveConfig = z.output<typeof diffwaveConfigSchema>;
export type AudioModelConfig = DiffWaveConfig;
export type AudioModelConfigInput = Omit<z.input<typeof diffwaveConfigSchema>, 'arch'> & { arch?: 'diffwave' };
