/**
 * difflab's FSDD spoken-digit classifier: the feature network of the audio
 * metrics (FD, KID on its features; IS, mIS, AM on its softmax), as DiffWave
 * (Kong et al. 2021) scores SC09 with a speech-command classifier, and its
 * training command (`npm run train:digit-classifier`).
 */
export * from './frontend.js';
export * from './network.js';
export * from './factory.js';
export * from './data.js';
export * from './accuracy.js';
export * from './extractor.js';
export * from './floors.js';
export * from './train.js';
