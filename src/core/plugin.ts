import type * as tf from '@tensorflow/tfjs';
import type { z } from 'zod';
import type { FeatureExtractor } from './metrics/types.js';
import type { Rng } from './random.js';
import type { Conditioning } from './types.js';

/**
 * What a modality plugin provides. `src/core` talks to images, waveforms and
 * token embeddings only through this interface; plugins live in
 * `src/plugins/<id>` or in a separate package, and are registered at the
 * composition root (`createDifflab`) — core code never imports a plugin.
 */

/** One batch in diffusion space. */
export interface ExampleBatch {
  /** Examples, shape [B, ...exampleShape], already normalized for diffusion. */
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
  /** Materializes the examples at these indices (augmentation may use rng). */
  batch(indices: readonly number[], rng: Rng): ExampleBatch;
}

export interface NetworkContext {
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  readonly rng: Rng;
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
}

/** Extra loss terms a modality adds on top of denoising score matching. */
export interface LossAdapter {
  /**
   * A scalar to add to the DSM loss (inside the gradient tape): a batch mean,
   * like the DSM term, so that data-parallel shards average correctly.
   */
  extraLoss(batch: ExampleBatch, net: DenoiserNetwork): tf.Scalar;
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
