import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../../core/backend/select.js';
import { writeFileAtomic } from '../../../core/io/atomic.js';
import { relativeName } from '../../../core/nn/index.js';
import { DataParallelTrainer, LocalTrainer, type Trainer } from '../../../core/parallel/index.js';
import { Rng } from '../../../core/random.js';
import { learningRateAt, type LrSchedule } from '../../../core/training/optim.js';
import type { AudioDataSource } from '../data.js';
import { digitAccuracy } from './accuracy.js';
import { DEFAULT_AUGMENT, openFsdd, windowBatch, type AugmentOptions } from './data.js';
import { DigitClassifierExtractor } from './extractor.js';
import type { DigitClassifierModelOptions } from './factory.js';
import { measureDigitFloors, type DigitFloors } from './floors.js';
import { DEFAULT_DIGIT_CNN, DigitCnn, type DigitCnnConfig } from './network.js';

/**
 * The training command behind `npm run train:digit-classifier`: trains the
 * FSDD spoken-digit classifier that difflab's audio metrics use as their
 * feature network, with difflab's own trainers (data-parallel over the cores
 * on wasm), seeded and deterministic: every shuffle and augmentation draw
 * comes from Rng(seed) / Rng.derive(seed, ...), the dropout masks from
 * (seed, step, row). It then measures the accuracy on the whole official
 * test split and the real-vs-real floors, and writes the weights
 * (safetensors) and a JSON sidecar describing how they were made, each
 * atomically.
 */
export interface TrainDigitClassifierOptions {
  /** The FSDD `recordings` folder. */
  readonly dataDir: string;
  /** Output weights file; the sidecar goes next to it with extension `.json`. */
  readonly out: string;
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate of AdamW (cosine decay to 0 after a linear warm-up). */
  readonly lr: number;
  readonly weightDecay: number;
  readonly warmupSteps: number;
  readonly seed: number;
  /** Worker threads; 1 trains in-process. */
  readonly workers: number;
  readonly augment: AugmentOptions;
  /** Architecture; inputMean / inputStd are measured on the training clips and replace the given ones. */
  readonly config: DigitCnnConfig;
  /** Skip the floors (quick experiments); the committed sidecar has them. */
  readonly skipFloors: boolean;
  readonly log: (line: string) => void;
}

export const DEFAULT_TRAIN_DIGIT_CLASSIFIER: Omit<TrainDigitClassifierOptions, 'dataDir' | 'out' | 'log'> = {
  epochs: 20,
  batchSize: 32,
  lr: 2e-3,
  weightDecay: 1e-4,
  warmupSteps: 100,
  seed: 0,
  workers: Math.min(availableParallelism(), 2),
  augment: DEFAULT_AUGMENT,
  config: DEFAULT_DIGIT_CNN,
  skipFloors: false,
};

/** The JSON sidecar written next to the weights. */
export interface DigitClassifierRecord {
  readonly weights: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly parameters: number;
  readonly config: DigitCnnConfig;
  /** Accuracy on the whole official test split (recordings 0-4: 300 clips), in [0, 1]. */
  readonly testAccuracy: number;
  readonly testExamples: number;
  readonly testLoss: number;
  /** confusion[true digit][predicted digit] on the test split. */
  readonly testConfusion: number[][];
  readonly trainAccuracy: number;
  readonly trainExamples: number;
  readonly seed: number;
  readonly epochs: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly optimizer: { readonly kind: 'adamw'; readonly lr: number; readonly weightDecay: number; readonly schedule: string };
  readonly augment: AugmentOptions;
  readonly trainer: string;
  readonly workers: number;
  readonly backend: string;
  /** Wall time of training and the accuracy evaluation (not the floors), on a shared 2-core machine. */
  readonly seconds: number;
  readonly epochLosses: readonly number[];
  /** Test accuracy after each epoch: monitoring only (the weights are always the last epoch's). */
  readonly epochTestAccuracy: readonly number[];
  readonly data: { readonly train: string; readonly test: string };
  /** Every metric between real test and training data, and for noise-like controls, with these weights. */
  readonly floors?: DigitFloors;
  readonly command: string;
  readonly date: string;
}

/** Mean and std of the log-mel dB values of the centred training windows (the input standardization). */
async function logMelStats(config: DigitCnnConfig, train: AudioDataSource): Promise<{ mean: number; std: number }> {
  const net = new DigitCnn({ ...config, inputMean: 0, inputStd: 1 }, 0, 'digit_cnn_stats');
  try {
    let sum = 0;
    let sumSq = 0;
    let count = 0;
    for (let start = 0; start < train.size; start += 100) {
      const idx = Array.from({ length: Math.min(100, train.size - start) }, (_, i) => start + i);
      const b = windowBatch(train, idx, config.length);
      const s = tf.tidy(() => {
        const db = net.frontEnd.apply(tf.tensor3d(b.x.data as Float32Array, b.x.shape as [number, number, number]));
        return tf.stack([tf.sum(db), tf.sum(tf.square(db))]);
      });
      const [a, q] = (await s.data()) as Float32Array;
      s.dispose();
      sum += a!;
      sumSq += q!;
      count += idx.length * net.frontEnd.frames(config.length) * config.frontEnd.nMels;
    }
    const mean = sum / count;
    return { mean, std: Math.sqrt(Math.max(sumSq / count - mean * mean, 1e-12)) };
  } finally {
    net.dispose();
  }
}

