import * as tf from '@tensorflow/tfjs';
import { extractFeatures, type ExampleInput } from '../../../core/metrics/extract.js';
import { frechetDistance, gaussianStats } from '../../../core/metrics/frechet.js';
import { amScore, classMarginal, inceptionScore, modifiedInceptionScore } from '../../../core/metrics/inception.js';
import { kernelInceptionDistance } from '../../../core/metrics/kid.js';
import type { FeatureExtractor, FeatureSet } from '../../../core/metrics/types.js';
import { Rng } from '../../../core/random.js';
import type { KidFloors, MeanStd } from '../../../core/training/classifier.js';
import { openFashion } from './data.js';

/**
 * The reference numbers of a feature network on Fashion-MNIST: every metric
 * between the real test split and the real training split (the floor a
 * perfect generator would reach with 10000 samples), and the same metrics for
 * uniform-noise images (a scale for "completely wrong"). Recorded in the
 * classifier's sidecar so users can read a sample's FD/KID/IS against them.
 */
export interface FashionFloors {
  readonly trainExamples: number;
  readonly testExamples: number;
  readonly noiseExamples: number;
  /** FD(test, train) and FD(noise, train). */
  readonly fd: { readonly testVsTrain: number; readonly noiseVsTrain: number };
  /** KID(test, train) and KID(noise, train): mean and std over subsets. */
  readonly kid: KidFloors;
  /** IS of the real test split, of the training split, and of noise images (10 splits each). */
  readonly is: { readonly test: MeanStd; readonly train: MeanStd; readonly noise: MeanStd };
  readonly mis: { readonly test: number; readonly noise: number };
  /** AM of the test split / noise images against the training split's class marginal. */
  readonly am: { readonly test: number; readonly noise: number };
}

/** `n` images [n, 28, 28, 1] of i.i.d. uniform noise in [-1, 1], streamed in batches (seeded). */
export function noiseImages(n: number, seed: number, size = 28): ExampleInput {
  const rng = new Rng(seed);
  return {
    size: n,
    read: (_start, count) => tf.tensor4d(Float32Array.from({ length: count * size * size }, () => 2 * rng.uniform() - 1), [count, size, size, 1]),
  };
}

export async function measureFashionFloors(
  extractor: FeatureExtractor,
  dataDir: string,
  options: { trainLimit?: number; noise?: number; kidSubsets?: number } = {},
): Promise<FashionFloors> {
  const train = await openFashion(dataDir, 'train');
  const test = await openFashion(dataDir, 'test');
  const nTrain = Math.min(options.trainLimit ?? train.size, train.size);
  const trainF = await extractFeatures(extractor, { source: train, indices: Array.from({ length: nTrain }, (_, i) => i) });
  const testF = await extractFeatures(extractor, { source: test });
  const noiseF = await extractFeatures(extractor, noiseImages(options.noise ?? testF.n, 1234));
  return floorsFromFeatures(trainF, testF, noiseF, options.kidSubsets ?? 100);
}

export async function floorsFromFeatures(trainF: FeatureSet, testF: FeatureSet, noiseF: FeatureSet, kidSubsets = 100): Promise<FashionFloors> {
  const d = trainF.featureDim;
  const c = trainF.numClasses;
  if (c === undefined || !trainF.logProbs || !testF.logProbs || !noiseF.logProbs) throw new Error('measureFashionFloors: the extractor must classify');
  const trainStats = gaussianStats(trainF.features, trainF.n, d);
  const fdOf = (f: FeatureSet): number => frechetDistance(gaussianStats(f.features, f.n, d), trainStats).value;
  const kidOf = async (f: FeatureSet): Promise<{ mean: number; std: number; subsetSize: number }> => {
    const r = await kernelInceptionDistance(f.features, f.n, trainF.features, trainF.n, d, { subsets: kidSubsets, subsetSize: 1000, seed: 0 });
    return { mean: r.mean, std: r.std, subsetSize: r.subsetSize };
  };
  const isOf = (f: FeatureSet): { mean: number; std: number } => {
    const r = inceptionScore(f.logProbs!, f.n, c, { splits: 10 });
    return { mean: r.mean, std: r.std };
  };
  const marginal = classMarginal(trainF.logProbs, trainF.n, c);
  const kidTest = await kidOf(testF);
  const kidNoise = await kidOf(noiseF);
  return {
    trainExamples: trainF.n,
    testExamples: testF.n,
    noiseExamples: noiseF.n,
    fd: { testVsTrain: fdOf(testF), noiseVsTrain: fdOf(noiseF) },
    kid: {
      testVsTrain: { mean: kidTest.mean, std: kidTest.std },
      noiseVsTrain: { mean: kidNoise.mean, std: kidNoise.std },
      subsets: kidSubsets,
      subsetSize: kidTest.subsetSize,
    },
    is: { test: isOf(testF), train: isOf(trainF), noise: isOf(noiseF) },
    mis: { test: modifiedInceptionScore(testF.logProbs, testF.n, c).mean, noise: modifiedInceptionScore(noiseF.logProbs, noiseF.n, c).mean },
    am: { test: amScore(testF.logProbs, testF.n, c, marginal).value, noise: amScore(noiseF.logProbs, noiseF.n, c, marginal).value },
  };
}
