/**
 * difflab's Fashion-MNIST classifier (the feature network of the image
 * metrics), its training command, and adapters for other networks
 * (Inception-v3 in tfjs format) to compute the standard FID/IS.
 */
export * from './network.js';
export * from './factory.js';
export * from './accuracy.js';
export * from './extractor.js';
export * from './external.js';
export * from './train.js';
export * from './data.js';
export * from './floors.js';
