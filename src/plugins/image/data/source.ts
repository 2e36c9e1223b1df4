import * as tf from '@tensorflow/tfjs';
import type { DataSource, ExampleBatch } from '../../../core/plugin.js';
import type { Rng } from '../../../core/random.js';

/** Bad image data: the message is one line and names the file (and record) at fault. */
export class ImageDataError extends Error {
  override readonly name = 'ImageDataError';
}

/** First line of an error's message (sharp and zlib messages can span lines). */
export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? '').trim() || 'unknown error';
}

/** An image data source: the examples live decoded in one compact uint8 HWC cache. */
export interface ImageDataSource extends DataSource {
  readonly exampleShape: readonly [number, number, number];
  /** Class names by label id (folder sub-folder names, CIFAR-10 names), when known. */
  readonly classNames?: readonly string[];
  /** The cache: `size` images of H*W*C bytes each, HWC order. Do not modify. */
  readonly pixels: Uint8Array;
  /** Label id of each example, when labelled. */
  readonly labelIds?: Int32Array;
  /** Files skipped as unreadable (skip_bad_files). */
  readonly skippedFiles: number;
  /** Where the data came from, e.g. "train-images-idx3-ubyte.gz (60000 images 28x28x1)". */
  readonly description: string;
}

export interface ImageDataSourceInit {
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly labels?: Int32Array;
  readonly numClasses?: number;
  readonly classNames?: readonly string[];
  readonly randomFlip: boolean;
  readonly skippedFiles?: number;
  readonly description: string;
}

/** uint8 -> [-1, 1]. */
const TO_UNIT = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = v / 127.5 - 1;
  return t;
})();

/**
 * Wraps a uint8 HWC cache as a DataSource. `batch(indices, rng)` returns
 * x float32 [B, H, W, C] in [-1, 1] and labels int32 [B]; with `randomFlip`
 * each example is mirrored left-right when `rng.uniform() < 0.5` (one draw per
 * example, in order), so a batch is reproducible from the rng's seed.
 */
export function createImageDataSource(init: ImageDataSourceInit): ImageDataSource {
  const { pixels, height: h, width: w, channels: c, labels, randomFlip, description } = init;
  const stride = h * w * c;
  if (!(h > 0 && w > 0 && c > 0) || stride === 0 || pixels.length % stride !== 0) {
    throw new ImageDataError(`${description}: cache of ${pixels.length} bytes is not a whole number of ${h}x${w}x${c} images`);
  }
  const size = pixels.length / stride;
  if (size === 0) throw new ImageDataError(`${description}: no examples`);
  if (labels && labels.length !== size) {
    throw new ImageDataError(`${description}: ${labels.length} labels for ${size} images`);
  }
  const rowStride = w * c;

  const batch = (indices: readonly number[], rng: Rng): ExampleBatch => {
    const b = indices.length;
    const x = new Float32Array(b * stride);
    const y = labels ? new Int32Array(b) : undefined;
    for (let j = 0; j < b; j++) {
      const idx = indices[j]!;
      if (!Number.isInteger(idx) || idx < 0 || idx >= size) {
        throw new RangeError(`${description}: batch index ${idx} (position ${j}) is out of range [0, ${size})`);
      }
      const src = idx * stride;
      const dst = j * stride;
      const flip = randomFlip && rng.uniform() < 0.5;
      if (!flip) {
        for (let k = 0; k < stride; k++) x[dst + k] = TO_UNIT[pixels[src + k]!]!;
      } else {
        for (let row = 0; row < h; row++) {
          const rs = src + row * rowStride;
          const rd = dst + row * rowStride;
          for (let col = 0; col < w; col++) {
            const from = rs + (w - 1 - col) * c;
            const to = rd + col * c;
            for (let ch = 0; ch < c; ch++) x[to + ch] = TO_UNIT[pixels[from + ch]!]!;
          }
        }
      }
      if (y) y[j] = labels![idx]!;
    }
    const xt = tf.tensor4d(x, [b, h, w, c], 'float32');
    return y ? { x: xt, labels: tf.tensor1d(y, 'int32') } : { x: xt };
  };

  return {
    exampleShape: [h, w, c],
    size,
    numClasses: labels ? init.numClasses : undefined,
    classNames: init.classNames,
    pixels,
    labelIds: labels,
    skippedFiles: init.skippedFiles ?? 0,
    description,
    // 8-bit pixels v map to v / 127.5 - 1: a grid of spacing 2/255.
    quantizationStep: 2 / 255,
    batch,
  };
}
