import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import type { DataContext, Split } from '../../../src/core/plugin.js';
import { Rng } from '../../../src/core/random.js';
import { folderDataSchema, imageDataSchema, type FolderDataConfig } from '../../../src/plugins/image/config.js';
import { decodeImageFile, listImageFolder, openFolderData } from '../../../src/plugins/image/data/folder.js';
import { openImageData } from '../../../src/plugins/image/data/index.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

let root: string;
let logs: string[] = [];
const ctx = (split: Split = 'train'): DataContext => ({ split, baseDir: root, rng: new Rng(0), log: (m) => logs.push(m) });
const cfg = (over: Partial<FolderDataConfig> & { path: string }): FolderDataConfig => folderDataSchema.parse({ format: 'folder', ...over });

/** Writes a solid-colour image with sharp; channels 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA). */
async function solid(file: string, width: number, height: number, colour: number[], format: 'png' | 'jpeg' = 'png'): Promise<void> {
  const channels = colour.length as 1 | 2 | 3 | 4;
  const raw = new Uint8Array(width * height * channels);
  for (let p = 0; p < width * height; p++) raw.set(colour, p * channels);
  let img = sharp(raw, { raw: { width, height, channels } });
  if (channels <= 2) img = img.toColourspace('b-w'); // else sharp stores grey as RGB
  await (format === 'png' ? img.png() : img.jpeg({ quality: 100, chromaSubsampling: '4:4:4' })).toFile(file);
  const meta = await sharp(file).metadata();
  if (meta.channels !== channels || meta.width !== width || meta.height !== height) {
    throw new Error(`fixture ${file}: wrote ${meta.width}x${meta.height}x${meta.channels}, wanted ${width}x${height}x${channels}`);
  }
}

