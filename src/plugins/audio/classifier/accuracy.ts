import * as tf from '@tensorflow/tfjs';
import type { AudioDataSource } from '../data.js';
import { windowBatch } from './data.js';
import type { DigitCnn } from './network.js';

export interface AccuracyResult {
  /** Fraction of correctly classified clips, in [0, 1]. */
  readonly accuracy: number;
  /** Mean cross-entropy (nats). */
  readonly loss: number;
  readonly examples: number;
  /** confusion[true][predicted] counts. */
  readonly confusion: number[][];
}

/**
 * Accuracy and mean cross-entropy of the classifier on clips of a labelled
 * FSDD source (all of them, or `indices`), each centred in a window of
 * `length` samples, in batches; no tensor outlives the call.
 */
export async function digitAccuracy(
  net: DigitCnn,
  source: AudioDataSource,
  options: { length?: number; indices?: readonly number[]; batchSize?: number } = {},
): Promise<AccuracyResult> {
  const all = options.indices ?? Array.from({ length: source.size }, (_, i) => i);
  const length = options.length ?? net.config.length;
  const bs = options.batchSize ?? 100;
  const k = net.numClasses;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < all.length; start += bs) {
    const idx = all.slice(start, start + bs);
    const b = windowBatch(source, idx, length);
    const [predT, lossT] = tf.tidy(() => {
      const x = tf.tensor3d(b.x.data as Float32Array, b.x.shape as [number, number, number]);
      const logits = net.logits(x);
      const labels = tf.tensor1d(b.labels.data as Int32Array, 'int32');
      const ce = tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, tf.oneHot(labels, k)), 1));
      return [tf.argMax(logits, 1), tf.sum(ce)];
    });
    const [pred, loss] = await Promise.all([predT.data(), lossT.data()]);
    tf.dispose([predT, lossT]);
    for (let i = 0; i < idx.length; i++) {
      const y = b.labels.data[i]!;
      const p = pred[i]!;
      confusion[y]![p]!++;
      if (y === p) correct++;
    }
    lossSum += loss[0]!;
  }
  return { accuracy: correct / all.length, loss: lossSum / all.length, examples: all.length, confusion };
}
