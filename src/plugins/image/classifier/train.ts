import { availableParallelism } from 'node:os';
import { useBackend } from '../../../core/backend/select.js';
import { Rng } from '../../../core/random.js';
import {
  classifierSidecarPath,
  classifierTrainingFlags,
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
import { classifierAccuracy } from './accuracy.js';
import { openFashion } from './data.js';
import { FashionClassifierExtractor } from './extractor.js';
import { measureFashionFloors, type FashionFloors } from './floors.js';
import type { FashionClassifierModelOptions } from './factory.js';
import { DEFAULT_FASHION_CNN, FashionCnn, type FashionCnnConfig } from './network.js';

/**
 * The training command behind `npm run train:classifier`: trains the
 * Fashion-MNIST classifier that difflab's image metrics use as their feature
 * network, with difflab's own trainers (data-parallel over every core on
 * wasm), then measures its accuracy on the full test set and writes the
 * weights (safetensors) and a JSON sidecar describing how they were made.
 * The loop, the sidecar's common fields and the flags are core's
 * (`core/training/classifier.ts`), shared with the audio digit classifier.
 * `dataDir`: the folder with the Fashion-MNIST IDX files.
 */
export interface TrainClassifierOptions extends ClassifierTrainingArgs, ClassifierTrainingOptions {
  /** Mirror training images left-right with probability 1/2. */
  readonly randomFlip: boolean;
  readonly config: FashionCnnConfig;
}

export const DEFAULT_TRAIN_CLASSIFIER: Omit<TrainClassifierOptions, 'dataDir' | 'out' | 'log'> = {
  epochs: 10,
  batchSize: 128,
  lr: 2e-3,
  weightDecay: 1e-4,
  warmupSteps: 100,
  seed: 0,
  workers: Math.min(availableParallelism(), 2),
  randomFlip: false,
  config: DEFAULT_FASHION_CNN,
};

/** The JSON sidecar written next to the weights (core's common fields, then the flips and the floors). */
export interface ClassifierRecord extends ClassifierSidecar<FashionCnnConfig> {
  /** Accuracy on the full test split (t10k, 10000 images), in [0, 1]. */
  readonly testAccuracy: number;
  readonly randomFlip: boolean;
  /** Every metric between real test and training data (and for noise images), with these weights. */
  readonly floors: FashionFloors;
}

export async function trainFashionClassifier(o: TrainClassifierOptions): Promise<ClassifierRecord> {
  const t0 = performance.now();
  const backend = await useBackend('wasm');
  const train = await openFashion(o.dataDir, 'train', o.randomFlip, o.log);
  const test = await openFashion(o.dataDir, 'test', false, o.log);
  const modelOptions: FashionClassifierModelOptions = { seed: o.seed, config: o.config };
  // One stream for the epoch permutations and the flips, in the order the loop draws them.
  const rng = new Rng(o.seed).fork();
  const run = await trainClassifierEpochs(o, {
    backend: backend.name,
    factory: siblingFactory(import.meta.url, 'factory', 'createFashionClassifierModel', modelOptions),
    examples: train.size,
    order: rng,
    batch: (idx) => {
      const b = train.batch(idx, rng);
      return {
        batch: { x: b.x, labels: b.labels! },
        release: () => {
          b.x.dispose();
          b.labels?.dispose();
        },
      };
    },
    logEvery: 100,
  });
  const net = new FashionCnn(o.config, o.seed);
  try {
    net.assign(run.weights, 'trainer weights');
    const testEval = await classifierAccuracy(net, test);
    // Accuracy on un-augmented training images (the training source may flip them).
    const trainPlain = o.randomFlip ? await openFashion(o.dataDir, 'train', false) : train;
    const trainEval = await classifierAccuracy(net, trainPlain, { limit: 10000 });
    o.log(`test accuracy ${(100 * testEval.accuracy).toFixed(2)} % (${testEval.examples} images), train (first 10000) ${(100 * trainEval.accuracy).toFixed(2)} %`);
    const seconds = (performance.now() - t0) / 1000;
    o.log('measuring the real-vs-real floors (test vs train) ...');
    const floors = await measureFashionFloors(new FashionClassifierExtractor(net), o.dataDir);
    o.log(`floors: FD(test, train) ${floors.fd.testVsTrain.toFixed(4)}, FD(noise, train) ${floors.fd.noiseVsTrain.toFixed(1)}; IS(test) ${floors.is.test.mean.toFixed(3)}`);
    await net.save(o.out, { format: 'difflab fashion classifier', seed: String(o.seed), test_accuracy: testEval.accuracy.toFixed(4) });
    return writeClassifierSidecar<ClassifierRecord>(o.out, {
      ...weightsFileRecord(o.out),
      parameters: net.parameterCount(),
      config: o.config,
      testAccuracy: testEval.accuracy,
      testExamples: testEval.examples,
      testLoss: testEval.loss,
      trainAccuracy: trainEval.accuracy,
      trainExamples: trainEval.examples,
      ...runRecord(o, run),
      randomFlip: o.randomFlip,
      ...trainerRecord(run, backend.name, seconds),
      data: { train: train.description, test: test.description },
      floors,
      command: `npm run train:classifier -- --epochs ${o.epochs} --batch-size ${o.batchSize} --lr ${o.lr} --weight-decay ${o.weightDecay} --seed ${o.seed} --workers ${o.workers}${o.randomFlip ? ' --flip' : ''}`,
    });
  } finally {
    net.dispose();
  }
}

/** `x.safetensors` -> `x.json`. */
export { classifierSidecarPath as sidecarPath };

/** Parses `--name value` arguments of the training command (unknown flags are errors). */
export function parseTrainClassifierArgs(argv: readonly string[], defaults: { dataDir: string; out: string }): Omit<TrainClassifierOptions, 'log'> {
  return parseClassifierTrainingArgs<Omit<TrainClassifierOptions, 'log'>>(argv, { ...DEFAULT_TRAIN_CLASSIFIER, ...defaults }, [
    ...classifierTrainingFlags('--data needs a folder'),
    [
      '--flip',
      {
        value: false,
        set: (o) => {
          o.randomFlip = true;
        },
      },
    ],
  ]);
}
