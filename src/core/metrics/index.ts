/**
 * Sample-quality metrics, modality-agnostic: everything works on the
 * features and class log-probabilities of a `FeatureExtractor` (an image
 * classifier, Inception-v3, an audio classifier).
 */
export * from './types.js';
export * from './linalg.js';
export * from './frechet.js';
export * from './kid.js';
export * from './inception.js';
export * from './extract.js';
export * from './evaluate.js';
