import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';
import type { Linear } from '../nn/layers.js';
import { relativeName } from '../nn/module.js';
import { Network } from '../nn/network.js';
import { DataParallelTrainer } from '../parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../parallel/local-trainer.js';
import type { Batch, FactorySpec, HostBatch, NamedHostTensor, StepContext, TrainableModel, Trainer } from '../parallel/types.js';
import { Rng } from '../random.js';
import { learningRateAt, type LrSchedule } from './optim.js';

/**
 * What every difflab-trained classifier shares, whatever its input: the
 * feature networks of the metrics (the image plugin's Fashion-MNIST CNN, the
 * audio plugin's FSDD digit CNN) are a modality-specific body ending in an
 * f-d *feature* layer, then dropout (training only) and a linear head to the
 * class logits. This module holds the rest:
 *
 * - `ClassifierNetwork`: the head, seeded dropout masks, save / assign / load
 *   by variable path (safetensors, the config in the metadata);
 * - `classifierTrainableModel`: the trainers' model (mean softmax
 *   cross-entropy), for a plugin's model factory module;
 * - `trainClassifierEpochs`: the seeded epoch loop over difflab's trainers
 *   (AdamW, linear warm-up then cosine decay to 0);
 * - the JSON sidecar's common fields and the training command's flags.
 */

/** The part of a classifier's config this module reads. */
export interface ClassifierConfig {
  /** Width of the feature layer. */
  readonly features: number;
  readonly classes: number;
  /** Dropout before the last layer, in training. */
  readonly dropout: number;
}

/** Weights by variable path, as `assign` takes them. */
export type WeightsByPath = ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>;

export abstract class ClassifierNetwork<C extends ClassifierConfig = ClassifierConfig> extends Network {
  /** features -> class logits; the subclass builds it last. */
  abstract readonly head: Linear;

  constructor(
    name: string,
    readonly config: C,
    /** The class name, for error messages. */
    private readonly kind: string,
  ) {
    super(name);
  }

  get featureDim(): number {
    return this.config.features;
  }

  get numClasses(): number {
    return this.config.classes;
  }

  /** Penultimate-layer features [B, f] (after ReLU). Call inside tf.tidy. */
  abstract features(x: tf.Tensor): tf.Tensor2D;

  /**
   * Class logits [B, classes]. `dropoutMask` ([B, f], entries 0 or
   * 1/(1-rate): inverted dropout, see `dropoutMask`) is given in training
   * only. Call inside tf.tidy.
   */
  logits(x: tf.Tensor, dropoutMask?: tf.Tensor): tf.Tensor2D {
    return this.logitsFromFeatures(this.features(x), dropoutMask);
  }

  logitsFromFeatures(f: tf.Tensor2D, dropoutMask?: tf.Tensor): tf.Tensor2D {
    return this.head.apply(dropoutMask ? tf.mul(f, dropoutMask) : f) as tf.Tensor2D;
  }

  /**
   * An inverted-dropout mask (Srivastava et al. 2014,
   * https://jmlr.org/papers/v15/srivastava14a.html) for `rows` rows whose
   * global indices start at `rowOffset`: row i draws from its own stream
   * Rng.derive(seed, step, rowOffset + i), so the mask of a row does not
   * depend on how a data-parallel trainer split the batch.
   */
  dropoutMask(rows: number, seed: number, step: number, rowOffset: number): tf.Tensor2D | undefined {
    const rate = this.config.dropout;
    if (!(rate > 0)) return undefined;
    const f = this.config.features;
    const keep = 1 - rate;
    const mask = new Float32Array(rows * f);
    for (let i = 0; i < rows; i++) {
      const rng = Rng.derive(seed, step, rowOffset + i);
      for (let j = 0; j < f; j++) mask[i * f + j] = rng.uniform() < keep ? 1 / keep : 0;
    }
    return tf.tensor2d(mask, [rows, f]);
  }

