import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { DataContext, Split } from '../../../core/plugin.js';
import type { IdxDataConfig } from '../config.js';
import { resolveDataPath, readMaybeGzip } from './paths.js';
import { conformImages } from './pixels.js';
import { ImageDataError, createImageDataSource, type ImageDataSource } from './source.js';

/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
 * bytes 0-1 are zero, byte 2 the element type (0x08 = unsigned byte), byte 3
 * the number of dimensions; then one big-endian uint32 per dimension, then
 * the data. Image files are 0x00000803 [N, rows, cols], label files
 * 0x00000801 [N]. Files may be gzip-compressed (detected by magic bytes).
 */

const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

export interface IdxArray {
  readonly dims: readonly number[];
  /** The data bytes (a view into the file's buffer). */
  readonly data: Uint8Array;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** Parses IDX bytes with unsigned-byte elements and `expectedRank` dimensions; errors name `file`. */
export function parseIdx(bytes: Uint8Array, file: string, expectedRank: number): IdxArray {
  const expectedMagic = 0x0800 + expectedRank;
  const kind = expectedRank === 1 ? 'an idx1-ubyte label file' : `an idx${expectedRank}-ubyte file`;
  if (bytes.length < 4) {
    throw new ImageDataError(`${file}: ${bytes.length} bytes is too short for an IDX header (expected ${kind})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(bytes[2]! in TYPE_NAMES) || bytes[3] === 0) {
    throw new ImageDataError(`${file}: wrong magic number ${hex(magic)}: not an IDX file (expected ${hex(expectedMagic)} for ${kind})`);
  }
  if (bytes[2] !== 0x08) {
    throw new ImageDataError(`${file}: IDX element type ${TYPE_NAMES[bytes[2]!]} (magic ${hex(magic)}) is not supported; expected unsigned bytes (${hex(expectedMagic)})`);
  }
  const rank = bytes[3]!;
  if (rank !== expectedRank) {
    throw new ImageDataError(`${file}: IDX file has ${rank} dimension(s) (magic ${hex(magic)}); expected ${expectedRank} (${hex(expectedMagic)}, ${kind})`);
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new ImageDataError(`${file}: truncated IDX header: ${bytes.length} bytes, the ${rank}-dimension header needs ${headerBytes}`);
  }
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) {
    const n = view.getUint32(4 + 4 * d);
    if (n === 0) throw new ImageDataError(`${file}: IDX dimension ${d} is 0`);
    dims.push(n);
  }
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = bytes.length - headerBytes;
  if (found < expected) {
    throw new ImageDataError(`${file}: truncated: dims [${dims.join(', ')}] need ${expected} data bytes after the ${headerBytes}-byte header, found ${found}`);
  }
  if (found > expected) {
    throw new ImageDataError(`${file}: ${found - expected} unexpected trailing bytes after the data of dims [${dims.join(', ')}]`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Reads an IDX file (gzip or raw) of unsigned bytes with `expectedRank` dimensions. */
export function readIdxFile(file: string, expectedRank: number): IdxArray {
  return parseIdx(readMaybeGzip(file), file, expectedRank);
}

export interface IdxImages {
  /** [count, rows, cols] uint8, row-major. */
  readonly pixels: Uint8Array;
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly labels: Int32Array;
  /** max label + 1 over the whole labels file. */
  readonly numClasses: number;
}

/** Reads an idx3 image file and its idx1 label file, and checks they agree. */
export function readIdxPair(imagesFile: string, labelsFile: string): IdxImages {
  const images = readIdxFile(imagesFile, 3);
  const labels = readIdxFile(labelsFile, 1);
  const [count, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new ImageDataError(`${labelsFile}: ${labels.dims[0]} labels, but ${imagesFile} has ${count} images`);
  }
  const ids = Int32Array.from(labels.data);
  let max = 0;
  for (const v of ids) if (v > max) max = v;
  return { pixels: images.data, count, rows, cols, labels: ids, numClasses: max + 1 };
}

/** The standard file names of a split: `train-images-idx3-ubyte`, `t10k-labels.idx1-ubyte.gz`, ... */
export function findIdxFiles(folder: string, split: Split): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  const find = (what: 'images' | 'labels', rank: number): string => {
    const names = [`${prefix}-${what}-idx${rank}-ubyte`, `${prefix}-${what}.idx${rank}-ubyte`];
    for (const name of names) {
      for (const candidate of [name, `${name}.gz`]) {
        const p = join(folder, candidate);
        if (existsSync(p)) return p;
      }
    }
    throw new ImageDataError(`${folder}: no ${names[0]}(.gz) file for the ${split} split`);
  };
  return { images: find('images', 3), labels: find('labels', 1) };
}

export interface OpenOptions {
  /** Working directory for the path rule (defaults to process.cwd()). */
  readonly cwd?: string;
}

/** Opens the `ctx.split` split of an IDX data set as an ImageDataSource. */
export function openIdxData(cfg: IdxDataConfig, ctx: DataContext, opts: OpenOptions = {}): ImageDataSource {
  const explicit = ctx.split === 'train' ? [cfg.train_images, cfg.train_labels] : [cfg.test_images, cfg.test_labels];
  let files: { images: string; labels: string };
  if (explicit[0] && explicit[1]) {
    files = { images: resolveDataPath(explicit[0], ctx.baseDir, opts.cwd), labels: resolveDataPath(explicit[1], ctx.baseDir, opts.cwd) };
  } else {
    const folder = resolveDataPath(cfg.path, ctx.baseDir, opts.cwd);
    if (!existsSync(folder)) throw new ImageDataError(`${folder}: IDX data folder does not exist (data.path '${cfg.path}')`);
    files = findIdxFiles(folder, ctx.split);
  }
  const pair = readIdxPair(files.images, files.labels);
  const count = cfg.limit === null ? pair.count : Math.min(cfg.limit, pair.count);
  const nativeStride = pair.rows * pair.cols;
  let pixels = pair.pixels.subarray(0, count * nativeStride);
  pixels = conformImages(pixels, count, [pair.rows, pair.cols, 1], [cfg.size, cfg.size, cfg.channels]);
  // Keep a compact copy rather than a view that pins the whole decompressed file.
  if (pixels.buffer === pair.pixels.buffer && (pixels.byteLength !== pixels.buffer.byteLength)) pixels = pixels.slice();
  const desc = `${basename(files.images)} (${count} images ${cfg.size}x${cfg.size}x${cfg.channels})`;
  ctx.log(`idx ${ctx.split}: ${files.images}: ${count} of ${pair.count} images, ${pair.rows}x${pair.cols} -> ${cfg.size}x${cfg.size}x${cfg.channels}, ${pair.numClasses} classes`);
  return createImageDataSource({
    pixels,
    height: cfg.size,
    width: cfg.size,
    channels: cfg.channels,
    labels: pair.labels.slice(0, count),
    numClasses: pair.numClasses,
    randomFlip: cfg.random_flip,
    description: desc,
  });
}