export async function trainDigitClassifier(o: TrainDigitClassifierOptions): Promise<DigitClassifierRecord> {
  const t0 = performance.now();
  const backend = await useBackend('wasm');
  const L = o.config.length;
  const train = await openFsdd(o.dataDir, 'train', L, o.log);
  const test = await openFsdd(o.dataDir, 'test', L, o.log);
  const stats = await logMelStats(o.config, train);
  const config: DigitCnnConfig = { ...o.config, inputMean: stats.mean, inputStd: stats.std };
  o.log(`log-mel input of the training windows: mean ${stats.mean.toFixed(2)} dB, std ${stats.std.toFixed(2)} dB`);
  const stepsPerEpoch = Math.ceil(train.size / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const schedule: LrSchedule = { lr: o.lr, warmupSteps: o.warmupSteps, decay: 'cosine', totalSteps, minLrRatio: 0 };
  const modelOptions: DigitClassifierModelOptions = { seed: o.seed, config };
  const factory = {
    module: fileURLToPath(new URL(`./factory.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url)),
    exportName: 'createDigitClassifierModel',
    options: modelOptions,
  };
  const optimizer = { kind: 'adamw' as const, learningRate: o.lr, weightDecay: o.weightDecay };
  const trainer: Trainer =
    o.workers > 1
      ? await DataParallelTrainer.create({ factory, optimizer, workers: o.workers, backend: 'wasm' })
      : await LocalTrainer.create({ factory, optimizer });
  o.log(`training: ${o.epochs} epochs x ${stepsPerEpoch} steps, batch ${o.batchSize}, ${trainer.worldSize} replica(s) on ${backend.name}`);
  const order = new Rng(o.seed);
  const epochLosses: number[] = [];
  const epochTestAccuracy: number[] = [];
  const net = new DigitCnn(config, o.seed);
  const syncNet = async () => {
    // Keyed by path: worker variables are named `<root>/<path>` with a root that may differ (digit_cnn_1, ...).
    const weights = await trainer.getWeights();
    net.assign(new Map(weights.map((w) => [relativeName(w.name), w] as const)), 'trainer weights');
  };
  try {
    try {
      for (let epoch = 0; epoch < o.epochs; epoch++) {
        const perm = order.shuffle(Array.from({ length: train.size }, (_, i) => i));
        let sum = 0;
        const te = performance.now();
        for (let s = 0; s < stepsPerEpoch; s++) {
          const idx = perm.slice(s * o.batchSize, (s + 1) * o.batchSize);
          const step = trainer.stepCount;
          const b = windowBatch(train, idx, L, Rng.derive(o.seed, 0x617567, step), o.augment);
          const r = await trainer.step({ x: b.x, labels: b.labels }, { learningRate: learningRateAt(schedule, step) });
          if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${r.step}`);
          sum += r.loss * idx.length;
        }
        const seconds = (performance.now() - te) / 1000;
        epochLosses.push(sum / train.size);
        await syncNet();
        const acc = await digitAccuracy(net, test, { length: L });
        epochTestAccuracy.push(acc.accuracy);
        o.log(
          `epoch ${epoch + 1}/${o.epochs}: train loss ${(sum / train.size).toFixed(4)}, test acc ${(100 * acc.accuracy).toFixed(2)} %, ` +
            `${(stepsPerEpoch / seconds).toFixed(2)} it/s (${seconds.toFixed(0)} s)`,
        );
      }
    } finally {
      await trainer.dispose();
    }
    const testEval = await digitAccuracy(net, test, { length: L });
    const trainEval = await digitAccuracy(net, train, { length: L });
    o.log(`test accuracy ${(100 * testEval.accuracy).toFixed(2)} % (${testEval.examples} clips), train ${(100 * trainEval.accuracy).toFixed(2)} % (${trainEval.examples})`);
    const seconds = (performance.now() - t0) / 1000;
    let floors: DigitFloors | undefined;
    if (!o.skipFloors) {
      o.log('measuring the real-vs-real floors (test vs train) ...');
      floors = await measureDigitFloors(new DigitClassifierExtractor(net), o.dataDir, L);
      o.log(
        `floors: FD(test, train) ${floors.fd.testVsTrain.toFixed(3)}, FD(noise, train) ${floors.fd.noiseVsTrain.toFixed(1)}, ` +
          `FD(shuffled, train) ${floors.fd.shuffledVsTrain.toFixed(1)}; IS(test) ${floors.is.test.mean.toFixed(3)}`,
      );
    }
    await net.save(o.out, { format: 'difflab fsdd digit classifier', seed: String(o.seed), test_accuracy: testEval.accuracy.toFixed(4) });
    const bytes = readFileSync(o.out);
    const record: DigitClassifierRecord = {
      weights: basename(o.out),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.byteLength,
      parameters: net.store.parameterCount(),
      config,
      testAccuracy: testEval.accuracy,
      testExamples: testEval.examples,
      testLoss: testEval.loss,
      testConfusion: testEval.confusion,
      trainAccuracy: trainEval.accuracy,
      trainExamples: trainEval.examples,
      seed: o.seed,
      epochs: o.epochs,
      steps: totalSteps,
      batchSize: o.batchSize,
      optimizer: { kind: 'adamw', lr: o.lr, weightDecay: o.weightDecay, schedule: `linear warm-up ${o.warmupSteps} steps, cosine decay to 0` },
      augment: o.augment,
      trainer: trainer.worldSize > 1 ? 'DataParallelTrainer' : 'LocalTrainer',
      workers: trainer.worldSize,
      backend: backend.name,
      seconds: Math.round(seconds),
      epochLosses,
      epochTestAccuracy,
      data: {
        train: `FSDD recordings/{digit}_{speaker}_{index}.wav, index 5-49: ${train.size} clips at ${train.sampleRate} Hz, peak-normalized, windows of ${L}`,
        test: `FSDD recordings/{digit}_{speaker}_{index}.wav, index 0-4: ${test.size} clips at ${test.sampleRate} Hz, peak-normalized, windows of ${L}`,
      },
      ...(floors ? { floors } : {}),
      command:
        `npm run train:digit-classifier -- --epochs ${o.epochs} --batch-size ${o.batchSize} --lr ${o.lr} --weight-decay ${o.weightDecay} ` +
        `--warmup ${o.warmupSteps} --seed ${o.seed} --workers ${o.workers}` +
        (L !== DEFAULT_DIGIT_CNN.length ? ` --length ${L}` : '') +
        (o.skipFloors ? ' --no-floors' : ''),
      date: new Date().toISOString(),
    };
    writeFileAtomic(digitSidecarPath(o.out), `${JSON.stringify(record, null, 2)}\n`);
    return record;
  } finally {
    net.dispose();
  }
}

