import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { DataContext, Split } from '../../../core/plugin.js';
import type { Cifar10DataConfig } from '../config.js';
import type { OpenOptions } from './idx.js';
import { readFileOrThrow, resolveDataPath } from './paths.js';
import { conformImages } from './pixels.js';
import { ImageDataError, createImageDataSource, firstLine, type ImageDataSource } from './source.js';

/**
 * The CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar.html):
 * each file is a run of 3073-byte records, one label byte (0-9) then a 32x32
 * colour image as three 1024-byte planes (R, G, B), each row-major.
 */

export const CIFAR_SIDE = 32;
export const CIFAR_PLANE = CIFAR_SIDE * CIFAR_SIDE;
export const CIFAR_RECORD_BYTES = 1 + 3 * CIFAR_PLANE;
export const CIFAR_CLASSES = 10;

export interface CifarRecords {
  /** [count, 32, 32, 3] uint8, HWC. */
  readonly pixels: Uint8Array;
  readonly labels: Int32Array;
  readonly count: number;
}

/** Parses CIFAR-10 records (at most `maxRecords`), converting CHW planes to HWC; errors name `file` and the record. */
export function parseCifarRecords(bytes: Uint8Array, file: string, maxRecords = Infinity): CifarRecords {
  if (bytes.length === 0) throw new ImageDataError(`${file}: empty file (expected ${CIFAR_RECORD_BYTES}-byte CIFAR-10 records)`);
  if (bytes.length % CIFAR_RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.length / CIFAR_RECORD_BYTES);
    throw new ImageDataError(`${file}: ${bytes.length} bytes is not a whole number of ${CIFAR_RECORD_BYTES}-byte CIFAR-10 records (record ${whole} is truncated or the file is not CIFAR-10 binary)`);
  }
  const count = Math.min(bytes.length / CIFAR_RECORD_BYTES, maxRecords);
  const pixels = new Uint8Array(count * CIFAR_PLANE * 3);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const off = r * CIFAR_RECORD_BYTES;
    const label = bytes[off]!;
    if (label >= CIFAR_CLASSES) {
      throw new ImageDataError(`${file}: record ${r}: label ${label} is out of range 0-${CIFAR_CLASSES - 1}`);
    }
    labels[r] = label;
    const dst = r * CIFAR_PLANE * 3;
    for (let p = 0; p < CIFAR_PLANE; p++) {
      pixels[dst + 3 * p] = bytes[off + 1 + p]!;
      pixels[dst + 3 * p + 1] = bytes[off + 1 + CIFAR_PLANE + p]!;
      pixels[dst + 3 * p + 2] = bytes[off + 1 + 2 * CIFAR_PLANE + p]!;
    }
  }
  return { pixels, labels, count };
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The folder holding the batches: `path` itself, or `path/cifar-10-batches-bin`. */
export function findCifarFolder(path: string): string {
  if (!isDir(path)) throw new ImageDataError(`${path}: CIFAR-10 folder does not exist`);
  const hasBatches = (dir: string) => readdirSync(dir).some((n) => /^(data_batch_\d+|test_batch)\.bin$/.test(n));
  if (hasBatches(path)) return path;
  const nested = join(path, 'cifar-10-batches-bin');
  if (isDir(nested) && hasBatches(nested)) return nested;
  throw new ImageDataError(`${path}: no CIFAR-10 batch files (data_batch_N.bin, test_batch.bin) here or in cifar-10-batches-bin/`);
}

/** The batch files of a split, in order: data_batch_1..N.bin (numeric order) or test_batch.bin. */
export function cifarBatchFiles(folder: string, split: Split): string[] {
  if (split === 'test') {
    const p = join(folder, 'test_batch.bin');
    if (!existsSync(p)) throw new ImageDataError(`${folder}: no test_batch.bin for the test split`);
    return [p];
  }
  const names = readdirSync(folder)
    .map((n) => /^data_batch_(\d+)\.bin$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => join(folder, m[0]));
  if (names.length === 0) throw new ImageDataError(`${folder}: no data_batch_N.bin files for the train split`);
  return names;
}

/** Class names from batches.meta.txt (one per line) when it lists exactly 10. */
export function readCifarClassNames(folder: string): string[] | undefined {
  const p = join(folder, 'batches.meta.txt');
  if (!existsSync(p)) return undefined;
  const names = readFileSync(p, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return names.length === CIFAR_CLASSES ? names : undefined;
}

/** Opens the `ctx.split` split of CIFAR-10 binary batches as an ImageDataSource. */
export function openCifar10Data(cfg: Cifar10DataConfig, ctx: DataContext, opts: OpenOptions = {}): ImageDataSource {
  const folder = findCifarFolder(resolveDataPath(cfg.path, ctx.baseDir, opts.cwd));
  const files = cifarBatchFiles(folder, ctx.split);
  const want = cfg.limit ?? Infinity;
  const parts: CifarRecords[] = [];
  let total = 0;
  let skipped = 0;
  let firstSkip = '';
  for (const file of files) {
    if (total >= want) break;
    try {
      const rec = parseCifarRecords(readFileOrThrow(file), file, want - total);
      parts.push(rec);
      total += rec.count;
    } catch (err) {
      if (!cfg.skip_bad_files) throw err;
      skipped++;
      if (!firstSkip) firstSkip = firstLine(err);
    }
  }
  if (skipped > 0) ctx.log(`cifar10 ${ctx.split}: skipped ${skipped} bad file(s) in ${folder} (first: ${firstSkip})`);
  if (total === 0) throw new ImageDataError(`${folder}: no readable CIFAR-10 records for the ${ctx.split} split`);
  const raw = new Uint8Array(total * CIFAR_PLANE * 3);
  const labels = new Int32Array(total);
  let at = 0;
  for (const p of parts) {
    raw.set(p.pixels, at * CIFAR_PLANE * 3);
    labels.set(p.labels, at);
    at += p.count;
  }
  const pixels = conformImages(raw, total, [CIFAR_SIDE, CIFAR_SIDE, 3], [cfg.size, cfg.size, cfg.channels]);
  ctx.log(`cifar10 ${ctx.split}: ${folder}: ${total} images from ${parts.length} file(s) -> ${cfg.size}x${cfg.size}x${cfg.channels}`);
  return createImageDataSource({
    pixels,
    height: cfg.size,
    width: cfg.size,
    channels: cfg.channels,
    labels,
    numClasses: CIFAR_CLASSES,
    classNames: readCifarClassNames(folder),
    randomFlip: cfg.random_flip,
    skippedFiles: skipped,
    description: `cifar10 ${ctx.split} ${basename(folder)} (${total} images ${cfg.size}x${cfg.size}x${cfg.channels})`,
  });
}
