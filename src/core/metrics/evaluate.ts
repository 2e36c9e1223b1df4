import { Rng } from '../random.js';
import { extractFeatures, selectRows, type ExampleInput, type ExtractOptions } from './extract.js';
import { frechetDistance, gaussianStats } from './frechet.js';
import { amScore, classAccuracy, classMarginal, inceptionScore, modifiedInceptionScore } from './inception.js';
import { kernelInceptionDistance, sampleWithoutReplacement, type KidOptions } from './kid.js';
import type { FeatureExtractor, FeatureSet } from './types.js';

/**
 * Every metric of a set of generated samples at once, each beside its
 * *floor*: the same metric computed between two sets of real data (e.g. the
 * test split against the training split). A value means little alone — FD
 * and IS depend on the feature network and on the number of examples
 * (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score",
 * https://arxiv.org/abs/1911.07023) — but "FD 14.2, real-vs-real floor 0.9"
 * says how far the samples are from what a perfect generator would score
 * with the same network and the same sample size.
 */
export interface EvaluationReference {
  /** Real examples the samples are compared with (e.g. the training split). */
  readonly real: ExampleInput;
  /** Other real examples of the same distribution (e.g. the test split); the floor compares them with `real`. */
  readonly heldOut: ExampleInput;
}

export interface EvaluateOptions extends ExtractOptions {
  readonly kid?: KidOptions;
  /** IS splits (default 10, at most the number of examples). */
  readonly isSplits?: number;
  /** mIS splits (default 1: all pairs of the whole set). */
  readonly misSplits?: number;
  /**
   * Compute the floors on a random subset of `heldOut` with as many examples
   * as there are samples (default true), since FD and IS are biased by the
   * sample size; when false, all of `heldOut` is used.
   */
  readonly matchFloorSize?: boolean;
  /** Seed of the floor subset and of KID's subsets (default 0). */
  readonly seed?: number;
  /**
   * The class each sample was generated for (class-conditional sampling).
   * Adds `classAccuracy`; the held-out reference must then have labels.
   */
  readonly sampleLabels?: ArrayLike<number>;
}

export interface MetricWithFloor {
  readonly value: number;
  /** Spread over KID subsets / IS splits, when the metric has one. */
  readonly std?: number;
  /** The same metric on real held-out data (what a perfect generator would score here). */
  readonly floor: number;
  readonly floorStd?: number;
}

export interface EvaluationReport {
  readonly extractor: string;
  readonly featureDim: number;
  /** Examples used: generated samples, real reference, held-out real data for the floors. */
  readonly counts: { readonly samples: number; readonly real: number; readonly floor: number };
  /** Frechet distance (FID with Inception features; lower is better). */
  readonly fd: MetricWithFloor & { readonly meanTerm: number; readonly covTerm: number };
  /** Kernel Inception Distance (unbiased MMD^2; lower is better). */
  readonly kid: MetricWithFloor & { readonly subsetSize: number; readonly subsets: number };
  /** Inception Score (higher is better; the floor is the real data's IS). Classifiers only. */
  readonly is?: MetricWithFloor & { readonly splits: number };
  /** Modified Inception Score (higher is better). Classifiers only. */
  readonly mis?: MetricWithFloor & { readonly splits: number };
  /** AM score against the real data's class marginal (lower is better). Classifiers only. */
  readonly am?: MetricWithFloor & { readonly marginalKl: number; readonly meanEntropy: number };
  /**
   * Class-conditional samples only (`sampleLabels`): the fraction the
   * classifier assigns to the class they were generated for (higher is
   * better; the floor is its accuracy on the held-out real data).
   */
  readonly classAccuracy?: MetricWithFloor;
  readonly seconds: number;
}

/** Extracts the features of a reference once, to pass to many `evaluateSamples` calls. */
export async function extractReference(
  extractor: FeatureExtractor,
  reference: EvaluationReference,
  options: ExtractOptions = {},
): Promise<{ real: FeatureSet; heldOut: FeatureSet }> {
  return { real: await extractFeatures(extractor, reference.real, options), heldOut: await extractFeatures(extractor, reference.heldOut, options) };
}

