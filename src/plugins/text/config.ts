import { z } from 'zod';

/**
 * The text plugin's config sections (strict: unknown keys are errors).
 *
 *   data:
 *     path: ../shared/datasets/tinyshakespeare/input.txt   # plain text, or .jsonl
 *     encoding: gpt2              # tiktoken encoding
 *     seq_len: 64                 # tokens per window
 *     embedding_dim: 32           # the diffusion space is [seq_len, embedding_dim]
 *     train_fraction: 0.9         # first 90 % of the characters train, the last 10 % validate
 *
 * Paths: absolute as is; relative ones are tried against the working
 * directory first, then against the config file's folder (as the audio plugin).
 */
export const textDataSchema = z.strictObject({
  /** A UTF-8 plain-text file, or a JSON-lines file (one object per line with a string field `text_field`). */
  path: z.string().min(1),
  /** 'auto': JSON lines when the name ends in .jsonl / .ndjson, else plain text. */
  format: z.enum(['auto', 'text', 'jsonl']).default('auto'),
  /** The string field of each JSON-lines record. */
  text_field: z.string().min(1).default('text'),
  /** A tiktoken encoding name (the BPE ranks ship with the tiktoken package: no download). */
  encoding: z.enum(['gpt2', 'r50k_base', 'p50k_base', 'p50k_edit', 'cl100k_base', 'o200k_base']).default('gpt2'),
  /** Tokens per example window. */
  seq_len: z.int().min(2).max(4096).default(64),
  /** Start of each window = the previous start + stride (default seq_len: non-overlapping windows). */
  stride: z.int().min(1).nullable().default(null),
  /** Width of the learned token embeddings: Diffusion-LM uses 16 to 128 (Li et al. 2022, sec. 7.1). */
  embedding_dim: z.int().min(16).max(128).default(32),
  /**
   * The first `train_fraction` of the characters (plain text) or of the records
   * (JSON lines) is the training split, the rest the validation split.
   */
  train_fraction: z.number().gt(0).lt(1).default(0.9),
  /** Training-split tokens seen fewer times than this map to the unknown token (1 keeps every token). */
  min_count: z.int().min(1).default(1),
  /**
   * JSON lines only: a field of each record (string or number) whose values
   * become classes, a conditioning signal for model.class_conditional and
   * classifier-free guidance (`difflab sample --class`). Classes are the
   * training split's values, sorted.
   */
  label_field: z.string().min(1).nullable().default(null),
});

export type TextDataConfig = z.infer<typeof textDataSchema>;

export const textModelSchema = z.strictObject({
  arch: z.literal('transformer').default('transformer'),
  /** Transformer width d_model. */
  width: z.int().min(8).default(128),
  layers: z.int().min(1).default(4),
  heads: z.int().min(1).default(4),
  /** MLP hidden width = mlp_ratio * width. */
  mlp_ratio: z.number().gt(0).default(4),
  /**
   * Noise-level conditioning: 'adaln' (adaptive LayerNorm, scale and shift
   * from the noise embedding in every block; Peebles & Xie 2023, DiT) or 'add'
   * (the embedding added to every position, as Diffusion-LM's BERT).
   */
  conditioning: z.enum(['adaln', 'add']).default('adaln'),
  /** Width of the sinusoidal noise features before the noise MLP. */
  noise_embedding_dim: z.int().min(2).default(64),
  /** c_noise is multiplied by this before the sinusoidal features (1 for timestep indices). */
  noise_input_scale: z.number().gt(0).default(1),
  /** The rounding head's weight: the embedding table itself ('tied', Diffusion-LM's lm_head) or its own matrix. */
  rounding_head: z.enum(['tied', 'separate']).default('tied'),
  /** Std of the embedding table's N(0, std^2) initialization. */
  embedding_init_std: z.number().gt(0).default(1),
  /**
   * Condition on the data's classes (data.label_field): a class embedding is
   * added to the noise embedding, with one extra null class that
   * train.cond_dropout trains for classifier-free guidance (Ho & Salimans 2022).
   */
  class_conditional: z.boolean().default(false),
  /** Weights of the end-to-end objective's extra terms (Diffusion-LM, eq. 2): 0 drops a term. */
  loss: z
    .strictObject({
      /** ||EMB(w) - D(EMB(w) + sigma_min eps; sigma_min)||^2: the t = 1 term. */
      embedding: z.number().min(0).default(1),
      /** -log p(w | x0), x0 ~ N(EMB(w), sigma_min^2): the rounding term. */
      rounding: z.number().min(0).default(1),
      /** ||s(T) EMB(w)||^2: the prior term L_T, which keeps the embeddings' norm from growing. */
      prior: z.number().min(0).default(1),
    })
    .prefault({}),
});

export type TextModelConfig = z.infer<typeof textModelSchema>;
export type TextModelConfigInput = z.input<typeof textModelSchema>;
