import * as tf from '@tensorflow/tfjs';
import { extractFeatures, selectRows, type ExampleInput } from '../../../core/metrics/extract.js';
import { frechetDistance, gaussianStats } from '../../../core/metrics/frechet.js';
import { amScore, classMarginal, inceptionScore, modifiedInceptionScore } from '../../../core/metrics/inception.js';
import { kernelInceptionDistance } from '../../../core/metrics/kid.js';
import type { FeatureExtractor, FeatureSet } from '../../../core/metrics/types.js';
import { Rng } from '../../../core/random.js';
import type { KidFloors, MeanStd } from '../../../core/training/classifier.js';
import type { AudioDataSource } from '../data.js';
import { openFsdd, windowBatch } from './data.js';

/**
 * The reference numbers of the digit classifier on FSDD, recorded in its
 * sidecar so a generated set's scores can be read against them: every
 * metric between the real test split (300 clips) and the real training split
 * (2,700) — the floor a perfect generator reaches with 300 samples — and
 * for two controls of the test set's size that are audio but not speech:
 * - noise: white Gaussian noise at the RMS of the real windows;
 * - shuffled: each test window with its samples permuted at random (the
 *   same loudness and sample distribution, no spectral or temporal structure).
 * `difflab eval` computes its own size-matched floors; these are the scale.
 */
export interface DigitFloors {
  readonly length: number;
  readonly trainExamples: number;
  readonly testExamples: number;
  readonly controlExamples: number;
  /** FD to the training split. */
  readonly fd: { readonly testVsTrain: number; readonly noiseVsTrain: number; readonly shuffledVsTrain: number };
  /** KID to the training split: mean and std over subsets. */
  readonly kid: KidFloors;
  /** IS over `isSplits` splits of the rows in a seeded random order. */
  readonly is: { readonly test: MeanStd; readonly train: MeanStd; readonly noise: MeanStd; readonly shuffled: MeanStd };
  readonly isSplits: number;
  readonly mis: { readonly test: number; readonly train: number; readonly noise: number; readonly shuffled: number };
  /** AM against the training split's class marginal. */
  readonly am: { readonly test: number; readonly noise: number; readonly shuffled: number };
}

/** Clips of a source, each centred in a window of `length` samples, streamed as [count, length, 1] tensors. */
export function centredWindows(source: AudioDataSource, length: number, indices?: readonly number[]): ExampleInput {
  const idx = indices ?? Array.from({ length: source.size }, (_, i) => i);
  return {
    size: idx.length,
    read: (start, count) => {
      const b = windowBatch(source, idx.slice(start, start + count), length);
      return tf.tensor3d(b.x.data as Float32Array, [count, length, 1]);
    },
  };
}

/** RMS of the centred windows of a source (zero padding included: what the diffusion model sees as sigma_data). */
export function windowRms(source: AudioDataSource, length: number): number {
  let ss = 0;
  for (let i = 0; i < source.size; i++) {
    const x = windowBatch(source, [i], length).x.data as Float32Array;
    for (let k = 0; k < length; k++) ss += x[k]! * x[k]!;
  }
  return Math.sqrt(ss / (source.size * length));
}

/** `n` windows of white Gaussian noise of standard deviation `std` (seeded). */
export function noiseWindows(n: number, length: number, std: number, seed: number): ExampleInput {
  const rng = new Rng(seed);
  return {
    size: n,
    read: (_start, count) => {
      const x = rng.normalArray(count * length);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! * std;
      return tf.tensor3d(x, [count, length, 1]);
    },
  };
}

/** The centred windows of `source` with each window's samples permuted at random (seeded). */
export function shuffledWindows(source: AudioDataSource, length: number, seed: number): ExampleInput {
  const rng = new Rng(seed);
  return {
    size: source.size,
    read: (start, count) => {
      const b = windowBatch(
        source,
        Array.from({ length: count }, (_, i) => start + i),
        length,
      );
      const x = b.x.data as Float32Array;
      for (let j = 0; j < count; j++) {
        const row = x.subarray(j * length, (j + 1) * length);
        const perm = rng.shuffle(Array.from({ length }, (_, i) => i));
        const copy = Float32Array.from(row);
        for (let i = 0; i < length; i++) row[i] = copy[perm[i]!]!;
      }
      return tf.tensor3d(x, [count, length, 1]);
    },
  };
}

