// Owned by the wasm-kernels work: registers the training kernels tfjs-backend-wasm lacks.
export function registerWasmTrainingKernels(): string[] {
  return [];
}
