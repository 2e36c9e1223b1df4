/**
 * difflab: train, sample and evaluate diffusion models in TypeScript.
 * The public API: the modality-agnostic core, the composition root and the
 * built-in plugins.
 */
export * from './core/index.js';
export { createDifflab, type CreateDifflabOptions, type Difflab } from './container.js';
export { builtinPlugins } from './plugins/index.js';
