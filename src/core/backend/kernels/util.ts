import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * Helpers for composing wasm kernels out of other wasm kernels. Kernel
 * functions run inside the engine with raw TensorInfos: anything we create
 * here is invisible to tf.memory() bookkeeping, so every intermediate must be
 * released with `backend.disposeData` or wasm heap memory leaks.
 */
export type TensorInfo = tf.TensorInfo;

/** The few members of the wasm backend the kernels use. */
export type WasmBackend = BackendWasm;

export const WASM = 'wasm';

/** Runs another kernel registered for wasm; throws when it is missing. */
export function callKernel(
  name: string,
  backend: WasmBackend,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown> = {},
): TensorInfo {
  const config = tf.getKernel(name, WASM);
  if (!config) throw new Error(`difflab wasm kernels: kernel '${name}' is not registered for wasm`);
  const out = config.kernelFunc({
    inputs,
    backend,
    attrs: attrs as tf.NamedAttrMap,
  });
  if (Array.isArray(out)) throw new Error(`difflab wasm kernels: '${name}' returned several outputs`);
  return out as TensorInfo;
}

/** Releases intermediates created with callKernel. */
export function release(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/**
 * A view with another shape on the same data. No refcount change: use it
 * only for values passed on immediately (inputs to another kernel) or for an
 * owned intermediate that is released once.
 */
export function view(info: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

export function transpose(backend: WasmBackend, x: TensorInfo, perm: number[]): TensorInfo {
  return callKernel(tf.Transpose, backend, { x }, { perm });
}

/** Applies `fn` to an owned intermediate, then releases it. */
export function consume(backend: WasmBackend, x: TensorInfo, fn: (x: TensorInfo) => TensorInfo): TensorInfo {
  try {
    return fn(x);
  } finally {
    release(backend, x);
  }
}

export function pair(v: number | [number, number] | number[] | undefined, dflt = 1): [number, number] {
  if (v === undefined || v === null) return [dflt, dflt];
  if (typeof v === 'number') return [v, v];
  return [v[0] ?? dflt, v[1] ?? dflt];
}

/** Throws a clear error for NCHW, which the fast paths do not handle. */
export function requireNHWC(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(
      `difflab wasm ${kernel}: dataFormat '${dataFormat}' is not supported on wasm; use 'NHWC' (channels last)`,
    );
  }
}

/**
 * A box of x. Uses StridedSlice, whose general case is a C++ kernel; wasm's
 * Slice copies the whole input to JS and loops there.
 */
export function crop(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  return callKernel(tf.StridedSlice, backend, { x }, {
    begin,
    end: begin.map((b, i) => b + (size[i] as number)),
    strides: begin.map(() => 1),
    beginMask: 0,
    endMask: 0,
    ellipsisMask: 0,
    newAxisMask: 0,
    shrinkAxisMask: 0,
  });
}
