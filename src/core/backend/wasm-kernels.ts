import * as tf from '@tensorflow/tfjs';
import { registerConvGradients, setDilationAwareBackendCheck } from './kernels/conv-gradients.js';
import { conv2DBackpropFilterConfig } from './kernels/conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig, setOriginalConv2DBackpropInput } from './kernels/conv2d-backprop-input.js';
import { depthwiseBackpropFilterConfig, depthwiseBackpropInputConfig } from './kernels/depthwise-backprop.js';
import { unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.js';

/**
 * Kernels difflab adds to (or, for Conv2DBackpropInput, replaces in)
 * tfjs-backend-wasm so that training runs on it: tfjs never falls back to
 * another backend for a missing kernel. All are compositions of wasm's fast
 * C++/XNNPACK kernels (Conv2D, DepthwiseConv2dNative, Transpose, PadV2,
 * ScatterNd, ...); see src/core/backend/kernels/.
 */
const KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  unsortedSegmentSumConfig,
];
const OURS = new Set<tf.KernelFunc>(KERNELS.map((c) => c.kernelFunc));

/** Whether the active backend runs difflab's dilation-aware conv gradient kernels. */
function activeBackendHandlesDilation(): boolean {
  return (
    tf.getBackend() === 'wasm' &&
    tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')?.kernelFunc === conv2DBackpropFilterConfig.kernelFunc &&
    tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc === conv2DBackpropInputConfig.kernelFunc
  );
}

/**
 * Registers the kernels; idempotent (a second call changes nothing). A kernel
 * the wasm backend already has is unregistered first (so tfjs prints no
 * "already registered" warning); tfjs's own Conv2DBackpropInput is kept for
 * the NCHW case. Also installs Conv2D / DepthwiseConv2dNative gradients that
 * support dilations (global, correct on every backend: see conv-gradients.ts).
 * Returns the names of the kernels difflab provides on wasm.
 */
export function registerWasmTrainingKernels(): string[] {
  // Registering before tfjs-backend-wasm would let its later import overwrite
  // our Conv2DBackpropInput (with a warning) and leave nothing to build on.
  if (!tf.getKernel(tf.Conv2D, 'wasm')) {
    throw new Error('registerWasmTrainingKernels: import @tensorflow/tfjs-backend-wasm first (its kernels are the building blocks)');
  }
  const names: string[] = [];
  for (const config of KERNELS) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing?.kernelFunc !== config.kernelFunc) {
      if (existing) {
        if (config.kernelName === tf.Conv2DBackpropInput && !OURS.has(existing.kernelFunc)) {
          setOriginalConv2DBackpropInput(existing.kernelFunc);
        }
        tf.unregisterKernel(config.kernelName, config.backendName);
      }
      tf.registerKernel(config);
    }
    names.push(config.kernelName);
  }
  setDilationAwareBackendCheck(activeBackendHandlesDilation);
  registerConvGradients();
  return names;
}
