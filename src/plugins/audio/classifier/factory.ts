import * as tf from '@tensorflow/tfjs';
import type { Batch, StepContext, TrainableModel } from '../../../core/parallel/types.js';
import { DEFAULT_DIGIT_CNN, DigitCnn, type DigitCnnConfig } from './network.js';

/**
 * The model factory module of the FSDD digit classifier: difflab's trainers
 * (`LocalTrainer`, `DataParallelTrainer`, see src/core/parallel/README.md)
 * import this module, in each worker thread, and call
 * `createDigitClassifierModel` with JSON options.
 */
export interface DigitClassifierModelOptions {
  /** Seed of the initial weights and of the dropout masks. */
  readonly seed: number;
  readonly config?: DigitCnnConfig;
}

/**
 * Batch entries: `x` float32 [B, L, 1] waveforms (augmented on the main
 * thread) and `labels` int32 [B]. Loss: the mean softmax cross-entropy,
 * log-sum-exp(z) - z_label per row.
 */
export function createDigitClassifierModel(options: DigitClassifierModelOptions): TrainableModel {
  const net = new DigitCnn(options.config ?? DEFAULT_DIGIT_CNN, options.seed);
  return {
    variables: net.variables,
    loss(batch: Batch, ctx: StepContext): tf.Scalar {
      const x = batch['x'];
      const labels = batch['labels'];
      if (!x || !labels) throw new Error("digit classifier: the batch needs 'x' [B, L, 1] and 'labels' [B]");
      const mask = net.dropoutMask(x.shape[0] as number, options.seed, ctx.step, ctx.rowOffset);
      const logits = net.logits(x, mask);
      const onehot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, net.numClasses);
      const picked = tf.sum(tf.mul(logits, onehot), 1);
      return tf.mean(tf.sub(tf.logSumExp(logits, 1), picked)) as tf.Scalar;
    },
    dispose(): void {
      net.dispose();
    },
  };
}
