import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterConfig } from './kernels/conv2d-backprop-filter.js';

/**
 * Registers the kernels tfjs-backend-wasm lacks for training (tfjs never
 * falls back to another backend for a missing kernel). Idempotent: kernels
 * already registered are left alone. Returns the names registered or
 * replaced by this call's effect (the full list on every call).
 */
const ADDED: tf.KernelConfig[] = [conv2DBackpropFilterConfig];

export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const config of ADDED) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing?.kernelFunc !== config.kernelFunc) {
      if (existing) tf.unregisterKernel(config.kernelName, config.backendName);
      tf.registerKernel(config);
    }
    names.push(config.kernelName);
  }
  return names;
}
