/** The modality-agnostic core. Never imports from src/plugins. */
export * from './types.js';
export * from './random.js';
export * from './plugin.js';
export * from './backend/select.js';
export { registerWasmTrainingKernels } from './backend/wasm-kernels.js';
export * from './config/load.js';
export * from './config/diffusion.js';
export * from './schedules/index.js';
export * from './parametrizations.js';
export * from './objectives.js';
export * from './likelihood.js';
export * from './io/safetensors.js';
export * from './io/atomic.js';
export * from './training/optim.js';
export * from './analytic.js';
export * from './samplers/index.js';
export * from './guidance.js';
export * from './parallel/index.js';
