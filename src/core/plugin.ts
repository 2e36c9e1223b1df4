import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { KnownValues } from './constraints.js';
import type { FeatureExtractor } from './metrics/types.js';
import type { Rng } from './random.js';
import type { Conditioning, Denoiser } from './types.js';

/**
 * What a modality plugin provides. `src/core` talks to images, waveforms and
 * token embeddings only through this interface; plugins live in
 * `src/plugins/<id>` or in a separate package, and are registered at the
 * composition root (`createDifflab`) — core code never imports a plugin.
 */

/** One batch in diffusion space (or in data space, for sources whose network learns the encoding). */
export interface ExampleBatch {
  /**
   * Examples, shape [B, ...exampleShape], already normalized for diffusion;
   * or, when the source has a `dataShape`, the examples in data space
   * [B, ...dataShape] (e.g. int32 token ids) that the network's
   * `LearnedEncoding` maps into diffusion space.
   */
  readonly x: tf.Tensor;
  /** Integer class ids [B], when the data source has labels. */
  readonly labels?: tf.Tensor1D;
}

export type Split = 'train' | 'test';

export interface DataContext {
  readonly split: Split;
  /** Folder of the config file: relative data paths resolve against it. */
  readonly baseDir: string;
  readonly rng: Rng;
  readonly log: (message: string) => void;
}

/** A finite, indexable set of examples of one shape. */
export interface DataSource {
  /** The shape of one example in diffusion space, e.g. [28, 28, 1] or [8000, 1]. */
  readonly exampleShape: readonly number[];
  readonly size: number;
  /** Number of classes when labelled, else undefined. */
  readonly numClasses?: number;
  /**
   * Spacing of the grid the values lie on in diffusion space, when the data
   * are quantized (8-bit pixels scaled to [-1, 1]: 2/255). Likelihoods then
   * dequantize with uniform noise and report discrete bits per dimension.
   */
  readonly quantizationStep?: number;
  /**
   * Set when the source yields examples in data space (e.g. token ids [L])
   * rather than in diffusion space: the network's `encoding` (a
   * `LearnedEncoding`, trained jointly with the denoiser, as Diffusion-LM's
   * embeddings) maps them to `exampleShape`.
   */
  readonly dataShape?: readonly number[];
  /**
   * JSON facts about the data that the network, writers and metrics need and
   * that are kept with every checkpoint (e.g. a vocabulary).
   */
  readonly dataInfo?: unknown;
  /** Materializes the examples at these indices (augmentation may use rng). */
  batch(indices: readonly number[], rng: Rng): ExampleBatch;
}

export interface NetworkContext {
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  /** The data source's `dataShape` and `dataInfo` (sources whose examples the network encodes). */
  readonly dataShape?: readonly number[];
  readonly dataInfo?: unknown;
  readonly rng: Rng;
}

/**
 * A trainable map between data space and diffusion space, owned by the
 * network and trained jointly with the denoiser: Diffusion-LM's embedding
 * EMB(w) and rounding p(w | x0) (Li et al. 2022,
 * https://arxiv.org/abs/2205.14217, sec. 4.1). Any modality with discrete
 * data can provide one; its variables are among the network's `variables`.
 */
export interface LearnedEncoding {
  /** Data [B, ...dataShape] -> clean examples x0 [B, ...exampleShape] (differentiable; the mean of q(x0 | data)). */
  encode(data: tf.Tensor): tf.Tensor;
  /** log p(data | x0) per row [B], in nats (the decoder, e.g. a softmax rounding head). */
  decodeLogLikelihood(x0: tf.Tensor, data: tf.Tensor): tf.Tensor1D;
  /** The most likely data for x0 [B, ...exampleShape] -> [B, ...dataShape] (rounding). */
  decode(x0: tf.Tensor): tf.Tensor;
  /** Snaps x0 onto the encodings of the data (Diffusion-LM's clamping trick), same shape. */
  project?(x0: tf.Tensor): tf.Tensor;
}

/**
 * A raw network F(c_in * x, c_noise, cond) with its trainable variables.
 * Parametrizations (eps, x0, v, EDM) wrap it into a `Denoiser`.
 */
