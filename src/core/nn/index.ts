/**
 * Modality-agnostic building blocks shared by the image, audio and text
 * networks: a variable-owning module system, a network base class, layers,
 * noise embeddings and attention. All channels-last; all initialization from a difflab Rng.
 */
export * from './module.js';
export * from './init.js';
export * from './layers.js';
export * from './embeddings.js';
export * from './attention.js';
export * from './network.js';
