import * as tf from '@tensorflow/tfjs';
import { filterGradGeometry, zeros } from './conv2d-backprop-filter.js';
import { cropForNegativePads, inputGradAxis, zeroUpsample } from './conv2d-backprop-input.js';
import { callKernel, crop, pair, release, requireNHWC, transpose, view, type TensorInfo, type WasmBackend, WASM } from './util.js';

/**
 * Depthwise conv gradients on wasm, built on the XNNPACK DepthwiseConv2dNative
 * kernel (channel multiplier M: filter [KH, KW, C, M], output channel c*M+m).
 */

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

interface DepthwiseGradAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: string;
}

/**
 * dW[kh, kw, c, m] = sum_{b, oh, ow} x[b, oh*s + kh*d - pad, ., c] dy[b, oh, ow, c*M + m].
 * With batch folded into channels (x -> [1, H, W, B*C], dy -> [OH, OW, B*C, M])
 * this is ONE depthwise conv (stride = forward dilation, dilation = forward
 * stride) followed by a sum over the batch.
 */
export function depthwiseBackpropFilterWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs['x'] as TensorInfo;
  const dy = args.inputs['dy'] as TensorInfo;
  const attrs = (args.attrs ?? {}) as unknown as DepthwiseGradAttrs & { filterShape: number[] };
  requireNHWC('DepthwiseConv2dNativeBackpropFilter', attrs.dataFormat);
  const filterShape = attrs.filterShape as [number, number, number, number];
  const [kh, kw, c, m] = filterShape;
  const g = filterGradGeometry('DepthwiseConv2dNativeBackpropFilter', x.shape, dy, filterShape, attrs, true);
  if (x.shape.some((d) => d === 0) || dy.shape.some((d) => d === 0)) return zeros(backend, [...filterShape]);
  const [b, hh, ww] = x.shape as [number, number, number, number];
  const [, oh, ow] = dy.shape as [number, number, number, number];

  const xt = transpose(backend, x, [1, 2, 0, 3]); // [H, W, B, C]
  const dyt = transpose(backend, dy, [1, 2, 0, 3]); // [OH, OW, B, C*M]
  let perBatch: TensorInfo; // [1, produced h, produced w, B*C*M]
  try {
    perBatch = callKernel(
      tf.DepthwiseConv2dNative,
      backend,
      { x: view(xt, [1, hh, ww, b * c]), filter: view(dyt, [oh, ow, b * c, m]) },
      {
        strides: g.dilations,
        dilations: g.strides,
        pad: [[0, 0], [g.h.before, g.h.after], [g.w.before, g.w.after], [0, 0]],
        dataFormat: 'NHWC',
      },
    );
  } finally {
    release(backend, xt, dyt);
  }
  if (g.h.produced !== kh || g.w.produced !== kw) {
    const cut = crop(backend, perBatch, [0, 0, 0, 0], [1, kh, kw, b * c * m]);
    release(backend, perBatch);
    perBatch = cut;
  }
  if (b === 1) return view(perBatch, [kh, kw, c, m]);
  const summed = callKernel(tf.Sum, backend, { x: view(perBatch, [kh, kw, b, c * m]) }, { axis: [2], keepDims: false });
  release(backend, perBatch);
  return view(summed, [kh, kw, c, m]);
}

/**
 * dx = depthwise conv of dy (zero-upsampled by the stride) with the flipped
 * filter seen as [KH, KW, C*M, 1], then a sum over the M multiplier outputs.
 */
export function depthwiseBackpropInputWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const dy = args.inputs['dy'] as TensorInfo;
  const filter = args.inputs['filter'] as TensorInfo;
  const attrs = (args.attrs ?? {}) as unknown as DepthwiseGradAttrs & { inputShape: number[] };
  requireNHWC('DepthwiseConv2dNativeBackpropInput', attrs.dataFormat);
  const inputShape = attrs.inputShape as [number, number, number, number];
  const strides = pair(attrs.strides);
  const dilations = pair(attrs.dilations);
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
    'channelsLast',
  );
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== info.outShape[i])) {
    throw new Error(`difflab wasm DepthwiseConv2dNativeBackpropInput: dy shape [${dy.shape}] does not match [${info.outShape}]`);
  }
  if (inputShape.some((d) => d === 0) || dy.shape.some((d) => d === 0)) return zeros(backend, [...inputShape]);
  const [kh, kw, c, m] = filter.shape as [number, number, number, number];
  const [b, hh, ww] = inputShape;

  const flipped = callKernel(tf.Reverse, backend, { x: filter }, { dims: [0, 1] });
  const strided = strides[0] > 1 || strides[1] > 1;
  const up = strided ? zeroUpsample(backend, dy, strides[0], strides[1]) : dy;
  const h = inputGradAxis(hh, up.shape[1] as number, kh, dilations[0], info.padInfo.top);
  const w = inputGradAxis(ww, up.shape[2] as number, kw, dilations[1], info.padInfo.left);
  const cropped = cropForNegativePads(backend, up, h, w);
  if (cropped.owned && up !== dy) release(backend, up);
  let perMultiplier: TensorInfo; // [B, H, W, C*M]
  try {
    perMultiplier = callKernel(
      tf.DepthwiseConv2dNative,
      backend,
      { x: cropped.src, filter: view(flipped, [kh, kw, c * m, 1]) },
      { strides: [1, 1], dilations, pad: [[0, 0], cropped.pads[0], cropped.pads[1], [0, 0]], dataFormat: 'NHWC' },
    );
  } finally {
    release(backend, flipped);
    if (cropped.owned) release(backend, cropped.src);
    else if (up !== dy) release(backend, up);
  }
  if (m === 1) return perMultiplier;
  const summed = callKernel(tf.Sum, backend, { x: view(perMultiplier, [b, hh, ww, c, m]) }, { axis: [4], keepDims: false });
  release(backend, perMultiplier);
  return summed;
}

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: WASM,
  kernelFunc: depthwiseBackpropFilterWasm as unknown as tf.KernelFunc,
};

export const depthwiseBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: WASM,
  kernelFunc: depthwiseBackpropInputWasm as unknown as tf.KernelFunc,
};
