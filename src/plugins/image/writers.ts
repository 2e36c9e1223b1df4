import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { writeFileAtomic } from '../../core/io/atomic.js';

/**
 * Image writers: PNG grids of samples and denoising-trajectory strips. Pixel
 * values are in diffusion space ([-1, 1]); they are clamped (or min-max
 * scaled per image) to 0..255. PNGs are encoded by sharp from raw pixels and
 * written atomically (temporary file + rename).
 */

/** An image or a batch of images as plain data: values row-major in `shape` order. */
export interface ImageArray {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

export type ImageLike = tf.Tensor | ImageArray;

/** How values become pixels: clamp [-1, 1] to 0..255, or stretch each image's own min..max to 0..255. */
export type PixelScaling = 'clamp' | 'minmax';

export interface LayoutOptions {
  /** Border width in pixels between and around images (default 2). */
  readonly border?: number;
  /** Border grey level 0..255 (default 255, white). */
  readonly borderValue?: number;
  /** Default 'clamp'. */
  readonly scaling?: PixelScaling;
}

export interface GridOptions extends LayoutOptions {
  /** Images per row (default ceil(sqrt(B))). */
  readonly cols?: number;
}

export interface WrittenImage {
  readonly path: string;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  readonly rows: number;
  readonly cols: number;
}

interface Plain {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

async function toPlain(x: ImageLike): Promise<Plain> {
  if (x instanceof tf.Tensor) return { data: await x.data(), shape: x.shape };
  return x;
}

/** Converts `count` values starting at `offset` to uint8 with the chosen scaling. NaN maps to 0. */
function toBytes(src: ArrayLike<number>, offset: number, count: number, scaling: PixelScaling): Uint8Array {
  const out = new Uint8Array(count);
  let lo = -1;
  let hi = 1;
  if (scaling === 'minmax') {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < count; i++) {
      const v = src[offset + i]!;
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (!(hi > lo)) {
      lo = Number.isFinite(lo) ? lo - 1 : -1;
      hi = lo + 2;
    }
  }
  const k = 255 / (hi - lo);
  for (let i = 0; i < count; i++) {
    const v = src[offset + i]!;
    out[i] = Number.isNaN(v) ? 0 : Math.round(Math.min(255, Math.max(0, (v - lo) * k)));
  }
  return out;
}

/** Encodes raw uint8 HWC pixels (1 or 3 channels) as PNG bytes. */
export async function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  if (pixels.length !== width * height * channels) {
    throw new Error(`encodePng: ${pixels.length} bytes is not ${width}x${height}x${channels}`);
  }
  const img = sharp(pixels, { raw: { width, height, channels } });
  // Without b-w, sharp would store a one-channel image as RGB.
  return (channels === 1 ? img.toColourspace('b-w') : img).png({ compressionLevel: 6 }).toBuffer();
}

interface Cell {
  readonly bytes: Uint8Array;
}

/**
 * Lays out rows of equally shaped images with a border and writes the PNG.
 * A null cell (or a short row) is filled with the border colour.
 */
async function writeLayout(
  rows: readonly (readonly (Cell | null)[])[],
  h: number,
  w: number,
  c: 1 | 3,
  cols: number,
  path: string,
  opts: LayoutOptions,
): Promise<WrittenImage> {
  const border = opts.border ?? 2;
  const borderValue = opts.borderValue ?? 255;
  if (!Number.isInteger(border) || border < 0 || border > 64) throw new Error(`${path}: border must be an integer 0..64, got ${border}`);
  if (!(borderValue >= 0 && borderValue <= 255)) throw new Error(`${path}: borderValue must be 0..255, got ${borderValue}`);
  const width = cols * w + (cols + 1) * border;
  const height = rows.length * h + (rows.length + 1) * border;
  const canvas = new Uint8Array(width * height * c).fill(Math.round(borderValue));
  rows.forEach((row, r) => {
    row.forEach((cell, col) => {
      if (!cell) return;
      const y0 = border + r * (h + border);
      const x0 = border + col * (w + border);
      for (let y = 0; y < h; y++) {
        canvas.set(cell.bytes.subarray(y * w * c, (y + 1) * w * c), ((y0 + y) * width + x0) * c);
      }
    });
  });
  const png = await encodePng(canvas, width, height, c);
  writeFileAtomic(path, png);
  return { path, width, height, channels: c, rows: rows.length, cols };
}

function checkChannels(c: number | undefined, path: string, what: string, shape: readonly number[]): asserts c is 1 | 3 {
  if (c !== 1 && c !== 3) throw new Error(`${path}: ${what} must have 1 or 3 channels, got shape [${shape.join(', ')}]`);
}

/**
 * Writes a batch x [B, H, W, C] (C = 1 or 3, values in [-1, 1]) as one PNG
 * grid, `cols` images per row, with a border around every image.
 */
export async function writeImageGrid(x: ImageLike, path: string, opts: GridOptions = {}): Promise<WrittenImage> {
  const { data, shape } = await toPlain(x);
  if (shape.length !== 4) throw new Error(`${path}: writeImageGrid expects [B, H, W, C], got shape [${shape.join(', ')}]`);
  const [b, h, w, c] = shape as [number, number, number, number];
  checkChannels(c, path, 'images', shape);
  if (b < 1 || h < 1 || w < 1) throw new Error(`${path}: writeImageGrid needs at least one non-empty image, got shape [${shape.join(', ')}]`);
  if (data.length !== b * h * w * c) throw new Error(`${path}: ${data.length} values do not fill shape [${shape.join(', ')}]`);
  const cols = opts.cols ?? Math.ceil(Math.sqrt(b));
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`${path}: cols must be a positive integer, got ${cols}`);
  const scaling = opts.scaling ?? 'clamp';
  const stride = h * w * c;
  const rows: (Cell | null)[][] = [];
  for (let i = 0; i < b; i++) {
    const r = Math.floor(i / cols);
    (rows[r] ??= []).push({ bytes: toBytes(data, i * stride, stride, scaling) });
  }
  return writeLayout(rows, h, w, c, Math.min(cols, b), path, opts);
}

