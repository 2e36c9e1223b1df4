import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import type { DataContext, Split } from '../../../src/core/plugin.js';
import { Rng } from '../../../src/core/random.js';
import { cifar10DataSchema, type Cifar10DataConfig } from '../../../src/plugins/image/config.js';
import {
  CIFAR_RECORD_BYTES,
  cifarBatchFiles,
  findCifarFolder,
  openCifar10Data,
  parseCifarRecords,
} from '../../../src/plugins/image/data/cifar.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

/** Record value of (record r, channel c, y, x): distinct-ish per position, in 0..255. */
const value = (r: number, c: number, y: number, x: number) => (r * 37 + c * 101 + y * 7 + x * 3) % 256;

/** CIFAR-10 binary records: label byte, then R, G, B planes of 32x32 (CHW). */
function records(labels: number[], first = 0): Buffer {
  const buf = Buffer.alloc(labels.length * CIFAR_RECORD_BYTES);
  labels.forEach((label, i) => {
    const r = first + i;
    const off = i * CIFAR_RECORD_BYTES;
    buf[off] = label;
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) buf[off + 1 + c * 1024 + y * 32 + x] = value(r, c, y, x);
  });
  return buf;
}

const NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
let root: string;
let batches: string;
let logs: string[] = [];
const ctx = (split: Split = 'train'): DataContext => ({ split, baseDir: root, rng: new Rng(0), log: (m) => logs.push(m) });
const cfg = (over: Partial<Cifar10DataConfig> = {}): Cifar10DataConfig => cifar10DataSchema.parse({ format: 'cifar10', path: root, ...over });

beforeAll(async () => {
  await useBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'difflab-cifar-'));
  batches = join(root, 'cifar-10-batches-bin');
  mkdirSync(batches);
  // data_batch_10 sorts after data_batch_2 numerically (not as text).
  writeFileSync(join(batches, 'data_batch_1.bin'), records([3, 1], 0));
  writeFileSync(join(batches, 'data_batch_2.bin'), records([9], 2));
  writeFileSync(join(batches, 'data_batch_10.bin'), records([0, 5], 3));
  writeFileSync(join(batches, 'test_batch.bin'), records([7, 8, 6], 100));
  writeFileSync(join(batches, 'batches.meta.txt'), `${NAMES.join('\n')}\n\n`);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('CIFAR-10 binary records', () => {
  it('converts CHW planes to HWC (checked on known pixels)', () => {
    const rec = parseCifarRecords(records([4, 2]), 'mem.bin');
    expect(rec.count).toBe(2);
    expect([...rec.labels]).toEqual([4, 2]);
    for (const [r, y, x] of [[0, 0, 0], [0, 5, 17], [1, 31, 31], [1, 12, 3]] as const) {
      const at = ((r * 32 + y) * 32 + x) * 3;
      expect([...rec.pixels.subarray(at, at + 3)]).toEqual([value(r, 0, y, x), value(r, 1, y, x), value(r, 2, y, x)]);
    }
  });

  it('stops at maxRecords', () => {
    expect(parseCifarRecords(records([1, 2, 3]), 'mem.bin', 2).count).toBe(2);
  });

  it('rejects truncated files and bad labels naming the file and record', () => {
    const full = records([1, 2]);
    expect(() => parseCifarRecords(full.subarray(0, full.length - 1), 'x/b.bin')).toThrow(
      `x/b.bin: 6145 bytes is not a whole number of 3073-byte CIFAR-10 records (record 1 is truncated or the file is not CIFAR-10 binary)`,
    );
    const bad = Buffer.from(full);
    bad[CIFAR_RECORD_BYTES] = 10;
    expect(() => parseCifarRecords(bad, 'x/b.bin')).toThrow('x/b.bin: record 1: label 10 is out of range 0-9');
    expect(() => parseCifarRecords(new Uint8Array(0), 'x/e.bin')).toThrow('x/e.bin: empty file');
  });

  it('finds the batch folder and the files of each split in numeric order', () => {
    expect(findCifarFolder(root)).toBe(batches);
    expect(findCifarFolder(batches)).toBe(batches);
    expect(cifarBatchFiles(batches, 'train').map((f) => f.slice(batches.length + 1))).toEqual([
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_10.bin',
    ]);
    expect(cifarBatchFiles(batches, 'test')).toEqual([join(batches, 'test_batch.bin')]);
    const empty = mkdtempSync(join(tmpdir(), 'difflab-cifar-empty-'));
    try {
      expect(() => findCifarFolder(empty)).toThrow(`${empty}: no CIFAR-10 batch files`);
    } finally {
      rmSync(empty, { recursive: true });
    }
  });
});

