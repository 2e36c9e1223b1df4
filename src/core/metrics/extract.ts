import * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../plugin.js';
import { Rng } from '../random.js';
import { logSoftmax } from './inception.js';
import type { FeatureExtractor, FeatureSet } from './types.js';

/**
 * Where examples come from when a metric needs their features:
 * - a tensor [N, ...] (not disposed);
 * - a data source, optionally restricted to some indices (real data);
 * - a stream `read(start, count)` returning [count, ...] tensors, which the
 *   extractor disposes (generate samples batch by batch without holding all);
 * - features already extracted (a FeatureSet): nothing is recomputed, so a
 *   reference set's features can be computed once and reused.
 */
export type ExampleInput =
  | tf.Tensor
  | { readonly source: DataSource; readonly indices?: readonly number[] }
  | { readonly size: number; read(start: number, count: number): tf.Tensor }
  | FeatureSet;

export interface ExtractOptions {
  /** Examples per forward pass (default 256). */
  readonly batchSize?: number;
  /** Also compute log p(y|x) when the extractor classifies (default true). */
  readonly logits?: boolean;
}

export function isFeatureSet(x: unknown): x is FeatureSet {
  return typeof x === 'object' && x !== null && !(x instanceof tf.Tensor) && (x as FeatureSet).features instanceof Float32Array && typeof (x as FeatureSet).n === 'number';
}

/** Number of examples of an input. */
export function inputSize(input: ExampleInput): number {
  if (input instanceof tf.Tensor) return input.shape[0] as number;
  if (isFeatureSet(input)) return input.n;
  if ('source' in input) return input.indices ? input.indices.length : input.source.size;
  return input.size;
}

/**
 * Runs the extractor over every example of `input` in batches and returns
 * host arrays: features [n, featureDim] and, for classifiers, log p(y|x) in
 * float64. Each batch's tensors are freed before the next one: the number of
 * live tensors is the same before and after the call.
 */
export async function extractFeatures(extractor: FeatureExtractor, input: ExampleInput, options: ExtractOptions = {}): Promise<FeatureSet> {
  if (isFeatureSet(input)) {
    if (input.featureDim !== extractor.featureDim) {
      throw new Error(`extractFeatures: precomputed features have dimension ${input.featureDim}, extractor '${extractor.id}' gives ${extractor.featureDim}`);
    }
    return input;
  }
  const n = inputSize(input);
  const bs = options.batchSize ?? 256;
  if (!(Number.isInteger(bs) && bs >= 1)) throw new Error(`extractFeatures: batchSize must be a positive integer, got ${bs}`);
  if (n < 1) throw new Error('extractFeatures: no examples');
  const d = extractor.featureDim;
  const c = extractor.numClasses;
  const wantLogits = (options.logits ?? true) && c !== undefined && (extractor.logits !== undefined || extractor.featuresAndLogits !== undefined);
  const features = new Float32Array(n * d);
  const logProbs = wantLogits ? new Float64Array(n * c!) : undefined;
  // Labels are kept when every batch of a data source has them.
  let labels: Int32Array | undefined = 'source' in input && input.source.numClasses !== undefined ? new Int32Array(n) : undefined;
  const rng = new Rng(0);
  for (let start = 0; start < n; start += bs) {
    const count = Math.min(bs, n - start);
    // Always a tensor of this call's own (a slice, a fresh batch, or the stream's), freed below.
    let x: tf.Tensor;
    if (input instanceof tf.Tensor) {
      x = tf.slice(input, start, count);
    } else if ('source' in input) {
      const idx = input.indices ? input.indices.slice(start, start + count) : Array.from({ length: count }, (_, i) => start + i);
      const b = input.source.batch(idx, rng);
      if (b.labels && labels) labels.set(b.labels.dataSync(), start);
      else labels = undefined;
      b.labels?.dispose();
      x = b.x;
    } else {
      x = input.read(start, count);
      if (x.shape[0] !== count) {
        x.dispose();
        throw new Error(`extractFeatures: read(${start}, ${count}) returned ${x.shape[0]} examples`);
      }
    }
    try {
      const out = tf.tidy(() => {
        if (!wantLogits) return [extractor.features(x)];
        if (extractor.featuresAndLogits) {
          const r = extractor.featuresAndLogits(x);
          return [r.features, r.logits];
        }
        return [extractor.features(x), extractor.logits!(x)];
      });
      try {
        const [f, l] = await Promise.all(out.map((t) => t.data()));
        const ft = out[0]!;
        if (ft.rank !== 2 || ft.shape[0] !== count || ft.shape[1] !== d) {
          throw new Error(`extractor '${extractor.id}' returned features [${ft.shape}], expected [${count}, ${d}]`);
        }
        features.set(f as Float32Array, start * d);
        if (logProbs) {
          const lt = out[1]!;
          if (lt.rank !== 2 || lt.shape[0] !== count || lt.shape[1] !== c) {
            throw new Error(`extractor '${extractor.id}' returned logits [${lt.shape}], expected [${count}, ${c}]`);
          }
          logProbs.set(logSoftmax(l!, count, c!), start * c!);
        }
      } finally {
        tf.dispose(out);
      }
    } finally {
      x.dispose();
    }
  }
  return { n, featureDim: d, features, ...(logProbs ? { logProbs, numClasses: c } : {}), ...(labels ? { labels } : {}) };
}

/** The rows `rows` of a feature set (for size-matched floors and subsets). */
export function selectRows(set: FeatureSet, rows: readonly number[]): FeatureSet {
  const d = set.featureDim;
  const features = new Float32Array(rows.length * d);
  rows.forEach((r, i) => features.set(set.features.subarray(r * d, (r + 1) * d), i * d));
  const labels = set.labels ? Int32Array.from(rows, (r) => set.labels![r]!) : undefined;
  const withLabels = labels ? { labels } : {};
  if (!set.logProbs || set.numClasses === undefined) return { n: rows.length, featureDim: d, features, ...withLabels };
  const c = set.numClasses;
  const logProbs = new Float64Array(rows.length * c);
  rows.forEach((r, i) => logProbs.set(set.logProbs!.subarray(r * c, (r + 1) * c), i * c));
  return { n: rows.length, featureDim: d, features, logProbs, numClasses: c, ...withLabels };
}