function frameShape(f: Plain, path: string, where: string): [number, number, number] {
  let s = f.shape;
  if (s.length === 4 && s[0] === 1) s = s.slice(1);
  if (s.length !== 3) throw new Error(`${path}: ${where} must be [H, W, C] (or [1, H, W, C]), got shape [${f.shape.join(', ')}]`);
  const [h, w, c] = s as [number, number, number];
  checkChannels(c, path, where, f.shape);
  if (f.data.length !== h * w * c) throw new Error(`${path}: ${where}: ${f.data.length} values do not fill shape [${f.shape.join(', ')}]`);
  return [h, w, c];
}

/**
 * Writes the denoising trajectory of one sample as a strip: `frames` is one
 * row of [H, W, C] images (left to right), or several rows (e.g. the noisy x
 * and the denoised estimate at each sigma). All frames share one shape; a
 * shorter row is padded with the border colour. Noisy frames at large sigma
 * fall far outside [-1, 1]: pass `scaling: 'minmax'` to see their structure.
 */
export async function writeTrajectoryStrip(
  frames: readonly ImageLike[] | readonly (readonly ImageLike[])[],
  path: string,
  opts: LayoutOptions = {},
): Promise<WrittenImage> {
  const rowsIn: readonly (readonly ImageLike[])[] =
    frames.length > 0 && Array.isArray(frames[0]) ? (frames as readonly (readonly ImageLike[])[]) : [frames as readonly ImageLike[]];
  const scaling = opts.scaling ?? 'clamp';
  let shape: [number, number, number] | undefined;
  const rows: Cell[][] = [];
  for (let r = 0; r < rowsIn.length; r++) {
    const row: Cell[] = [];
    for (let i = 0; i < rowsIn[r]!.length; i++) {
      const where = rowsIn.length > 1 ? `frame [${r}][${i}]` : `frame ${i}`;
      const f = await toPlain(rowsIn[r]![i]!);
      const s = frameShape(f, path, where);
      if (!shape) shape = s;
      else if (s.some((v, k) => v !== shape![k])) {
        throw new Error(`${path}: ${where} has shape [${s.join(', ')}], frame 0 has [${shape.join(', ')}]`);
      }
      row.push({ bytes: toBytes(f.data, 0, f.data.length, scaling) });
    }
    rows.push(row);
  }
  if (!shape) throw new Error(`${path}: writeTrajectoryStrip needs at least one frame`);
  const cols = Math.max(...rows.map((r) => r.length));
  const [h, w, c] = shape;
  return writeLayout(rows, h, w, c as 1 | 3, cols, path, opts);
}

export interface DecodedImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

/** Decodes a PNG/JPEG file to raw uint8 HWC pixels with its stored channels (grey, grey+alpha, RGB, RGBA). */
export async function readImagePixels(path: string): Promise<DecodedImage> {
  try {
    const meta = await sharp(path).metadata();
    const img = sharp(path);
    // sharp's raw output is sRGB by default: keep grey files grey.
    const { data, info } = await (meta.channels !== undefined && meta.channels <= 2 ? img.toColourspace('b-w') : img)
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: info.channels };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`${path}: cannot decode image (${msg})`);
  }
}

/** Decodes a PNG/JPEG file to a float32 [H, W, C] tensor in [-1, 1]. */
export async function decodePngToTensor(path: string): Promise<tf.Tensor3D> {
  const img = await readImagePixels(path);
  const values = new Float32Array(img.data.length);
  for (let i = 0; i < values.length; i++) values[i] = img.data[i]! / 127.5 - 1;
  return tf.tensor3d(values, [img.height, img.width, img.channels], 'float32');
}
