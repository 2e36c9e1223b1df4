import * as tf from '@tensorflow/tfjs';
import { zeros } from './conv2d-backprop-filter.js';
import { callKernel, crop, pair, release, requireNHWC, transpose, view, type TensorInfo, type WasmBackend, WASM } from './util.js';

/**
 * Input gradients as plain (fast, XNNPACK) convolutions. The forward conv read
 * x[o*stride + k*dilation - padBefore]; the adjoint is a stride-1 convolution
 * of dy, zero-upsampled by the stride, with the spatially flipped filter.
 */

export interface InputGradAxis {
  /** Padding of the upsampled dy before / after (may be negative: crop). */
  readonly before: number;
  readonly after: number;
}

/**
 * Paddings of the upsampled dy (length `upLen`, with dy[o] at row o*stride)
 * so that a stride-1 conv with the flipped, dilated filter yields `inSize` rows.
 */
export function inputGradAxis(inSize: number, upLen: number, taps: number, dilation: number, padBefore: number): InputGradAxis {
  const eff = (taps - 1) * dilation + 1;
  const before = eff - 1 - padBefore;
  // Output rows = upLen + before + after - eff + 1 must equal inSize.
  const after = inSize + eff - 1 - upLen - before;
  return { before, after };
}

/**
 * dy [B, OH, OW, C] -> [B, OH*sh, OW*sw, C] with dy[o] at row o*s and zeros
 * elsewhere (one PadV2 on a rank-5 view). The trailing s-1 zero rows act as
 * part of the bottom padding, so callers pass upLen = OH*sh.
 */
export function zeroUpsample(backend: WasmBackend, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  const [b, oh, ow, c] = dy.shape as [number, number, number, number];
  if (sh === 1 && sw === 1) throw new Error('zeroUpsample: stride 1 needs no upsampling');
  const padded = callKernel(tf.PadV2, backend, { x: view(dy, [b * oh, 1, ow, 1, c]) }, {
    paddings: [[0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
    constantValue: 0,
  });
  return view(padded, [b, oh * sh, ow * sw, c]);
}

/**
 * Pads (or, for negative amounts, crops) rows/cols of a 4-D NHWC tensor so
 * that the following conv can take non-negative explicit paddings. Returns
 * the source to use and the remaining (non-negative) paddings; `owned` says
 * whether the caller must release the returned source.
 */
export function cropForNegativePads(
  backend: WasmBackend,
  src: TensorInfo,
  h: InputGradAxis,
  w: InputGradAxis,
): { src: TensorInfo; owned: boolean; pads: [[number, number], [number, number]] } {
  const cropTop = Math.max(0, -h.before);
  const cropBottom = Math.max(0, -h.after);
  const cropLeft = Math.max(0, -w.before);
  const cropRight = Math.max(0, -w.after);
  const pads: [[number, number], [number, number]] = [
    [Math.max(0, h.before), Math.max(0, h.after)],
    [Math.max(0, w.before), Math.max(0, w.after)],
  ];
  if (cropTop + cropBottom + cropLeft + cropRight === 0) return { src, owned: false, pads };
  const [b, hh, ww, c] = src.shape as [number, number, number, number];
  const out = crop(backend, src, [0, cropTop, cropLeft, 0], [b, hh - cropTop - cropBottom, ww - cropLeft - cropRight, c]);
  return { src: out, owned: true, pads };
}

let originalBackpropInput: tf.KernelFunc | undefined;

/** Keeps tfjs-backend-wasm's own kernel for the cases the fast path does not cover. */
export function setOriginalConv2DBackpropInput(fn: tf.KernelFunc | undefined): void {
  originalBackpropInput = fn;
}

/** tfjs-backend-wasm's own Conv2DBackpropInput (for benchmarks and NCHW). */
export function getOriginalConv2DBackpropInput(): tf.KernelFunc | undefined {
  return originalBackpropInput;
}

/**
 * Whether strided input gradients use zero-upsampling + conv. Measured with
 * `npm run bench:kernels` (batch 32, 28x28 -> 14x14, 64 -> 64, 3x3): the
 * upsampled conv wastes (stride^2 - 1)/stride^2 of its multiplies but still
 * beats the original scalar C++ loop; see bench/results/kernels.json.
 */
export const STRIDED_INPUT_GRAD_VIA_CONV = true;

export function conv2DBackpropInputWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const dy = args.inputs['dy'] as TensorInfo;
  const filter = args.inputs['filter'] as TensorInfo;
  const attrs = (args.attrs ?? {}) as unknown as tf.Conv2DBackpropInputAttrs & { dilations?: number | number[] };
  const strides = pair(attrs.strides);
  const dilations = pair(attrs.dilations);
  const undilated = dilations[0] === 1 && dilations[1] === 1;
  const nchw = attrs.dataFormat === 'NCHW';
  const strided = strides[0] > 1 || strides[1] > 1;
  if (originalBackpropInput && undilated && (nchw || (strided && !STRIDED_INPUT_GRAD_VIA_CONV))) {
    return originalBackpropInput(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  }
  requireNHWC('Conv2DBackpropInput', attrs.dataFormat);
  const inputShape = attrs.inputShape as [number, number, number, number];
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== info.outShape[i])) {
    throw new Error(`difflab wasm Conv2DBackpropInput: dy shape [${dy.shape}] does not match [${info.outShape}]`);
  }
  if (inputShape.some((d) => d === 0) || dy.shape.some((d) => d === 0)) return zeros(backend, [...inputShape]);

  // Flipped filter [KH, KW, Co, Ci] (small: filter-sized work only).
  const rev = callKernel(tf.Reverse, backend, { x: filter }, { dims: [0, 1] });
  const wt = transpose(backend, rev, [0, 1, 3, 2]);
  release(backend, rev);

  const up = strided ? zeroUpsample(backend, dy, strides[0], strides[1]) : dy;
  const h = inputGradAxis(info.inHeight, up.shape[1] as number, info.filterHeight, dilations[0], info.padInfo.top);
  const w = inputGradAxis(info.inWidth, up.shape[2] as number, info.filterWidth, dilations[1], info.padInfo.left);
  const cropped = cropForNegativePads(backend, up, h, w);
  if (cropped.owned && up !== dy) release(backend, up);
  try {
    return callKernel(tf.Conv2D, backend, { x: cropped.src, filter: wt }, {
      strides: [1, 1],
      dilations,
      pad: [[0, 0], cropped.pads[0], cropped.pads[1], [0, 0]],
      dataFormat: 'NHWC',
    });
  } finally {
    release(backend, wt);
    if (cropped.owned) release(backend, cropped.src);
    else if (up !== dy) release(backend, up);
  }
}

export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: WASM,
  kernelFunc: conv2DBackpropInputWasm as unknown as tf.KernelFunc,
};
