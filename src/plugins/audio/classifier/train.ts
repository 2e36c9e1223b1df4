import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { useBackend } from '../../../core/backend/select.js';
import { Rng } from '../../../core/random.js';
import {
  classifierSidecarPath,
  classifierTrainingFlags,
  nonNegativeArg,
  parseClassifierTrainingArgs,
  runRecord,
  siblingFactory,
  trainClassifierEpochs,
  trainerRecord,
  weightsFileRecord,
  writeClassifierSidecar,
  type ClassifierSidecar,
  type ClassifierTrainingArgs,
  type ClassifierTrainingOptions,
} from '../../../core/training/classifier.js';
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
 * atomically. The loop, the sidecar's common fields and the flags are
 * core's (`core/training/classifier.ts`), shared with the image classifier.
 * `dataDir`: the FSDD `recordings` folder.
 */
export interface TrainDigitClassifierOptions extends ClassifierTrainingArgs, ClassifierTrainingOptions {
  readonly augment: AugmentOptions;
  /** Architecture; inputMean / inputStd are measured on the training clips and replace the given ones. */
  readonly config: DigitCnnConfig;
  /** Skip the floors (quick experiments); the committed sidecar has them. */
  readonly skipFloors: boolean;
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

/** The JSON sidecar written next to the weights (core's common fields, then the audio's own). */
export interface DigitClassifierRecord extends ClassifierSidecar<DigitCnnConfig> {
  /** Accuracy on the whole official test split (recordings 0-4: 300 clips), in [0, 1]. */
  readonly testAccuracy: number;
  /** confusion[true digit][predicted digit] on the test split. */
  readonly testConfusion: number[][];
  readonly augment: AugmentOptions;
  /** Test accuracy after each epoch: monitoring only (the weights are always the last epoch's). */
  readonly epochTestAccuracy: readonly number[];
  /** Every metric between real test and training data, and for noise-like controls, with these weights. */
  readonly floors?: DigitFloors;
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
  const modelOptions: DigitClassifierModelOptions = { seed: o.seed, config };
  const epochTestAccuracy: number[] = [];
  const net = new DigitCnn(config, o.seed);
  try {
    const run = await trainClassifierEpochs(o, {
      backend: backend.name,
      factory: siblingFactory(import.meta.url, 'factory', 'createDigitClassifierModel', modelOptions),
      examples: train.size,
      order: new Rng(o.seed),
      // Host data (nothing to free); each step's shifts and augmentation from its own stream.
      batch: (idx, step) => ({ batch: windowBatch(train, idx, L, Rng.derive(o.seed, 0x617567, step), o.augment) }),
      afterEpoch: async (_epoch, { seconds, stepsPerEpoch, weights }) => {
        net.assign(await weights(), 'trainer weights');
        const acc = await digitAccuracy(net, test, { length: L });
        epochTestAccuracy.push(acc.accuracy);
        return `, test acc ${(100 * acc.accuracy).toFixed(2)} %, ${(stepsPerEpoch / seconds).toFixed(2)} it/s`;
      },
    });
    // The net holds the last epoch's weights (afterEpoch).
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
    return writeClassifierSidecar<DigitClassifierRecord>(o.out, {
      ...weightsFileRecord(o.out),
      parameters: net.parameterCount(),
      config,
      testAccuracy: testEval.accuracy,
      testExamples: testEval.examples,
      testLoss: testEval.loss,
      testConfusion: testEval.confusion,
      trainAccuracy: trainEval.accuracy,
      trainExamples: trainEval.examples,
      ...runRecord(o, run),
      augment: o.augment,
      ...trainerRecord(run, backend.name, seconds),
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
    });
  } finally {
    net.dispose();
  }
}

/** `x.safetensors` -> `x.json`. */
export { classifierSidecarPath as digitSidecarPath };

/** Parses `--name value` arguments of the training command (unknown flags are errors). */
export function parseTrainDigitClassifierArgs(argv: readonly string[], defaults: { dataDir: string; out: string }): Omit<TrainDigitClassifierOptions, 'log'> {
  return parseClassifierTrainingArgs<Omit<TrainDigitClassifierOptions, 'log'>>(argv, { ...DEFAULT_TRAIN_DIGIT_CLASSIFIER, ...defaults }, [
    ...classifierTrainingFlags('--data needs the FSDD recordings folder', { warmup: true }),
    [
      '--length',
      {
        value: true,
        set: (o, v, flag) => {
          o.config = { ...o.config, length: nonNegativeArg(flag, v, true) };
        },
      },
    ],
    [
      '--no-floors',
      {
        value: false,
        set: (o) => {
          o.skipFloors = true;
        },
      },
    ],
  ]);
}
