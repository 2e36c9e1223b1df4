import { readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import sharp from 'sharp';
import type { DataContext } from '../../../core/plugin.js';
import type { FolderDataConfig, ImageFit } from '../config.js';
import type { OpenOptions } from './idx.js';
import { resolveDataPath } from './paths.js';
import { convertChannels } from './pixels.js';
import { ImageDataError, createImageDataSource, firstLine, type ImageDataSource } from './source.js';

/** File extensions read as images (case-insensitive). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg'];

export interface FolderListing {
  /** Image files in load order: by class, then by relative path. */
  readonly files: readonly string[];
  /** Label id of each file, or undefined for an unlabelled folder. */
  readonly labels?: Int32Array;
  /** Sorted class (sub-folder) names, or undefined for an unlabelled folder. */
  readonly classNames?: readonly string[];
  /** Files that are not images (other extensions), ignored. */
  readonly ignored: number;
}

interface Entry {
  readonly name: string;
  readonly path: string;
  readonly dir: boolean;
}

function entries(dir: string): Entry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageDataError(`${dir}: cannot read image folder (${code ?? firstLine(err)})`);
  }
  const out: Entry[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let dirFlag: boolean;
    try {
      dirFlag = statSync(path).isDirectory(); // follows symlinks
    } catch {
      continue; // a dangling link
    }
    out.push({ name, path, dir: dirFlag });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const isImage = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());

function walkImages(dir: string, acc: { files: string[]; ignored: number }): void {
  for (const e of entries(dir)) {
    if (e.dir) walkImages(e.path, acc);
    else if (isImage(e.name)) acc.files.push(e.path);
    else acc.ignored++;
  }
}

/**
 * Lists a folder: each sub-folder (sorted by name, code-point order) is a
 * class whose images are found recursively; a folder with images and no
 * sub-folders is unlabelled. Images beside class sub-folders are an error.
 */