/** `x.safetensors` -> `x.json`. */
export function digitSidecarPath(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '.json';
}

/** Parses `--name value` arguments of the training command (unknown flags are errors). */
export function parseTrainDigitClassifierArgs(argv: readonly string[], defaults: { dataDir: string; out: string }): Omit<TrainDigitClassifierOptions, 'log'> {
  type Mutable = { -readonly [K in keyof Omit<TrainDigitClassifierOptions, 'log'>]: Omit<TrainDigitClassifierOptions, 'log'>[K] };
  const o = { ...DEFAULT_TRAIN_DIGIT_CLASSIFIER, ...defaults } as Mutable;
  const num = (flag: string, v: string | undefined, int: boolean): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0) {
      throw new Error(`${flag} needs a non-negative ${int ? 'integer' : 'number'}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case '--data':
        if (!v) throw new Error('--data needs the FSDD recordings folder');
        o.dataDir = v;
        i++;
        break;
      case '--out':
        if (!v || !v.endsWith('.safetensors')) throw new Error('--out needs a path ending in .safetensors');
        o.out = v;
        i++;
        break;
      case '--epochs':
        o.epochs = num(a, v, true);
        i++;
        break;
      case '--batch-size':
        o.batchSize = num(a, v, true);
        i++;
        break;
      case '--lr':
        o.lr = num(a, v, false);
        i++;
        break;
      case '--weight-decay':
        o.weightDecay = num(a, v, false);
        i++;
        break;
      case '--warmup':
        o.warmupSteps = num(a, v, true);
        i++;
        break;
      case '--seed':
        o.seed = num(a, v, true);
        i++;
        break;
      case '--workers':
        o.workers = Math.max(1, num(a, v, true));
        i++;
        break;
      case '--length':
        o.config = { ...o.config, length: num(a, v, true) };
        i++;
        break;
      case '--no-floors':
        o.skipFloors = true;
        break;
      default:
        throw new Error(
          `unknown argument '${a}' (known: --data --out --epochs --batch-size --lr --weight-decay --warmup --seed --workers --length --no-floors)`,
        );
    }
  }
  if (o.epochs < 1 || o.batchSize < 1) throw new Error('--epochs and --batch-size must be at least 1');
  return o;
}