describe('openCifar10Data', () => {
  it('concatenates the train batches in order, with class names', async () => {
    const src = openCifar10Data(cfg(), ctx());
    expect(src.size).toBe(5);
    expect(src.exampleShape).toEqual([32, 32, 3]);
    expect(src.numClasses).toBe(10);
    expect(src.classNames).toEqual(NAMES);
    expect([...src.labelIds!]).toEqual([3, 1, 9, 0, 5]);
    // Record 3 (first of data_batch_10) pixel (y=7, x=30), green channel.
    const b = src.batch([3], new Rng(0));
    const x = await b.x.data();
    expect(x[(7 * 32 + 30) * 3 + 1]).toBeCloseTo(value(3, 1, 7, 30) / 127.5 - 1, 6);
    expect([...(await b.labels!.data())]).toEqual([0]);
    tf.dispose([b.x, b.labels!]);
  });

  it('reads test_batch.bin for the test split', () => {
    const src = openCifar10Data(cfg(), ctx('test'));
    expect([...src.labelIds!]).toEqual([7, 8, 6]);
    expect(src.pixels[0]).toBe(value(100, 0, 0, 0));
  });

  it('applies limit across files, channels 1 (luma) and resampling', () => {
    const src = openCifar10Data(cfg({ limit: 3, channels: 1, size: 16 }), ctx());
    expect(src.size).toBe(3);
    expect(src.exampleShape).toEqual([16, 16, 1]);
    expect([...src.labelIds!]).toEqual([3, 1, 9]);
    expect(src.pixels.length).toBe(3 * 16 * 16);
  });

  it('fails on a bad batch file naming it, or skips and counts it with skip_bad_files', () => {
    const dir = join(root, 'with-bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 'data_batch_1.bin'), records([1]));
    const badFile = join(dir, 'data_batch_2.bin');
    writeFileSync(badFile, records([2]).subarray(0, 100));
    writeFileSync(join(dir, 'data_batch_3.bin'), records([3]));
    expect(() => openCifar10Data(cfg({ path: dir }), ctx())).toThrow(new RegExp(`^${badFile}: 100 bytes is not a whole number`));
    logs = [];
    const src = openCifar10Data(cfg({ path: dir, skip_bad_files: true }), ctx());
    expect(src.size).toBe(2);
    expect(src.skippedFiles).toBe(1);
    expect([...src.labelIds!]).toEqual([1, 3]);
    expect(src.classNames).toBeUndefined();
    const skipLogs = logs.filter((m) => m.includes('skipped'));
    expect(skipLogs).toHaveLength(1);
    expect(skipLogs[0]).toContain(`skipped 1 bad file(s) in ${dir}`);
  });

  it('flips are true mirrors, reproducible by seed, and batch() leaks no tensors', async () => {
    const src = openCifar10Data(cfg({ random_flip: true }), ctx());
    const idx = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4];
    const run = async (seed: number) => {
      const b = src.batch(idx, new Rng(seed));
      const out = await b.x.data();
      tf.dispose([b.x, b.labels!]);
      return out;
    };
    const a = await expectNoTensorLeak(() => run(5), 'cifar batch');
    expect([...(await run(5))]).toEqual([...a]);
    const stride = 32 * 32 * 3;
    let flipped = 0;
    idx.forEach((r, j) => {
      const img = a.subarray(j * stride, (j + 1) * stride);
      const orig = (y: number, x: number, c: number) => Math.fround(src.pixels[r * stride + (y * 32 + x) * 3 + c]! / 127.5 - 1);
      const isFlip = img[0] !== orig(0, 0, 0) || img[1] !== orig(0, 0, 1) || img[2] !== orig(0, 0, 2);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++) expect(img[(y * 32 + x) * 3 + c]).toBe(orig(y, isFlip ? 31 - x : x, c));
      if (isFlip) flipped++;
    });
    expect(flipped).toBeGreaterThan(0);
    expect(flipped).toBeLessThan(idx.length);
  });
});