export interface DenoiserNetwork {
  /** Trainable variables, in a stable order with unique names. */
  readonly variables: readonly tf.Variable[];
  /** Raw network output for input x [B, ...] and noise conditioning c_noise [B]. */
  apply(x: tf.Tensor, cNoise: tf.Tensor1D, cond?: Conditioning): tf.Tensor;
  /** Frees the variables. */
  dispose(): void;
  /** Switches train-only behaviour such as dropout (networks start in training mode). */
  setTraining?(training: boolean): void;
  /** The learned data <-> diffusion map, for data sources with a `dataShape`. */
  readonly encoding?: LearnedEncoding;
}

/** What a loss adapter sees of the training step besides the batch (all inside the gradient tape). */
export interface LossContext {
  /** Clean examples in diffusion space [B, ...] (the network's encoding of the data when it has one, so differentiable). */
  readonly x0: tf.Tensor;
  /** The step's standard normal noise (x0's shape) and noise levels [B], as the DSM term used them. */
  readonly eps: tf.Tensor;
  readonly sigma: tf.Tensor1D;
  /** The network wrapped by the run's parametrization: D(x; sigma, cond). */
  readonly denoiser: Denoiser;
  /** The smallest and largest noise levels of the run's schedule. */
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** The run's `model` section as validated by the plugin's schema. */
  readonly model: unknown;
}

/** Extra loss terms a modality adds on top of denoising score matching. */
export interface LossAdapter {
  /**
   * A scalar to add to the DSM loss (inside the gradient tape): a batch mean,
   * like the DSM term, so that data-parallel shards average correctly.
   * `batch.x` is what the data source gave (data space for encoded sources).
   */
  extraLoss(batch: ExampleBatch, net: DenoiserNetwork, ctx: LossContext): tf.Scalar;
}

/**
 * Where a plugin can be imported from. Data-parallel training rebuilds the
 * network inside worker threads, which cannot receive objects with methods,
 * so they import the plugin by module specifier and export name.
 */
export interface PluginSource {
  /** A file: URL, an absolute path or a package specifier (e.g. `import.meta.url` of the plugin's module). */
  readonly module: string;
  readonly exportName: string;
}

/** The shape of one example and the class count, as a run's data source reported them (run.json, checkpoints). */
export interface ExampleInfo {
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  /** The source's `dataShape` / `dataInfo`, when it has them. */
  readonly dataShape?: readonly number[];
  readonly dataInfo?: unknown;
}

/**
 * What writers are told about the run whose examples they write: its
 * validated `data` section (the audio plugin writes WAVs at
 * `data.sample_rate`, for instance) and the example shape / class count.
 * Every caller in difflab passes it; a plugin is free to ignore it (a writer
 * declared as `writeSamples(x, path)` still satisfies the interface).
 */
export interface WriteContext<DataConfig = unknown> {
  readonly data: DataConfig;
  readonly info: ExampleInfo;
}

/**
 * What a feature extractor is told about the data it will score: the example
 * info and the run's validated `data` section (the audio plugin's classifier
 * resamples from `data.sample_rate` to its own rate, for instance).
 */
export interface FeatureContext<DataConfig = unknown> extends ExampleInfo {
  readonly data: DataConfig;
}

/** A user's partial example to complete (CLI `--prefix` / `--suffix`), in the plugin's own terms (e.g. text). */
export interface Prompt {
  readonly prefix?: string;
  readonly suffix?: string;
}

export interface PromptContext<DataConfig = unknown> {
  readonly data: DataConfig;
  readonly info: ExampleInfo;
  /** The trained network (its learned encoding maps known data to diffusion space). */
  readonly net: DenoiserNetwork;
}

/** What a plugin's own sample metrics are given besides the samples. */
export interface ScoreContext<DataConfig = unknown> {
  readonly data: DataConfig;
  readonly info: ExampleInfo;
  readonly net: DenoiserNetwork;
  /** Opens the run's data (train split: the reference; test split: held out). */
  openData(split: Split): Promise<DataSource>;
  readonly seed: number;
  /** The smallest noise level of the run's schedule. */
  readonly sigmaMin: number;
  readonly log: (message: string) => void;
}