export function listImageFolder(root: string): FolderListing {
  const top = entries(root);
  const dirs = top.filter((e) => e.dir);
  const topImages = top.filter((e) => !e.dir && isImage(e.name));
  const topIgnored = top.filter((e) => !e.dir && !isImage(e.name)).length;
  if (dirs.length === 0) {
    if (topImages.length === 0) throw new ImageDataError(`${root}: no image files (${IMAGE_EXTENSIONS.join(', ')}) and no class sub-folders`);
    return { files: topImages.map((e) => e.path), ignored: topIgnored };
  }
  if (topImages.length > 0) {
    throw new ImageDataError(`${root}: has both class sub-folders and loose images (e.g. ${topImages[0]!.name}); move the images into a sub-folder`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  let ignored = topIgnored;
  dirs.forEach((d, label) => {
    const acc = { files: [] as string[], ignored: 0 };
    walkImages(d.path, acc);
    for (const f of acc.files) {
      files.push(f);
      labels.push(label);
    }
    ignored += acc.ignored;
  });
  if (files.length === 0) throw new ImageDataError(`${root}: the class sub-folders hold no image files (${IMAGE_EXTENSIONS.join(', ')})`);
  return { files, labels: Int32Array.from(labels), classNames: dirs.map((d) => d.name), ignored };
}

/**
 * Decodes one PNG/JPEG file to `size` x `size` x `channels` uint8 HWC: EXIF
 * orientation applied, alpha flattened onto black, resized with `fit` (cover
 * crops the centre, contain letterboxes with black, fill stretches), 16-bit
 * input reduced to 8 bits. Throws a one-line error naming the file.
 */
export async function decodeImageFile(file: string, size: number, channels: 1 | 3, fit: ImageFit): Promise<Uint8Array> {
  try {
    const { data, info } = await sharp(file, { failOn: 'error' })
      .autoOrient()
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .resize({ width: size, height: size, fit, position: 'centre', background: { r: 0, g: 0, b: 0, alpha: 1 } })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size) {
      throw new Error(`decoded to ${info.width}x${info.height}, expected ${size}x${size}`);
    }
    const px = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return convertChannels(px, size * size, info.channels, channels);
  } catch (err) {
    throw new ImageDataError(`${file}: cannot decode image (${firstLine(err)})`);
  }
}

export interface FolderOpenOptions extends OpenOptions {
  /** Log progress every this many files (default 1000). */
  readonly progressEvery?: number;
  /** Files decoded at once (default 8). */
  readonly concurrency?: number;
}

/**
 * Opens an image folder as an ImageDataSource. Every file is decoded once,
 * up front, into one uint8 cache of size x size x channels per image. With
 * `limit`, decoding stops once that many images are read (in load order).
 */
export async function openFolderData(cfg: FolderDataConfig, ctx: DataContext, opts: FolderOpenOptions = {}): Promise<ImageDataSource> {
  const configured = ctx.split === 'test' && cfg.test_path !== null ? cfg.test_path : cfg.path;
  if (ctx.split === 'test' && cfg.test_path === null) ctx.log(`image folder: no data.test_path; the test split reads data.path`);
  const root = resolveDataPath(configured, ctx.baseDir, opts.cwd);
  const listing = listImageFolder(root);
  const { size, channels, fit } = cfg;
  const stride = size * size * channels;
  const want = Math.min(cfg.limit ?? Infinity, listing.files.length);
  const progressEvery = opts.progressEvery ?? 1000;
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  if (want * stride > 2 ** 31 - 1) {
    throw new ImageDataError(`${root}: ${want} images of ${size}x${size}x${channels} need ${want * stride} bytes of cache (over 2 GiB); lower data.size or set data.limit`);
  }
  if (listing.ignored > 0) ctx.log(`image folder ${root}: ignored ${listing.ignored} non-image file(s)`);

  const cache = new Uint8Array(want * stride);
  const keptLabels: number[] = [];
  let kept = 0;
  let next = 0;
  let skipped = 0;
  let firstSkip = '';
  // Decode in order-preserving windows so the first bad file (in load order) is the one reported.
  while (kept < want && next < listing.files.length) {
    const window = listing.files.slice(next, next + Math.min(concurrency, want - kept));
    const results = await Promise.allSettled(window.map((f) => decodeImageFile(f, size, channels, fit)));
    results.forEach((r, k) => {
      const fileIndex = next + k;
      if (r.status === 'rejected') {
        if (!cfg.skip_bad_files) throw r.reason;
        skipped++;
        if (!firstSkip) firstSkip = firstLine(r.reason);
        return;
      }
      cache.set(r.value, kept * stride);
      if (listing.labels) keptLabels.push(listing.labels[fileIndex]!);
      kept++;
    });
    const before = next;
    next += window.length;
    if (Math.floor(next / progressEvery) > Math.floor(before / progressEvery)) {
      ctx.log(`image folder ${root}: decoded ${next} of ${listing.files.length} files (${kept} kept)`);
    }
  }
  if (skipped > 0) ctx.log(`image folder ${root}: skipped ${skipped} bad file(s) (first: ${firstSkip})`);
  if (kept === 0) throw new ImageDataError(`${root}: no readable images`);
  const pixels = kept === want ? cache : cache.slice(0, kept * stride);
  const classNames = listing.classNames;
  ctx.log(
    `image folder ${ctx.split}: ${root}: ${kept} images -> ${size}x${size}x${channels} (${fit})` +
      (classNames ? `, ${classNames.length} classes` : ', unlabelled'),
  );
  return createImageDataSource({
    pixels,
    height: size,
    width: size,
    channels,
    labels: listing.labels ? Int32Array.from(keptLabels) : undefined,
    numClasses: classNames?.length,
    classNames,
    randomFlip: cfg.random_flip,
    skippedFiles: skipped,
    description: `image folder ${relative(process.cwd(), root) || root} (${kept} images ${size}x${size}x${channels})`,
  });
}
