import * as tf from '@tensorflow/tfjs';
import { callKernel, release, view, type TensorInfo, type WasmBackend, WASM } from './util.js';

/**
 * UnsortedSegmentSum as one wasm ScatterNd (a C++ scatter-add: O(N*D), versus
 * the cpu backend's numSegments passes of mask-multiply-sum or a one-hot
 * matMul's O(N*numSegments*D)). tf.gather's gradient calls it with
 * numSegments = rows of the embedding table.
 *
 * Semantics follow TensorFlow: segmentIds may have any rank; their shape is
 * the leading part of x's shape and the output is [numSegments, ...rest].
 * Ids outside [0, numSegments) are dropped.
 */
export function unsortedSegmentSumWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs['x'] as TensorInfo;
  const segmentIds = args.inputs['segmentIds'] as TensorInfo;
  const numSegments = (args.attrs ?? {})['numSegments'] as number;
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`difflab wasm UnsortedSegmentSum: numSegments must be a non-negative integer, got ${numSegments}`);
  }
  const idsRank = segmentIds.shape.length;
  if (segmentIds.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `difflab wasm UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
    );
  }
  const n = tf.util.sizeFromShape(segmentIds.shape);
  const rest = x.shape.slice(idsRank);
  const d = tf.util.sizeFromShape(rest);
  const outShape = [numSegments, ...rest];
  if (n === 0 || d === 0 || numSegments === 0) {
    return callKernel(tf.Fill, backend, {}, { shape: outShape, value: 0, dtype: x.dtype });
  }

  let ids = view(segmentIds, [n, 1]);
  if (segmentIds.dtype !== 'int32') {
    ids = callKernel(tf.Cast, backend, { x: ids }, { dtype: 'int32' });
  }
  const ownsIds = ids.dataId !== segmentIds.dataId;
  // Checking the range costs two reductions over the ids (not the data); only
  // when some id is out of range are they redirected to a spare row.
  const lo = callKernel(tf.Min, backend, { x: view(ids, [n]) }, { axis: [0], keepDims: false });
  const hi = callKernel(tf.Max, backend, { x: view(ids, [n]) }, { axis: [0], keepDims: false });
  const inRange = (backend.readSync(lo.dataId) as Int32Array)[0]! >= 0 && (backend.readSync(hi.dataId) as Int32Array)[0]! < numSegments;
  release(backend, lo, hi);

  if (inRange) {
    const out = callKernel(tf.ScatterNd, backend, { indices: ids, updates: view(x, [n, d]) }, { shape: [numSegments, d] });
    if (ownsIds) release(backend, ids);
    return view(out, outShape);
  }
  const zero = callKernel(tf.Fill, backend, {}, { shape: [], value: 0, dtype: 'int32' });
  const spare = callKernel(tf.Fill, backend, {}, { shape: [], value: numSegments, dtype: 'int32' });
  const ge = callKernel(tf.GreaterEqual, backend, { a: ids, b: zero });
  const lt = callKernel(tf.Less, backend, { a: ids, b: spare });
  const valid = callKernel(tf.LogicalAnd, backend, { a: ge, b: lt });
  const spareIds = callKernel(tf.Fill, backend, {}, { shape: [n, 1], value: numSegments, dtype: 'int32' });
  const safe = callKernel(tf.Select, backend, { condition: valid, t: ids, e: spareIds });
  release(backend, zero, spare, ge, lt, valid, spareIds);
  if (ownsIds) release(backend, ids);
  const withSpare = callKernel(tf.ScatterNd, backend, { indices: safe, updates: view(x, [n, d]) }, { shape: [numSegments + 1, d] });
  release(backend, safe);
  const out = callKernel(tf.Slice, backend, { x: withSpare }, { begin: [0, 0], size: [numSegments, d] });
  release(backend, withSpare);
  return view(out, outShape);
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: WASM,
  kernelFunc: unsortedSegmentSumWasm as unknown as tf.KernelFunc,
};