/** Metrics a plugin computes itself, each beside its floor: lines to print and a JSON-able record. */
export interface SampleScores {
  readonly lines: readonly string[];
  readonly values: Readonly<Record<string, unknown>>;
}

export interface ModalityPlugin<DataConfig = unknown, ModelConfig = unknown> {
  /** Stable id used by configs (`modality: image`). */
  readonly id: string;
  readonly description: string;
  /** Lets worker threads import this plugin; without it, training runs in one thread. */
  readonly source?: PluginSource;
  /** zod schemas of the config's `data` and `model` sections (strict: unknown keys are errors). */
  readonly dataSchema: z.ZodType<DataConfig>;
  readonly modelSchema: z.ZodType<ModelConfig>;
  openData(config: DataConfig, ctx: DataContext): Promise<DataSource>;
  createNetwork(config: ModelConfig, ctx: NetworkContext): DenoiserNetwork;
  readonly lossAdapter?: LossAdapter;
  /**
   * Writes generated examples (diffusion space) to a file the plugin chooses
   * the format of; returns the files written. `ctx` describes the run they
   * come from.
   */
  writeSamples?(x: tf.Tensor, path: string, ctx: WriteContext<DataConfig>): Promise<string[]>;
  /**
   * Writes the denoising trajectory of one sample: the noisy state and the
   * denoised estimate at several noise levels (each [...exampleShape]).
   */
  writeTrajectory?(frames: readonly { sigma: number; x: tf.Tensor; denoised: tf.Tensor }[], path: string, ctx: WriteContext<DataConfig>): Promise<string[]>;
  /**
   * The network whose features and class probabilities score samples
   * (FD, KID, IS) for data of this shape; `model` names a user-supplied one
   * (e.g. an Inception-v3 in tfjs format) instead of the built-in default.
   */
  featureExtractor?(info: FeatureContext<DataConfig>, model?: string): Promise<FeatureExtractor>;
  /**
   * Scores generated samples (diffusion space, [n, ...exampleShape]) with
   * metrics of the plugin's own, beside their floors, where feature-network
   * metrics (FD, KID, IS) do not apply: e.g. text's n-gram perplexity and
   * distinct-n. `difflab eval` uses it when present.
   */
  scoreSamples?(samples: tf.Tensor, ctx: ScoreContext<DataConfig>): Promise<SampleScores>;
  /**
   * Known values for conditional generation from a prompt (`difflab sample
   * --prefix/--suffix`), in diffusion space, with batch 1: the core imposes
   * them with `replaceKnown` (core/constraints.ts).
   */
  knownFromPrompt?(prompt: Prompt, ctx: PromptContext<DataConfig>): KnownValues;
}

/** Any plugin, whatever its config types (for collections). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModalityPlugin = ModalityPlugin<any, any>;

/** The injection token plugins are bound under (inversify multi-binding). */
export const MODALITY_PLUGIN = Symbol.for('difflab.ModalityPlugin');
/** The token of the PluginRegistry service. */
export const PLUGIN_REGISTRY = Symbol.for('difflab.PluginRegistry');

/** Looks plugins up by id. Built by the container from every bound plugin. */
export class PluginRegistry {
  private readonly byId = new Map<string, AnyModalityPlugin>();

  constructor(plugins: readonly AnyModalityPlugin[]) {
    for (const p of plugins) {
      if (!/^[a-z][a-z0-9-]*$/.test(p.id)) {
        throw new Error(`plugin id '${p.id}' must be lower-case letters, digits and '-'`);
      }
      if (this.byId.has(p.id)) throw new Error(`two plugins are registered with the id '${p.id}'`);
      this.byId.set(p.id, p);
    }
  }

  ids(): string[] {
    return [...this.byId.keys()].sort();
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): AnyModalityPlugin {
    const p = this.byId.get(id);
    if (!p) {
      const known = this.ids();
      throw new Error(`unknown modality '${id}'; registered: ${known.length ? known.join(', ') : '(none)'}`);
    }
    return p;
  }
}
