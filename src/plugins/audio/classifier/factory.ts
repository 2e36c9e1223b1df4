import type { TrainableModel } from '../../../core/parallel/types.js';
import { classifierTrainableModel, type ClassifierModelOptions } from '../../../core/training/classifier.js';
import { DEFAULT_DIGIT_CNN, DigitCnn, type DigitCnnConfig } from './network.js';

/**
 * The model factory module of the FSDD digit classifier: difflab's trainers
 * (`LocalTrainer`, `DataParallelTrainer`, see src/core/parallel/README.md)
 * import this module, in each worker thread, and call
 * `createDigitClassifierModel` with JSON options (`seed`: of the initial
 * weights and of the dropout masks; `config`).
 */
export type DigitClassifierModelOptions = ClassifierModelOptions<DigitCnnConfig>;

/**
 * Batch entries: `x` float32 [B, L, 1] waveforms (augmented on the main
 * thread) and `labels` int32 [B]. Loss: the mean softmax cross-entropy
 * (core's `classifierTrainableModel`).
 */
export function createDigitClassifierModel(options: DigitClassifierModelOptions): TrainableModel {
  const net = new DigitCnn(options.config ?? DEFAULT_DIGIT_CNN, options.seed);
  return classifierTrainableModel(net, options.seed, "digit classifier: the batch needs 'x' [B, L, 1] and 'labels' [B]");
}
