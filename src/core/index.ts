/** The modality-agnostic core. Never imports from src/plugins. */
export * from './types.js';
export * from './random.js';
export * from './plugin.js';
export * from './backend/select.js';
export { registerWasmTrainingKernels } from './backend/wasm-kernels.js';
export * from './config/load.js';
