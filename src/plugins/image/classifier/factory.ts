import type { TrainableModel } from '../../../core/parallel/types.js';
import { classifierTrainableModel, type ClassifierModelOptions } from '../../../core/training/classifier.js';
import { DEFAULT_FASHION_CNN, FashionCnn, type FashionCnnConfig } from './network.js';

/**
 * The model factory module of the Fashion-MNIST classifier: difflab's
 * trainers (`LocalTrainer`, `DataParallelTrainer`, see
 * src/core/parallel/README.md) import this module, in each worker thread,
 * and call `createFashionClassifierModel` with JSON options (`seed`: of the
 * initial weights and of the dropout masks; `config`).
 */
export type FashionClassifierModelOptions = ClassifierModelOptions<FashionCnnConfig>;

/**
 * Batch entries: `x` float32 [B, 28, 28, 1] in [-1, 1] and `labels` int32 [B].
 * Loss: the mean softmax cross-entropy (core's `classifierTrainableModel`).
 */
export function createFashionClassifierModel(options: FashionClassifierModelOptions): TrainableModel {
  const net = new FashionCnn(options.config ?? DEFAULT_FASHION_CNN, options.seed);
  return classifierTrainableModel(net, options.seed, "fashion classifier: the batch needs 'x' [B, 28, 28, 1] and 'labels' [B]");
}
