import * as tf from '@tensorflow/tfjs';
import type { Batch, StepContext, TrainableModel } from '../../../core/parallel/types.js';
import { DEFAULT_FASHION_CNN, FashionCnn, type FashionCnnConfig } from './network.js';

/**
 * The model factory module of the Fashion-MNIST classifier: difflab's
 * trainers (`LocalTrainer`, `DataParallelTrainer`, see
 * src/core/parallel/README.md) import this module, in each worker thread,
 * and call `createFashionClassifierModel` with JSON options.
 */
export interface FashionClassifierModelOptions {
  /** Seed of the initial weights and of the dropout masks. */
  readonly seed: number;
  readonly config?: FashionCnnConfig;
}

/**
 * Batch entries: `x` float32 [B, 28, 28, 1] in [-1, 1] and `labels` int32 [B].
 * Loss: the mean softmax cross-entropy, log-sum-exp(z) - z_label per row.
 */
export function createFashionClassifierModel(options: FashionClassifierModelOptions): TrainableModel {
  const net = new FashionCnn(options.config ?? DEFAULT_FASHION_CNN, options.seed);
  return {
    variables: net.variables,
    loss(batch: Batch, ctx: StepContext): tf.Scalar {
      const x = batch['x'];
      const labels = batch['labels'];
      if (!x || !labels) throw new Error("fashion classifier: the batch needs 'x' [B, 28, 28, 1] and 'labels' [B]");
      const rows = x.shape[0] as number;
      const mask = net.dropoutMask(rows, options.seed, ctx.step, ctx.rowOffset);
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
