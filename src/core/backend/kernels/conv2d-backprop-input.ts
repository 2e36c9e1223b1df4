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

/**
 * How strided (equal strides, no dilation) input gradients are computed:
 * 'phase' = one conv with the stride-phase filter + a transpose, 'upsample' =
 * conv of the zero-upsampled dy. Exposed so `npm run bench:kernels` can
 * compare them; the default is the faster one there.
 */
export const inputGradOptions: { stridedStrategy: 'phase' | 'upsample' } = { stridedStrategy: 'phase' };

/** Keeps tfjs-backend-wasm's own kernel for the cases the fast path does not cover. */
export function setOriginalConv2DBackpropInput(fn: tf.KernelFunc | undefined): void {
  originalBackpropInput = fn;
}

/** tfjs-backend-wasm's own Conv2DBackpropInput (for benchmarks and NCHW). */
export function getOriginalConv2DBackpropInput(): tf.KernelFunc | undefined {
  return originalBackpropInput;
}

/**
 * Stride-phase plan along one axis (dilation 1, stride s > 1). Input row
 * i = q*s + r only receives taps k = a_r + j*s from dy rows o = q + c_r - j,
 * where a_r = (r + pad) mod s and c_r = floor((r + pad) / s). All s phases
 * become output channels of ONE stride-1 conv over dy with T taps (padding
 * `before`/`after` on dy), and a transpose interleaves them back: about s^2
 * times less work than convolving the zero-upsampled dy.
 */
export interface PhaseAxis {
  readonly taps: number;
  readonly before: number;
  readonly after: number;
  /** Rows per phase; interleaving yields rows * s >= inSize (surplus cut). */
  readonly rows: number;
  /** Filter tap feeding phase r at combined tap t, or -1 for none. */
  tap(r: number, t: number): number;
}

export function phaseAxis(inSize: number, outSize: number, taps: number, stride: number, padBefore: number): PhaseAxis {
  const a: number[] = [];
  const c: number[] = [];
  const j: number[] = [];
  for (let r = 0; r < stride; r++) {
    a.push((r + padBefore) % stride);
    c.push(Math.floor((r + padBefore) / stride));
    j.push(Math.max(0, Math.ceil((taps - (a[r] as number)) / stride)));
  }
  let before = -Infinity;
  let top = -Infinity;
  for (let r = 0; r < stride; r++) {
    if ((j[r] as number) === 0) continue;
    before = Math.max(before, (j[r] as number) - 1 - (c[r] as number));
    top = Math.max(top, c[r] as number);
  }
  const rows = Math.ceil(inSize / stride);
  const combined = top + before + 1;
  return {
    taps: combined,
    before,
    after: rows - 1 + combined - before - outSize,
    rows,
    tap: (r, t) => {
      const jj = (c[r] as number) + before - t;
      return jj >= 0 && jj < (j[r] as number) ? (a[r] as number) + jj * stride : -1;
    },
  };
}

/**
 * dx for stride s > 1 (same in both axes, dilation 1) as one Conv2D with the
 * phase-combined filter [TH, TW, Co, s*s*Ci] and a depth-to-space transpose.
 */
function stridePhaseInputGrad(
  backend: WasmBackend,
  dy: TensorInfo,
  filter: TensorInfo,
  inShape: [number, number, number, number],
  s: number,
  padTop: number,
  padLeft: number,
): TensorInfo {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const [b, hin, win] = inShape;
  const h = phaseAxis(hin, dy.shape[1] as number, kh, s, padTop);
  const w = phaseAxis(win, dy.shape[2] as number, kw, s, padLeft);
  // Which filter tap (kh*KW + kw, or the appended zero tap) fills each slot
  // of the combined filter: a geometry table of TH*TW*s*s entries, not data.
  const zeroTap = kh * kw;
  const index = new Int32Array(h.taps * w.taps * s * s);
  let n = 0;
  for (let th = 0; th < h.taps; th++)
    for (let tw = 0; tw < w.taps; tw++)
      for (let rh = 0; rh < s; rh++)
        for (let rw = 0; rw < s; rw++) {
          const y = h.tap(rh, th);
          const x = w.tap(rw, tw);
          index[n++] = y < 0 || x < 0 ? zeroTap : y * kw + x;
        }
  const withZero = callKernel(tf.PadV2, backend, { x: view(filter, [kh * kw, ci * co]) }, { paddings: [[0, 1], [0, 0]], constantValue: 0 });
  const indices = backend.makeOutput([index.length], 'int32', undefined, index);
  const gathered = callKernel(tf.GatherV2, backend, { x: withZero, indices }, { axis: 0, batchDims: 0 });
  release(backend, withZero, indices);
  // [TH, TW, s, s, Ci, Co] -> [TH, TW, Co, s, s, Ci]: output channel (rh, rw, ci).
  const combined = transpose(backend, view(gathered, [h.taps, w.taps, s, s, ci, co]), [0, 1, 5, 2, 3, 4]);
  release(backend, gathered);

  const cropped = cropForNegativePads(backend, dy, h, w);
  let phases: TensorInfo;
  try {
    phases = callKernel(tf.Conv2D, backend, { x: cropped.src, filter: view(combined, [h.taps, w.taps, co, s * s * ci]) }, {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [[0, 0], cropped.pads[0], cropped.pads[1], [0, 0]],
      dataFormat: 'NHWC',
    });
  } finally {
    release(backend, combined);
    if (cropped.owned) release(backend, cropped.src);
  }
  // Interleave the phases: [B*Qh, Qw, rh, (rw, Ci)] -> [B*Qh, rh, Qw, (rw, Ci)] is
  // [B, Qh*s, Qw*s, Ci]. A Transpose with rows of s*Ci floats is ~100x faster
  // than wasm's DepthToSpace kernel here (measured: 0.3 vs 40 ms for 1.6 M floats).
  const dx4 = transpose(backend, view(phases, [b * h.rows, w.rows, s, s * ci]), [0, 2, 1, 3]);
  release(backend, phases);
  const dx = view(dx4, [b, h.rows * s, w.rows * s, ci]);
  if (h.rows * s === hin && w.rows * s === win) return dx;
  const cut = crop(backend, dx, [0, 0, 0, 0], [b, hin, win, ci]);
  release(backend, dx);
  return cut;
}

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
  if (originalBackpropInput && undilated && nchw) {
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

  if (strided && undilated && strides[0] === strides[1] && inputGradOptions.stridedStrategy === 'phase') {
    return stridePhaseInputGrad(backend, dy, filter, inputShape, strides[0], info.padInfo.top, info.padInfo.left);
  }

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
