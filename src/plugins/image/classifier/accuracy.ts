import * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../../../core/plugin.js';
import { Rng } from '../../../core/random.js';
import type { FashionCnn } from './network.js';

export interface AccuracyResult {
  /** Fraction of correctly classified examples, in [0, 1]. */
  readonly accuracy: number;
  /** Mean cross-entropy (nats). */
  readonly loss: number;
  readonly examples: number;
  /** confusion[true][predicted] counts. */
  readonly confusion: number[][];
}

/**
 * Accuracy and mean cross-entropy of the classifier on the first `limit`
 * examples of a labelled data source (all by default), in batches; every
 * batch's tensors are freed (no tensor outlives the call).
 */
export async function classifierAccuracy(
  net: FashionCnn,
  source: DataSource,
  options: { limit?: number; batchSize?: number } = {},
): Promise<AccuracyResult> {
  const n = Math.min(options.limit ?? source.size, source.size);
  const bs = options.batchSize ?? 500;
  const k = net.numClasses;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  let lossSum = 0;
  const rng = new Rng(0);
  for (let start = 0; start < n; start += bs) {
    const idx = Array.from({ length: Math.min(bs, n - start) }, (_, i) => start + i);
    const b = source.batch(idx, rng);
    if (!b.labels) {
      b.x.dispose();
      throw new Error('classifierAccuracy: the data source has no labels');
    }
    const [predT, lossT] = tf.tidy(() => {
      const logits = net.logits(b.x);
      const labels = tf.cast(b.labels!, 'int32') as tf.Tensor1D;
      const ce = tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, tf.oneHot(labels, k)), 1));
      return [tf.argMax(logits, 1), tf.sum(ce)];
    });
    const [pred, labels, loss] = await Promise.all([predT.data(), b.labels.data(), lossT.data()]);
    tf.dispose([predT, lossT, b.x, b.labels]);
    for (let i = 0; i < idx.length; i++) {
      const y = labels[i]!;
      const p = pred[i]!;
      confusion[y]![p]!++;
      if (y === p) correct++;
    }
    lossSum += loss[0]!;
  }
  return { accuracy: correct / n, loss: lossSum / n, examples: n, confusion };
}