  /** Writes the weights (keys: variable paths, e.g. `conv1.weight`) and the config (metadata) to a safetensors file, atomically. */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const tensors: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const { path: key, variable } of this.store.named()) {
      tensors[key] = { shape: variable.shape, data: (await variable.data()) as Float32Array };
    }
    writeSafetensors(path, tensors, { ...metadata, config: JSON.stringify(this.config) });
  }

  /** Copies weights in (by variable path); every variable must be present with its shape. */
  assign(weights: WeightsByPath, source = 'weights'): void {
    for (const { path, variable } of this.store.named()) {
      const w = weights.get(path);
      if (!w) throw new Error(`${source}: no tensor '${path}' (${this.kind} needs ${this.store.named().map((n) => n.path).join(', ')})`);
      if (w.shape.length !== variable.rank || w.shape.some((d, i) => d !== variable.shape[i])) {
        throw new Error(`${source}: tensor '${path}' has shape [${w.shape}], expected [${variable.shape}]`);
      }
      const t = tf.tensor(w.data as Float32Array, variable.shape, 'float32');
      variable.assign(t);
      t.dispose();
    }
  }
}

/**
 * Builds a classifier from a safetensors file written by `save`: the config
 * from the metadata (`defaultConfig` when there is none; without a default
 * that is an error naming `kind`), the network from `build`, then its
 * weights (the network is disposed if they do not fit).
 */
export function loadClassifier<C extends ClassifierConfig, N extends ClassifierNetwork<C>>(
  path: string,
  build: (config: C) => N,
  options: { readonly kind: string; readonly defaultConfig?: C },
): { net: N; metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensors(path);
  let config: C;
  if (metadata['config']) {
    try {
      config = JSON.parse(metadata['config']) as C;
    } catch {
      throw new Error(`${path}: metadata 'config' is not valid JSON`);
    }
  } else if (options.defaultConfig) {
    config = options.defaultConfig;
  } else {
    throw new Error(`${path}: no 'config' in the safetensors metadata (not a ${options.kind} file)`);
  }
  const net = build(config);
  try {
    net.assign(tensors, path);
  } catch (err) {
    net.dispose();
    throw err;
  }
  return { net, metadata };
}

/** JSON options of a classifier's model factory. */
export interface ClassifierModelOptions<C> {
  /** Seed of the initial weights and of the dropout masks. */
  readonly seed: number;
  readonly config?: C;
}

/**
 * The trainers' model of a classifier (for a plugin's model factory module):
 * batch entries `x` (the network's input) and `labels` int32 [B]
 * (`batchError` when either is missing); loss: the mean softmax
 * cross-entropy, log-sum-exp(z) - z_label per row, with the dropout masks of
 * (seed, step, row). Disposing the model disposes `net`.
 */
export function classifierTrainableModel(net: ClassifierNetwork, seed: number, batchError: string): TrainableModel {
  return {
    variables: net.variables,
    loss(batch: Batch, ctx: StepContext): tf.Scalar {
      const x = batch['x'];
      const labels = batch['labels'];
      if (!x || !labels) throw new Error(batchError);
      const mask = net.dropoutMask(x.shape[0] as number, seed, ctx.step, ctx.rowOffset);
      const logits = net.logits(x, mask);
      const onehot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, net.numClasses);
      const picked = tf.sum(tf.mul(logits, onehot), 1);
      return tf.mean(tf.sub(tf.logSumExp(logits, 1), picked)) as tf.Scalar;
    },
    dispose(): void {
      net.dispose();
    },
  };
}

/**
 * The factory spec of a model factory module next to the caller:
 * `<dir of moduleUrl>/<file>.ts` when the caller runs from TypeScript
 * sources, `.js` when built.
 */
export function siblingFactory(moduleUrl: string, file: string, exportName: string, options: unknown): FactorySpec {
  return {
    module: fileURLToPath(new URL(`./${file}.${moduleUrl.endsWith('.ts') ? 'ts' : 'js'}`, moduleUrl)),
    exportName,
    options,
  };
}

