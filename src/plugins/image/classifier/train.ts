import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../../core/backend/select.js';
import { relativeName } from '../../../core/nn/index.js';
import { writeFileAtomic } from '../../../core/io/atomic.js';
import { DataParallelTrainer, LocalTrainer, type Trainer } from '../../../core/parallel/index.js';
import { Rng } from '../../../core/random.js';
import { learningRateAt, type LrSchedule } from '../../../core/training/optim.js';
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
 */
export interface TrainClassifierOptions {
  /** Folder with the Fashion-MNIST IDX files. */
  readonly dataDir: string;
  /** Output weights file; the sidecar goes next to it with extension `.json`. */
  readonly out: string;
  readonly epochs: number;
  readonly batchSize: number;
  /** Peak learning rate of AdamW (cosine decay after a linear warm-up). */
  readonly lr: number;
  readonly weightDecay: number;
  readonly warmupSteps: number;
  readonly seed: number;
  /** Worker threads; 1 trains in-process. */
  readonly workers: number;
  /** Mirror training images left-right with probability 1/2. */
  readonly randomFlip: boolean;
  readonly config: FashionCnnConfig;
  readonly log: (line: string) => void;
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

/** The JSON sidecar written next to the weights. */
export interface ClassifierRecord {
  readonly weights: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly parameters: number;
  readonly config: FashionCnnConfig;
  /** Accuracy on the full test split (t10k, 10000 images), in [0, 1]. */
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
  readonly randomFlip: boolean;
  readonly trainer: string;
  readonly workers: number;
  readonly backend: string;
  /** Wall time of training and the accuracy evaluation (not the floors), on a shared 2-core machine. */
  readonly seconds: number;
  readonly epochLosses: readonly number[];
  readonly data: { readonly train: string; readonly test: string };
  /** Every metric between real test and training data (and for noise images), with these weights. */
  readonly floors: FashionFloors;
  readonly command: string;
  readonly date: string;
}

export async function trainFashionClassifier(o: TrainClassifierOptions): Promise<ClassifierRecord> {
  const t0 = performance.now();
  const backend = await useBackend('wasm');
  const train = await openFashion(o.dataDir, 'train', o.randomFlip, o.log);
  const test = await openFashion(o.dataDir, 'test', false, o.log);
  const stepsPerEpoch = Math.ceil(train.size / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const schedule: LrSchedule = { lr: o.lr, warmupSteps: o.warmupSteps, decay: 'cosine', totalSteps, minLrRatio: 0 };
  const modelOptions: FashionClassifierModelOptions = { seed: o.seed, config: o.config };
  const factory = {
    module: fileURLToPath(new URL(`./factory.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url)),
    exportName: 'createFashionClassifierModel',
    options: modelOptions,
  };
  const optimizer = { kind: 'adamw' as const, learningRate: o.lr, weightDecay: o.weightDecay };
  const trainer: Trainer =
    o.workers > 1
      ? await DataParallelTrainer.create({ factory, optimizer, workers: o.workers, backend: 'wasm' })
      : await LocalTrainer.create({ factory, optimizer });
  o.log(`training: ${o.epochs} epochs x ${stepsPerEpoch} steps, batch ${o.batchSize}, ${trainer.worldSize} replica(s) on ${backend.name}`);
  const rng = new Rng(o.seed).fork();
  const epochLosses: number[] = [];
  let net: FashionCnn | undefined;
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = rng.shuffle(Array.from({ length: train.size }, (_, i) => i));
      let sum = 0;
      const te = performance.now();
      for (let s = 0; s < stepsPerEpoch; s++) {
        const idx = order.slice(s * o.batchSize, (s + 1) * o.batchSize);
        const b = train.batch(idx, rng);
        try {
          const r = await trainer.step(
            { x: b.x, labels: b.labels! },
            { learningRate: learningRateAt(schedule, trainer.stepCount) },
          );
          if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${r.step}`);
          sum += r.loss * idx.length;
        } finally {
          b.x.dispose();
          b.labels?.dispose();
        }
        if ((s + 1) % 100 === 0) o.log(`  epoch ${epoch + 1} step ${s + 1}/${stepsPerEpoch} loss ${(sum / ((s + 1) * o.batchSize)).toFixed(4)}`);
      }
      epochLosses.push(sum / train.size);
      o.log(`epoch ${epoch + 1}/${o.epochs}: train loss ${(sum / train.size).toFixed(4)} (${((performance.now() - te) / 1000).toFixed(0)} s)`);
    }
    const weights = await trainer.getWeights();
    net = new FashionCnn(o.config, o.seed);
    // Keyed by path: worker variables are named `<root>/<path>` with a root that may differ (fashion_cnn_1, ...).
    net.assign(new Map(weights.map((w) => [relativeName(w.name), w] as const)), 'trainer weights');
  } finally {
    await trainer.dispose();
  }
  try {
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
    const bytes = readFileSync(o.out);
    const record: ClassifierRecord = {
      weights: o.out.split('/').pop()!,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.byteLength,
      parameters: net.store.parameterCount(),
      config: o.config,
      testAccuracy: testEval.accuracy,
      testExamples: testEval.examples,
      testLoss: testEval.loss,
      trainAccuracy: trainEval.accuracy,
      trainExamples: trainEval.examples,
      seed: o.seed,
      epochs: o.epochs,
      steps: totalSteps,
      batchSize: o.batchSize,
      optimizer: { kind: 'adamw', lr: o.lr, weightDecay: o.weightDecay, schedule: `linear warm-up ${o.warmupSteps} steps, cosine decay to 0` },
      randomFlip: o.randomFlip,
      trainer: trainer.worldSize > 1 ? 'DataParallelTrainer' : 'LocalTrainer',
      workers: trainer.worldSize,
      backend: backend.name,
      seconds: Math.round(seconds),
      epochLosses,
      data: { train: train.description, test: test.description },
      floors,
      command: `npm run train:classifier -- --epochs ${o.epochs} --batch-size ${o.batchSize} --lr ${o.lr} --weight-decay ${o.weightDecay} --seed ${o.seed} --workers ${o.workers}${o.randomFlip ? ' --flip' : ''}`,
      date: new Date().toISOString(),
    };
    writeFileAtomic(sidecarPath(o.out), `${JSON.stringify(record, null, 2)}\n`);
    return record;
  } finally {
    net.dispose();
  }
}