export async function evaluateSamples(
  extractor: FeatureExtractor,
  samples: ExampleInput,
  reference: EvaluationReference,
  options: EvaluateOptions = {},
): Promise<EvaluationReport> {
  const t0 = performance.now();
  const gen = await extractFeatures(extractor, samples, options);
  const { real, heldOut: heldAll } = await extractReference(extractor, reference, options);
  if (gen.n < 2 || real.n < 2 || heldAll.n < 2) {
    throw new Error(`evaluateSamples: need at least 2 examples in each set (samples ${gen.n}, real ${real.n}, held-out ${heldAll.n})`);
  }
  const seed = options.seed ?? 0;
  // The floor set is a seeded random subset (matched to the sample count) or, when all of it is used, a seeded
  // permutation: IS averages over consecutive splits, and a data set stored sorted by class (FSDD's files are)
  // would put one class in each split and give an IS floor of ~1.
  const matched = (options.matchFloorSize ?? true) && heldAll.n > gen.n;
  const held = selectRows(heldAll, sampleWithoutReplacement(heldAll.n, matched ? gen.n : heldAll.n, Rng.derive(seed, 0x666c72)));
  const d = extractor.featureDim;

  const realStats = gaussianStats(real.features, real.n, d);
  const fdValue = frechetDistance(gaussianStats(gen.features, gen.n, d), realStats);
  const fdFloor = frechetDistance(gaussianStats(held.features, held.n, d), realStats);

  const kidOptions: KidOptions = { seed, ...options.kid };
  const kid = await kernelInceptionDistance(gen.features, gen.n, real.features, real.n, d, kidOptions);
  const kidFloor = await kernelInceptionDistance(held.features, held.n, real.features, real.n, d, kidOptions);

  const report: {
    -readonly [K in keyof EvaluationReport]: EvaluationReport[K];
  } = {
    extractor: extractor.id,
    featureDim: d,
    counts: { samples: gen.n, real: real.n, floor: held.n },
    fd: { value: fdValue.value, floor: fdFloor.value, meanTerm: fdValue.meanTerm, covTerm: fdValue.covTerm },
    kid: {
      value: kid.mean,
      std: kid.std,
      floor: kidFloor.mean,
      floorStd: kidFloor.std,
      subsetSize: kid.subsetSize,
      subsets: kid.values.length,
    },
    seconds: 0,
  };

  const c = extractor.numClasses;
  if (gen.logProbs && real.logProbs && held.logProbs && c !== undefined) {
    const isSplits = Math.min(options.isSplits ?? 10, gen.n, held.n);
    const is = inceptionScore(gen.logProbs, gen.n, c, { splits: isSplits });
    const isFloor = inceptionScore(held.logProbs, held.n, c, { splits: isSplits });
    report.is = { value: is.mean, std: is.std, floor: isFloor.mean, floorStd: isFloor.std, splits: isSplits };
    const misSplits = Math.min(options.misSplits ?? 1, Math.floor(gen.n / 2), Math.floor(held.n / 2));
    const mis = modifiedInceptionScore(gen.logProbs, gen.n, c, { splits: misSplits });
    const misFloor = modifiedInceptionScore(held.logProbs, held.n, c, { splits: misSplits });
    report.mis = { value: mis.mean, std: mis.std, floor: misFloor.mean, floorStd: misFloor.std, splits: misSplits };
    const marginal = classMarginal(real.logProbs, real.n, c);
    const am = amScore(gen.logProbs, gen.n, c, marginal);
    const amFloor = amScore(held.logProbs, held.n, c, marginal);
    report.am = { value: am.value, floor: amFloor.value, marginalKl: am.marginalKl, meanEntropy: am.meanEntropy };
    if (options.sampleLabels) {
      if (!held.labels) throw new Error('evaluateSamples: sampleLabels given, but the held-out reference has no labels to compute the accuracy floor with');
      report.classAccuracy = { value: classAccuracy(gen.logProbs, gen.n, c, options.sampleLabels), floor: classAccuracy(held.logProbs, held.n, c, held.labels) };
    }
  } else if (options.sampleLabels) {
    throw new Error(`evaluateSamples: sampleLabels given, but extractor '${extractor.id}' does not classify`);
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

/** One line per metric, value beside floor, e.g. for logs and the CLI. */
export function formatEvaluation(r: EvaluationReport): string[] {
  const f = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 0.01 ? v.toFixed(4) : v.toExponential(3));
  const pm = (v: number, s?: number): string => (s === undefined ? f(v) : `${f(v)} ± ${f(s)}`);
  const lines = [
    `features: ${r.extractor} (${r.featureDim}-d); ${r.counts.samples} samples vs ${r.counts.real} real; floor: ${r.counts.floor} held-out real vs the same ${r.counts.real}`,
    `FD   ${f(r.fd.value)}   (floor ${f(r.fd.floor)})`,
    `KID  ${pm(r.kid.value, r.kid.std)}   (floor ${pm(r.kid.floor, r.kid.floorStd)}; ${r.kid.subsets} subsets of ${r.kid.subsetSize})`,
  ];
  if (r.is) lines.push(`IS   ${pm(r.is.value, r.is.std)}   (real data ${pm(r.is.floor, r.is.floorStd)}; ${r.is.splits} splits)`);
  if (r.mis) lines.push(`mIS  ${pm(r.mis.value, r.mis.std)}   (real data ${pm(r.mis.floor, r.mis.floorStd)})`);
  if (r.am) lines.push(`AM   ${f(r.am.value)}   (real data ${f(r.am.floor)})`);
  if (r.classAccuracy) lines.push(`acc  ${f(r.classAccuracy.value)}   (real data ${f(r.classAccuracy.floor)}; the classifier's verdict matches the requested class)`);
  return lines;
}
