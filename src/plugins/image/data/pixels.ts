/**
 * Pixel-buffer helpers on uint8 HWC images: channel conversion and an
 * antialiased resampler. Used by the IDX and CIFAR readers (folders are
 * resized by sharp while decoding).
 */

/** One image's channels converted: 1 -> 3 replicates, 3/4 -> 1 is BT.601 luma, 2/4 drop alpha. */
export function convertChannels(src: Uint8Array, pixels: number, from: number, to: number): Uint8Array {
  if (from === to) return src;
  if (src.length !== pixels * from) {
    throw new Error(`convertChannels: buffer of ${src.length} bytes is not ${pixels} pixels x ${from} channels`);
  }
  const out = new Uint8Array(pixels * to);
  for (let p = 0; p < pixels; p++) {
    const s = p * from;
    let r: number;
    let g: number;
    let b: number;
    if (from <= 2) {
      r = g = b = src[s]!;
    } else {
      r = src[s]!;
      g = src[s + 1]!;
      b = src[s + 2]!;
    }
    if (to === 1) {
      out[p] = from <= 2 ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    } else if (to === 3) {
      out[3 * p] = r;
      out[3 * p + 1] = g;
      out[3 * p + 2] = b;
    } else {
      throw new Error(`convertChannels: cannot convert to ${to} channels (1 or 3)`);
    }
  }
  return out;
}

interface AxisWeights {
  /** First input index of each output sample. */
  readonly start: Int32Array;
  /** Number of taps of each output sample. */
  readonly count: Int32Array;
  /** Normalized weights, `maxTaps` per output sample. */
  readonly weights: Float32Array;
  readonly maxTaps: number;
}

/** Triangle-filter weights (bilinear when upsampling, area-like antialiasing when downsampling). */
function axisWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const maxTaps = Math.ceil(support) * 2 + 2;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support));
    const hi = Math.min(inSize, Math.ceil(centre + support));
    let total = 0;
    let n = 0;
    for (let j = lo; j < hi && n < maxTaps; j++, n++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      weights[i * maxTaps + n] = w;
      total += w;
    }
    if (total === 0) {
      // Can only happen at the very edge: take the nearest pixel.
      weights[i * maxTaps] = 1;
      total = 1;
      n = 1;
    }
    for (let k = 0; k < n; k++) weights[i * maxTaps + k]! /= total;
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, maxTaps };
}

/** A resampler for many images of the same shape (weights computed once). */
export function createResizer(
  inH: number,
  inW: number,
  channels: number,
  outH: number,
  outW: number,
): (src: Uint8Array, out: Uint8Array, outOffset: number) => void {
  const wx = axisWeights(inW, outW);
  const wy = axisWeights(inH, outH);
  const tmp = new Float32Array(inH * outW * channels);
  return (src, out, outOffset) => {
    // Horizontal pass: [inH, inW, C] -> [inH, outW, C].
    for (let y = 0; y < inH; y++) {
      for (let x = 0; x < outW; x++) {
        const s = wx.start[x]!;
        const n = wx.count[x]!;
        for (let c = 0; c < channels; c++) {
          let acc = 0;
          for (let k = 0; k < n; k++) acc += wx.weights[x * wx.maxTaps + k]! * src[(y * inW + s + k) * channels + c]!;
          tmp[(y * outW + x) * channels + c] = acc;
        }
      }
    }
    // Vertical pass: [inH, outW, C] -> [outH, outW, C].
    for (let y = 0; y < outH; y++) {
      const s = wy.start[y]!;
      const n = wy.count[y]!;
      for (let x = 0; x < outW; x++) {
        for (let c = 0; c < channels; c++) {
          let acc = 0;
          for (let k = 0; k < n; k++) acc += wy.weights[y * wy.maxTaps + k]! * tmp[((s + k) * outW + x) * channels + c]!;
          out[outOffset + (y * outW + x) * channels + c] = Math.min(255, Math.max(0, Math.round(acc)));
        }
      }
    }
  };
}

/**
 * Brings `count` uint8 HWC images of one shape to [outH, outW, outC],
 * resampling at the smaller of the two channel counts (grey to RGB resamples
 * the grey image, then replicates). Returns `pixels` itself when nothing changes.
 */
export function conformImages(
  pixels: Uint8Array,
  count: number,
  shape: readonly [number, number, number],
  out: readonly [number, number, number],
): Uint8Array {
  const [h, w, c] = shape;
  const [oh, ow, oc] = out;
  if (h === oh && w === ow && c === oc) return pixels;
  const inStride = h * w * c;
  const outStride = oh * ow * oc;
  const result = new Uint8Array(count * outStride);
  if (h === oh && w === ow) {
    for (let i = 0; i < count; i++) result.set(convertChannels(pixels.subarray(i * inStride, (i + 1) * inStride), h * w, c, oc), i * outStride);
    return result;
  }
  const mid = Math.min(c, oc);
  const resize = createResizer(h, w, mid, oh, ow);
  const resized = new Uint8Array(oh * ow * mid);
  for (let i = 0; i < count; i++) {
    const src = pixels.subarray(i * inStride, (i + 1) * inStride);
    if (oc <= c) {
      resize(convertChannels(src, h * w, c, oc), result, i * outStride);
    } else {
      resize(src, resized, 0);
      result.set(convertChannels(resized, oh * ow, c, oc), i * outStride);
    }
  }
  return result;
}
