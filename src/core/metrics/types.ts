import type * as tf from '@tensorflow/tfjs';

/**
 * What every sample-quality metric needs from a network: features for
 * distribution distances (FD, KID) and, for classifier scores (IS, mIS, AM),
 * class logits. Modality-agnostic: an image classifier, Inception-v3, or an
 * audio classifier (DiffWave's evaluation uses a speech-command classifier)
 * all fit.
 */
export interface FeatureExtractor {
  /** Stable id recorded next to every metric (metrics are only comparable for the same extractor). */
  readonly id: string;
  /** Width of `features`. */
  readonly featureDim: number;
  /** Number of classes of `logits`, when the network classifies. */
  readonly numClasses?: number;
  /** Features [B, featureDim] of examples x [B, ...] in the modality's diffusion space. Does not dispose x. */
  features(x: tf.Tensor): tf.Tensor2D;
  /** Class logits [B, numClasses] (softmax gives p(y|x)). Does not dispose x. */
  logits?(x: tf.Tensor): tf.Tensor2D;
  /**
   * Features and logits from one forward pass, when the network can do both
   * at once (the default runs `features` and `logits` separately).
   */
  featuresAndLogits?(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D };
}

/** Features (and optionally log-probabilities) of n examples, as host float data. */
export interface FeatureSet {
  readonly n: number;
  readonly featureDim: number;
  /** Row-major [n, featureDim]. */
  readonly features: Float32Array;
  /** Row-major [n, numClasses] log p(y|x), when the extractor classifies. */
  readonly logProbs?: Float64Array;
  readonly numClasses?: number;
  /** Class ids of the examples, when the data source has labels (the classes samples were generated for come as `sampleLabels` instead). */
  readonly labels?: Int32Array;
}

/** A mean and a covariance (float64): the Gaussian summary FD compares, cacheable per reference set. */
export interface GaussianStats {
  readonly n: number;
  readonly dim: number;
  readonly mean: Float64Array;
  /** Row-major [dim, dim], unbiased (divides by n - 1, as numpy.cov). */
  readonly cov: Float64Array;
}

/** A value with its spread over subsets/splits (population std, as the reference implementations report). */
export interface ValueWithStd {
  readonly mean: number;
  readonly std: number;
  /** The value of each subset/split. */
  readonly values: readonly number[];
}