/** The hyper-parameters of a classifier's training command. */
export interface ClassifierTrainingOptions {
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate of AdamW (cosine decay to 0 after a linear warm-up). */
  readonly lr: number;
  readonly weightDecay: number;
  readonly warmupSteps: number;
  readonly seed: number;
  /** Worker threads; 1 trains in-process. */
  readonly workers: number;
  readonly log: (line: string) => void;
}

export interface ClassifierEpochLoop {
  /** The backend's name, for the log. */
  readonly backend: string;
  readonly factory: FactorySpec;
  /** Training examples: an epoch visits each once. */
  readonly examples: number;
  /** The stream each epoch's permutation of the examples is drawn from. */
  readonly order: Rng;
  /** The batch of these examples for step `step` (0-based); `release` frees it after the step. */
  batch(indices: number[], step: number): { readonly batch: HostBatch; readonly release?: () => void };
  /** Log the running loss every this many steps of an epoch (none by default). */
  readonly logEvery?: number;
  /**
   * After each epoch (`seconds`: its training time): text appended to the
   * epoch's log line. `weights()` reads the trainer's current weights, keyed
   * by variable path.
   */
  afterEpoch?(epoch: number, info: { readonly seconds: number; readonly stepsPerEpoch: number; readonly weights: () => Promise<Map<string, NamedHostTensor>> }): Promise<string>;
}

export interface ClassifierEpochResult {
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** Mean training loss of each epoch. */
  readonly epochLosses: number[];
  readonly trainer: 'DataParallelTrainer' | 'LocalTrainer';
  readonly workers: number;
  /** The final weights, keyed by variable path. */
  readonly weights: Map<string, NamedHostTensor>;
}

/** A trainer's weights keyed by variable path (worker variables are named `<root>/<path>` with a root that may differ). */
async function weightsByPath(trainer: Trainer): Promise<Map<string, NamedHostTensor>> {
  const weights = await trainer.getWeights();
  return new Map(weights.map((w) => [relativeName(w.name), w] as const));
}

/**
 * Trains a classifier for `o.epochs` epochs of ceil(examples / batchSize)
 * steps with difflab's trainers (`o.workers` > 1: data-parallel on wasm,
 * else in-process), AdamW at `learningRateAt` (linear warm-up, cosine decay
 * to 0), stopping on a non-finite loss. Each epoch draws a permutation of
 * the examples from `loop.order`; everything else random is the caller's
 * (the batch and the dropout masks), so a seed fixes the run.
 */