/** An 8x4 RGB PNG: the left half red, the right half blue. */
async function halves(file: string): Promise<void> {
  const w = 8;
  const h = 4;
  const raw = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
  await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

beforeAll(async () => {
  await useBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'difflab-folder-'));
  // Classes sort as: "bird" (0), "cat" (1), "dog" (2); sub-folder names, not creation order.
  const labelled = join(root, 'labelled');
  for (const c of ['dog', 'cat', 'bird']) mkdirSync(join(labelled, c, 'nested'), { recursive: true });
  await solid(join(labelled, 'bird', 'a.png'), 10, 7, [200]); // grey PNG
  await solid(join(labelled, 'bird', 'b.PNG'), 5, 9, [10, 20, 30, 255]); // RGBA PNG, upper-case extension
  await solid(join(labelled, 'cat', 'c.jpg'), 16, 16, [250, 250, 250], 'jpeg'); // RGB JPEG
  await solid(join(labelled, 'cat', 'nested', 'd.jpeg'), 3, 20, [0, 0, 0], 'jpeg'); // tall JPEG, in a nested folder
  await solid(join(labelled, 'dog', 'e.png'), 12, 8, [100, 128]); // grey + alpha
  writeFileSync(join(labelled, 'dog', 'notes.txt'), 'not an image');
  writeFileSync(join(labelled, '.DS_Store'), 'hidden');
  // Unlabelled: images directly in the folder.
  const flat = join(root, 'flat');
  mkdirSync(flat);
  await halves(join(flat, 'halves.png'));
  await solid(join(flat, 'white.png'), 4, 4, [255, 255, 255]);
  // A corrupt file among good ones.
  const withBad = join(root, 'with-bad');
  mkdirSync(join(withBad, 'x'), { recursive: true });
  await solid(join(withBad, 'x', '1.png'), 4, 4, [50]);
  writeFileSync(join(withBad, 'x', '2.png'), Buffer.from('this is not a PNG at all'));
  await solid(join(withBad, 'x', '3.png'), 4, 4, [150]);
  // A truncated PNG.
  const truncated = join(root, 'truncated');
  mkdirSync(join(truncated, 'x'), { recursive: true });
  const png = await sharp(new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) % 256), { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toBuffer();
  writeFileSync(join(truncated, 'x', 'cut.png'), png.subarray(0, Math.floor(png.length / 2)));
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('listImageFolder', () => {
  it('labels by sorted sub-folder name, finds images recursively and ignores other files', () => {
    const l = listImageFolder(join(root, 'labelled'));
    expect(l.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(l.files.map((f) => f.slice(join(root, 'labelled').length + 1))).toEqual([
      'bird/a.png',
      'bird/b.PNG',
      'cat/c.jpg',
      'cat/nested/d.jpeg',
      'dog/e.png',
    ]);
    expect([...l.labels!]).toEqual([0, 0, 1, 1, 2]);
    expect(l.ignored).toBe(1);
  });

  it('treats a folder of loose images as unlabelled', () => {
    const l = listImageFolder(join(root, 'flat'));
    expect(l.labels).toBeUndefined();
    expect(l.classNames).toBeUndefined();
    expect(l.files).toHaveLength(2);
  });

  it('rejects loose images beside class folders, and empty folders, naming the folder', () => {
    const mixed = join(root, 'mixed');
    mkdirSync(join(mixed, 'a'), { recursive: true });
    writeFileSync(join(mixed, 'loose.png'), 'x');
    expect(() => listImageFolder(mixed)).toThrow(`${mixed}: has both class sub-folders and loose images (e.g. loose.png)`);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(() => listImageFolder(empty)).toThrow(`${empty}: no image files`);
    expect(() => listImageFolder(join(root, 'absent'))).toThrow(`${join(root, 'absent')}: cannot read image folder (ENOENT)`);
  });
});

describe('openFolderData', () => {
  it('decodes PNG/JPEG of any size and channel count to size x size x channels', async () => {
    logs = [];
    const src = await openFolderData(cfg({ path: join(root, 'labelled'), size: 8, channels: 3 }), ctx());
    expect(src.size).toBe(5);
    expect(src.exampleShape).toEqual([8, 8, 3]);
    expect(src.numClasses).toBe(3);
    expect(src.classNames).toEqual(['bird', 'cat', 'dog']);
    expect([...src.labelIds!]).toEqual([0, 0, 1, 1, 2]);
    expect(src.pixels.length).toBe(5 * 8 * 8 * 3);
    const px = (i: number, y: number, x: number) => [...src.pixels.subarray(((i * 8 + y) * 8 + x) * 3, ((i * 8 + y) * 8 + x) * 3 + 3)];
    expect(px(0, 4, 4)).toEqual([200, 200, 200]); // grey -> replicated RGB
    expect(px(1, 4, 4)).toEqual([10, 20, 30]); // RGBA, opaque
    const jpeg = px(2, 4, 4);
    for (const v of jpeg) expect(Math.abs(v - 250)).toBeLessThanOrEqual(2);
    expect(px(3, 0, 0)).toEqual([0, 0, 0]);
    // Grey 100 with alpha 128 flattened onto black: about 100 * 128 / 255 = 50.
    for (const v of px(4, 4, 4)) expect(Math.abs(v - 50)).toBeLessThanOrEqual(1);
    expect(logs.some((m) => m.includes('ignored 1 non-image file'))).toBe(true);

    const b = src.batch([0, 4], new Rng(0));
    expect(b.x.shape).toEqual([2, 8, 8, 3]);
    expect([...(await b.labels!.data())]).toEqual([0, 2]);
    const x = await b.x.data();
    expect(x[0]).toBeCloseTo(200 / 127.5 - 1, 6);
    tf.dispose([b.x, b.labels!]);
  });

  it('converts to one channel with BT.601 luma', async () => {
    const src = await openFolderData(cfg({ path: join(root, 'labelled'), size: 4, channels: 1 }), ctx());
    expect(src.exampleShape).toEqual([4, 4, 1]);
    expect(src.pixels[16 * 0]).toBe(200);
    expect(src.pixels[16 * 1]).toBe(Math.round(0.299 * 10 + 0.587 * 20 + 0.114 * 30));
  });

  it('fit: cover crops the centre, fill stretches, contain letterboxes with black', async () => {
    // halves.png is 8x4, left half red, right half blue.
    const open = (fit: FolderDataConfig['fit']) => openFolderData(cfg({ path: join(root, 'flat'), size: 4, fit }), ctx());
    const cover = await open('cover');
    expect(cover.labelIds).toBeUndefined();
    expect(cover.numClasses).toBeUndefined();
    const at = (s: typeof cover, y: number, x: number) => [...s.pixels.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3)];
    expect(at(cover, 1, 0)).toEqual([255, 0, 0]);
    expect(at(cover, 1, 3)).toEqual([0, 0, 255]);
    const fill = await open('fill');
    expect(at(fill, 0, 0)).toEqual([255, 0, 0]);
    expect(at(fill, 3, 3)).toEqual([0, 0, 255]);
    // contain: 8x4 -> 4x2 centred: rows 0 and 3 are black bars, rows 1-2 keep the colours.
    const contain = await open('contain');
    expect(at(contain, 0, 0)).toEqual([0, 0, 0]);
    expect(at(contain, 3, 3)).toEqual([0, 0, 0]);
    expect(at(contain, 2, 0)[0]).toBeGreaterThan(200);
    expect(at(contain, 1, 3)[2]).toBeGreaterThan(200);
    expect(at(contain, 0, 3)).toEqual([0, 0, 0]);
    const batch = cover.batch([0], new Rng(0));
    expect(batch.labels).toBeUndefined();
    batch.x.dispose();
  });

  it('fails on the first corrupt file with a one-line error naming it', async () => {
    const bad = join(root, 'with-bad', 'x', '2.png');
    let msg = '';
    try {
      await openFolderData(cfg({ path: join(root, 'with-bad'), size: 4 }), ctx());
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg.startsWith(`${bad}: cannot decode image (`)).toBe(true);
    expect(msg).not.toContain('\n');
    await expect(decodeImageFile(join(root, 'truncated', 'x', 'cut.png'), 8, 3, 'cover')).rejects.toThrow(
      `${join(root, 'truncated', 'x', 'cut.png')}: cannot decode image (`,
    );
  });

  it('with skip_bad_files skips and counts bad files, logging once', async () => {
    logs = [];
    const src = await openFolderData(cfg({ path: join(root, 'with-bad'), size: 4, channels: 1, skip_bad_files: true }), ctx());
    expect(src.size).toBe(2);
    expect(src.skippedFiles).toBe(1);
    expect(src.pixels[0]).toBe(50);
    expect(src.pixels[16]).toBe(150);
    const skipLogs = logs.filter((m) => m.includes('skipped'));
    expect(skipLogs).toHaveLength(1);
    expect(skipLogs[0]).toContain('skipped 1 bad file(s)');
    expect(skipLogs[0]).toContain('2.png');
  });

  it('limit stops after the first N images in load order', async () => {
    const src = await openFolderData(cfg({ path: join(root, 'labelled'), size: 4, limit: 3 }), ctx());
    expect(src.size).toBe(3);
    expect([...src.labelIds!]).toEqual([0, 0, 1]);
    const skip = await openFolderData(cfg({ path: join(root, 'with-bad'), size: 4, limit: 2, skip_bad_files: true }), ctx());
    expect(skip.size).toBe(2);
  });

  it('logs progress every N files', async () => {
    logs = [];
    await openFolderData(cfg({ path: join(root, 'labelled'), size: 4 }), ctx(), { progressEvery: 2, concurrency: 1 });
    expect(logs.filter((m) => m.includes('decoded')).map((m) => m.replace(/.*decoded /, ''))).toEqual([
      '2 of 5 files (2 kept)',
      '4 of 5 files (4 kept)',
    ]);
  });

  it('reads test_path for the test split, else data.path (logged)', async () => {
    logs = [];
    const same = await openFolderData(cfg({ path: join(root, 'labelled'), size: 4 }), ctx('test'));
    expect(same.size).toBe(5);
    expect(logs.some((m) => m.includes('no data.test_path'))).toBe(true);
    const other = await openFolderData(cfg({ path: join(root, 'labelled'), test_path: join(root, 'flat'), size: 4 }), ctx('test'));
    expect(other.size).toBe(2);
  });

  it('is reachable through openImageData, and batch() leaks no tensors', async () => {
    const src = await openImageData(imageDataSchema.parse({ format: 'folder', path: join(root, 'labelled'), size: 4, random_flip: true }), ctx());
    await expectNoTensorLeak(async () => {
      const b = src.batch([4, 3, 2, 1, 0], new Rng(9));
      const data = await b.x.data();
      tf.dispose([b.x, b.labels!]);
      return data.length;
    }, 'folder batch');
  });
});