/** `x.safetensors` -> `x.json`. */
export function sidecarPath(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '.json';
}

/** Parses `--name value` arguments of the training command (unknown flags are errors). */
export function parseTrainClassifierArgs(argv: readonly string[], defaults: { dataDir: string; out: string }): Omit<TrainClassifierOptions, 'log'> {
  const o = { ...DEFAULT_TRAIN_CLASSIFIER, ...defaults } as { -readonly [K in keyof Omit<TrainClassifierOptions, 'log'>]: Omit<TrainClassifierOptions, 'log'>[K] };
  const num = (flag: string, v: string | undefined, int: boolean): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0) {
      throw new Error(`${flag} needs a non-negative ${int ? 'integer' : 'number'}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case '--data':
        if (!v) throw new Error('--data needs a folder');
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
      case '--seed':
        o.seed = num(a, v, true);
        i++;
        break;
      case '--workers':
        o.workers = Math.max(1, num(a, v, true));
        i++;
        break;
      case '--flip':
        o.randomFlip = true;
        break;
      default:
        throw new Error(`unknown argument '${a}' (known: --data --out --epochs --batch-size --lr --weight-decay --seed --workers --flip)`);
    }
  }
  if (o.epochs < 1 || o.batchSize < 1) throw new Error('--epochs and --batch-size must be at least 1');
  return o;
}