export async function trainClassifierEpochs(o: ClassifierTrainingOptions, loop: ClassifierEpochLoop): Promise<ClassifierEpochResult> {
  const stepsPerEpoch = Math.ceil(loop.examples / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const schedule: LrSchedule = { lr: o.lr, warmupSteps: o.warmupSteps, decay: 'cosine', totalSteps, minLrRatio: 0 };
  const factory = loop.factory;
  const optimizer = { kind: 'adamw' as const, learningRate: o.lr, weightDecay: o.weightDecay };
  const trainer: Trainer =
    o.workers > 1
      ? await DataParallelTrainer.create({ factory, optimizer, workers: o.workers, backend: 'wasm' })
      : await LocalTrainer.create({ factory, optimizer });
  o.log(`training: ${o.epochs} epochs x ${stepsPerEpoch} steps, batch ${o.batchSize}, ${trainer.worldSize} replica(s) on ${loop.backend}`);
  const epochLosses: number[] = [];
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const perm = loop.order.shuffle(Array.from({ length: loop.examples }, (_, i) => i));
      let sum = 0;
      const te = performance.now();
      for (let s = 0; s < stepsPerEpoch; s++) {
        const idx = perm.slice(s * o.batchSize, (s + 1) * o.batchSize);
        const step = trainer.stepCount;
        const b = loop.batch(idx, step);
        try {
          const r = await trainer.step(b.batch, { learningRate: learningRateAt(schedule, step) });
          if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${r.step}`);
          sum += r.loss * idx.length;
        } finally {
          b.release?.();
        }
        if (loop.logEvery && (s + 1) % loop.logEvery === 0) {
          o.log(`  epoch ${epoch + 1} step ${s + 1}/${stepsPerEpoch} loss ${(sum / ((s + 1) * o.batchSize)).toFixed(4)}`);
        }
      }
      const seconds = (performance.now() - te) / 1000;
      epochLosses.push(sum / loop.examples);
      const extra = loop.afterEpoch ? await loop.afterEpoch(epoch, { seconds, stepsPerEpoch, weights: () => weightsByPath(trainer) }) : '';
      o.log(`epoch ${epoch + 1}/${o.epochs}: train loss ${(sum / loop.examples).toFixed(4)}${extra} (${seconds.toFixed(0)} s)`);
    }
    return {
      stepsPerEpoch,
      totalSteps,
      epochLosses,
      trainer: trainer.worldSize > 1 ? 'DataParallelTrainer' : 'LocalTrainer',
      workers: trainer.worldSize,
      weights: await weightsByPath(trainer),
    };
  } finally {
    await trainer.dispose();
  }
}

/** `x.safetensors` -> `x.json`: the sidecar next to a classifier's weights. */
export function classifierSidecarPath(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '.json';
}

/** Writes `record`, stamped with the date (its last field), as the JSON sidecar of the weights at `weights`, atomically; returns it. */
export function writeClassifierSidecar<R extends { readonly date: string }>(weights: string, record: Omit<R, 'date'>): R {
  const stamped = { ...record, date: new Date().toISOString() } as unknown as R;
  writeFileAtomic(classifierSidecarPath(weights), `${JSON.stringify(stamped, null, 2)}\n`);
  return stamped;
}

/** A mean and a standard deviation (over subsets or splits). */
export interface MeanStd {
  readonly mean: number;
  readonly std: number;
}

/** KID of the real test split and of a noise control against the training split, over subsets. */
export interface KidFloors {
  readonly testVsTrain: MeanStd;
  readonly noiseVsTrain: MeanStd;
  readonly subsets: number;
  readonly subsetSize: number;
}

/** The fields every classifier's JSON sidecar has (a plugin's record adds its own). */
export interface ClassifierSidecar<C> {
  readonly weights: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly parameters: number;
  readonly config: C;
  /** Accuracy on the test split, in [0, 1]. */
  readonly testAccuracy: number;
  readonly testExamples: number;
  readonly testLoss: number;
  readonly trainAccuracy: number;
  readonly trainExamples: number;
  readonly seed: number;
  readonly epochs: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly optimizer: { readonly kind: 'adamw'; readonly lr: number; readonly weightDecay: number; readonly schedule: string };
  readonly trainer: string;
  readonly workers: number;
  readonly backend: string;
  /** Wall time of training and the accuracy evaluation (not the floors), on a shared 2-core machine. */
  readonly seconds: number;
  readonly epochLosses: readonly number[];
  readonly data: { readonly train: string; readonly test: string };
  readonly command: string;
  readonly date: string;
}

/** The sidecar's description of the weights file just written at `path`. */
export function weightsFileRecord(path: string): { readonly weights: string; readonly sha256: string; readonly bytes: number } {
  const bytes = readFileSync(path);
  return { weights: basename(path), sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength };
}

/** The sidecar's fields on the run's length and optimizer, in sidecar order: seed, epochs, steps, batchSize, optimizer. */
export function runRecord(
  o: ClassifierTrainingOptions,
  run: ClassifierEpochResult,
): Pick<ClassifierSidecar<unknown>, 'seed' | 'epochs' | 'steps' | 'batchSize' | 'optimizer'> {
  return { seed: o.seed, epochs: o.epochs, steps: run.totalSteps, batchSize: o.batchSize, optimizer: optimizerRecord(o) };
}

/** The sidecar's fields on where and how fast it trained, in sidecar order: trainer, workers, backend, seconds (rounded), epochLosses. */
export function trainerRecord(
  run: ClassifierEpochResult,
  backend: string,
  seconds: number,
): Pick<ClassifierSidecar<unknown>, 'trainer' | 'workers' | 'backend' | 'seconds' | 'epochLosses'> {
  return { trainer: run.trainer, workers: run.workers, backend, seconds: Math.round(seconds), epochLosses: run.epochLosses };
}

/** The sidecar's `optimizer` entry. */
export function optimizerRecord(o: Pick<ClassifierTrainingOptions, 'lr' | 'weightDecay' | 'warmupSteps'>): ClassifierSidecar<unknown>['optimizer'] {
  return { kind: 'adamw', lr: o.lr, weightDecay: o.weightDecay, schedule: `linear warm-up ${o.warmupSteps} steps, cosine decay to 0` };
}

/** The arguments every classifier training command takes. */
export interface ClassifierTrainingArgs extends Omit<ClassifierTrainingOptions, 'log'> {
  readonly dataDir: string;
  /** Output weights file; the sidecar goes next to it with extension `.json`. */
  readonly out: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** One command-line flag: with a value (the next argument, possibly missing) or without. */
export type ClassifierFlag<O> =
  | { readonly value: true; set(o: Mutable<O>, v: string | undefined, flag: string): void }
  | { readonly value: false; set(o: Mutable<O>): void };

/** `v` as a non-negative number (an integer when `int`), or an error naming `flag`. */
export function nonNegativeArg(flag: string, v: string | undefined, int: boolean): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0) {
    throw new Error(`${flag} needs a non-negative ${int ? 'integer' : 'number'}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
  }
  return n;
}

/**
 * The flags of `ClassifierTrainingArgs`, in the order a command lists them:
 * --data --out --epochs --batch-size --lr --weight-decay [--warmup] --seed
 * --workers. `dataError`: the message of a missing `--data` folder;
 * `warmup`: whether the command takes --warmup (warmupSteps).
 */
export function classifierTrainingFlags(dataError: string, options: { readonly warmup?: boolean } = {}): [string, ClassifierFlag<ClassifierTrainingArgs>][] {
  const number = (key: 'epochs' | 'batchSize' | 'lr' | 'weightDecay' | 'warmupSteps' | 'seed', int: boolean): ClassifierFlag<ClassifierTrainingArgs> => ({
    value: true,
    set: (o, v, flag) => {
      o[key] = nonNegativeArg(flag, v, int);
    },
  });
  return [
    [
      '--data',
      {
        value: true,
        set: (o, v) => {
          if (!v) throw new Error(dataError);
          o.dataDir = v;
        },
      },
    ],
    [
      '--out',
      {
        value: true,
        set: (o, v) => {
          if (!v || !v.endsWith('.safetensors')) throw new Error('--out needs a path ending in .safetensors');
          o.out = v;
        },
      },
    ],
    ['--epochs', number('epochs', true)],
    ['--batch-size', number('batchSize', true)],
    ['--lr', number('lr', false)],
    ['--weight-decay', number('weightDecay', false)],
    ...(options.warmup ? [['--warmup', number('warmupSteps', true)] as [string, ClassifierFlag<ClassifierTrainingArgs>]] : []),
    ['--seed', number('seed', true)],
    [
      '--workers',
      {
        value: true,
        set: (o, v, flag) => {
          o.workers = Math.max(1, nonNegativeArg(flag, v, true));
        },
      },
    ],
  ];
}

/**
 * Parses `--name value` arguments over `start` (the defaults); `flags`, in
 * the order the error for an unknown argument lists them. Epochs and batch
 * size must end up at least 1.
 */
export function parseClassifierTrainingArgs<O extends ClassifierTrainingArgs>(
  argv: readonly string[],
  start: O,
  flags: readonly (readonly [string, ClassifierFlag<O>])[],
): O {
  const o = { ...start } as Mutable<O>;
  const known = new Map(flags);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const flag = known.get(a);
    if (!flag) throw new Error(`unknown argument '${a}' (known: ${flags.map(([name]) => name).join(' ')})`);
    if (flag.value) {
      flag.set(o, argv[i + 1], a);
      i++;
    } else {
      flag.set(o);
    }
  }
  if (o.epochs < 1 || o.batchSize < 1) throw new Error('--epochs and --batch-size must be at least 1');
  return o;
}
