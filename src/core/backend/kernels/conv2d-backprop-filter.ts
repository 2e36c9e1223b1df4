import * as tf from '@tensorflow/tfjs';
import { callKernel, crop, pair, release, requireNHWC, transpose, view, type TensorInfo, type WasmBackend, WASM } from './util.js';

/**
 * Geometry shared by the filter gradients: the forward conv read
 * x[oh*stride + k*dilation - padBefore] for output oh and tap k. Swapping
 * the roles of taps and outputs makes the filter gradient itself a
 * convolution over (oh, ow) with stride = forward dilation and dilation =
 * forward stride.
 */
export interface AxisPlan {
  /** Padding before, as the forward conv used it. */
  readonly before: number;
  /** Padding after, chosen so the gradient conv covers exactly the taps used (>= 0). */
  readonly after: number;
  /** Rows the gradient conv produces (>= taps; extra ones are cut off). */
  readonly produced: number;
}

export function planAxis(inSize: number, outSize: number, taps: number, stride: number, dilation: number, before: number): AxisPlan {
  // Input extent touched by taps 0..taps-1 and outputs 0..outSize-1.
  const needed = (taps - 1) * dilation + (outSize - 1) * stride + 1;
  const after = Math.max(0, needed - inSize - before);
  // A negative `after` would crop unused trailing input: instead keep it and
  // drop the surplus taps from the (small) result.
  const produced = Math.floor((inSize + before + after - ((outSize - 1) * stride + 1)) / dilation) + 1;
  return { before, after, produced };
}

export interface FilterGradGeometry {
  readonly strides: [number, number];
  readonly dilations: [number, number];
  readonly h: AxisPlan;
  readonly w: AxisPlan;
}

function checkDyShape(kernel: string, dy: TensorInfo, expected: number[]): void {
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`difflab wasm ${kernel}: dy shape [${dy.shape}] does not match the forward output [${expected}]`);
  }
}

export function filterGradGeometry(
  kernel: string,
  xShape: number[],
  dy: TensorInfo,
  filterShape: [number, number, number, number],
  attrs: { strides: unknown; pad: unknown; dilations?: unknown; dimRoundingMode?: unknown },
  depthwise: boolean,
): FilterGradGeometry {
  const strides = pair(attrs.strides as number | number[]);
  const dilations = pair(attrs.dilations as number | number[] | undefined);
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape,
    strides,
    dilations,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
    depthwise,
    'channelsLast',
  );
  checkDyShape(kernel, dy, info.outShape);
  return {
    strides,
    dilations,
    h: planAxis(info.inHeight, info.outHeight, info.filterHeight, strides[0], dilations[0], info.padInfo.top),
    w: planAxis(info.inWidth, info.outWidth, info.filterWidth, strides[1], dilations[1], info.padInfo.left),
  };
}

/** Zeros of a shape, for degenerate (empty) inputs the fast path cannot take. */
export function zeros(backend: WasmBackend, shape: number[]): TensorInfo {
  return callKernel(tf.Fill, backend, {}, { shape, value: 0, dtype: 'float32' });
}

/**
 * dW = sum over batch and output positions of x-patch (x) dy, computed as ONE
 * wasm Conv2D: x transposed to [Ci, H, W, B] is the "image" (batch = input
 * channels, channels = batch) and dy transposed to [OH, OW, B, Co] is the
 * "filter". XNNPACK then does the whole reduction as one GEMM-like pass
 * (ENGINE-FACTS: ~6x faster than im2col + matMul(transposeA)).
 */
export function conv2DBackpropFilterWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs['x'] as TensorInfo;
  const dy = args.inputs['dy'] as TensorInfo;
  const attrs = (args.attrs ?? {}) as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | number[] };
  requireNHWC('Conv2DBackpropFilter', attrs.dataFormat);
  const filterShape = attrs.filterShape as [number, number, number, number];
  const [kh, kw, ci, co] = filterShape;
  const g = filterGradGeometry('Conv2DBackpropFilter', x.shape, dy, filterShape, attrs, false);
  if (x.shape.some((d) => d === 0) || dy.shape.some((d) => d === 0)) return zeros(backend, [...filterShape]);

  const xt = transpose(backend, x, [3, 1, 2, 0]); // [Ci, H, W, B]
  const dyt = transpose(backend, dy, [1, 2, 0, 3]); // [OH, OW, B, Co]
  let grad: TensorInfo; // [Ci, produced h, produced w, Co]
  try {
    grad = callKernel(tf.Conv2D, backend, { x: xt, filter: dyt }, {
      strides: g.dilations,
      dilations: g.strides,
      pad: [[0, 0], [g.h.before, g.h.after], [g.w.before, g.w.after], [0, 0]],
      dataFormat: 'NHWC',
    });
  } finally {
    release(backend, xt, dyt);
  }
  if (g.h.produced !== kh || g.w.produced !== kw) {
    const cut = crop(backend, grad, [0, 0, 0, 0], [ci, kh, kw, co]);
    release(backend, grad);
    grad = cut;
  }
  const out = transpose(backend, grad, [1, 2, 0, 3]); // [KH, KW, Ci, Co]
  release(backend, grad);
  return view(out, [kh, kw, ci, co]);
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: WASM,
  kernelFunc: conv2DBackpropFilterWasm as unknown as tf.KernelFunc,
};