export async function measureDigitFloors(
  extractor: FeatureExtractor,
  dataDir: string,
  length: number,
  options: { kidSubsets?: number; isSplits?: number } = {},
): Promise<DigitFloors> {
  const train = await openFsdd(dataDir, 'train', length);
  const test = await openFsdd(dataDir, 'test', length);
  const trainF = await extractFeatures(extractor, centredWindows(train, length));
  const testF = await extractFeatures(extractor, centredWindows(test, length));
  const noiseF = await extractFeatures(extractor, noiseWindows(test.size, length, windowRms(train, length), 1234));
  const shuffledF = await extractFeatures(extractor, shuffledWindows(test, length, 4321));
  return floorsFromFeatures(length, trainF, testF, noiseF, shuffledF, options);
}

export async function floorsFromFeatures(
  length: number,
  trainF: FeatureSet,
  testF: FeatureSet,
  noiseF: FeatureSet,
  shuffledF: FeatureSet,
  options: { kidSubsets?: number; isSplits?: number } = {},
): Promise<DigitFloors> {
  const d = trainF.featureDim;
  const c = trainF.numClasses;
  const sets = [trainF, testF, noiseF, shuffledF];
  if (c === undefined || sets.some((s) => !s.logProbs)) throw new Error('measureDigitFloors: the extractor must classify');
  const kidSubsets = options.kidSubsets ?? 100;
  const isSplits = options.isSplits ?? 10;
  const trainStats = gaussianStats(trainF.features, trainF.n, d);
  const fdOf = (f: FeatureSet): number => frechetDistance(gaussianStats(f.features, f.n, d), trainStats).value;
  const kidOf = async (f: FeatureSet) => {
    const r = await kernelInceptionDistance(f.features, f.n, trainF.features, trainF.n, d, { subsets: kidSubsets, subsetSize: 1000, seed: 0 });
    return { mean: r.mean, std: r.std, subsetSize: r.subsetSize };
  };
  // IS averages over consecutive splits, and FSDD's clips come sorted by file name, i.e. by digit:
  // unshuffled, each split would hold one or two digits and every IS would be ~1. Shuffle first (seeded).
  const isOf = (f: FeatureSet) => {
    const shuffled = selectRows(f, new Rng(7).shuffle([...Array(f.n).keys()]));
    const r = inceptionScore(shuffled.logProbs!, f.n, c, { splits: Math.min(isSplits, f.n) });
    return { mean: r.mean, std: r.std };
  };
  const misOf = (f: FeatureSet) => modifiedInceptionScore(f.logProbs!, f.n, c).mean;
  const marginal = classMarginal(trainF.logProbs!, trainF.n, c);
  const amOf = (f: FeatureSet) => amScore(f.logProbs!, f.n, c, marginal).value;
  const kidTest = await kidOf(testF);
  const kidNoise = await kidOf(noiseF);
  return {
    length,
    trainExamples: trainF.n,
    testExamples: testF.n,
    controlExamples: noiseF.n,
    fd: { testVsTrain: fdOf(testF), noiseVsTrain: fdOf(noiseF), shuffledVsTrain: fdOf(shuffledF) },
    kid: {
      testVsTrain: { mean: kidTest.mean, std: kidTest.std },
      noiseVsTrain: { mean: kidNoise.mean, std: kidNoise.std },
      subsets: kidSubsets,
      subsetSize: kidTest.subsetSize,
    },
    is: { test: isOf(testF), train: isOf(trainF), noise: isOf(noiseF), shuffled: isOf(shuffledF) },
    isSplits,
    mis: { test: misOf(testF), train: misOf(trainF), noise: misOf(noiseF), shuffled: misOf(shuffledF) },
    am: { test: amOf(testF), noise: amOf(noiseF), shuffled: amOf(shuffledF) },
  };
}
