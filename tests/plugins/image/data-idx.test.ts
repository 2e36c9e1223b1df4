import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import type { DataContext, Split } from '../../../src/core/plugin.js';
import { Rng } from '../../../src/core/random.js';
import { idxDataSchema, imageDataSchema, type IdxDataConfig } from '../../../src/plugins/image/config.js';
import { findIdxFiles, openIdxData, parseIdx, readIdxFile, readIdxPair } from '../../../src/plugins/image/data/idx.js';
import { openImageData } from '../../../src/plugins/image/data/index.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

/** An IDX file: magic 00 00 type rank, big-endian dims, data. */
function idxBytes(dims: number[], data: Uint8Array | number[], type = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

/** Three 2x3 images whose pixel (i, r, c) = 10 * i + 3 * r + c, labels 2, 0, 1. */
const N = 3;
const ROWS = 2;
const COLS = 3;
const PIX = Uint8Array.from({ length: N * ROWS * COLS }, (_, k) => {
  const i = Math.floor(k / (ROWS * COLS));
  const r = Math.floor((k % (ROWS * COLS)) / COLS);
  const c = k % COLS;
  return 10 * i + 3 * r + c;
});
const LABELS = [2, 0, 1];

let dir: string;
const logs: string[] = [];
const ctx = (split: Split = 'train'): DataContext => ({ split, baseDir: dir, rng: new Rng(0), log: (m) => logs.push(m) });
const cfg = (over: Partial<IdxDataConfig>): IdxDataConfig => idxDataSchema.parse({ format: 'idx', path: dir, size: COLS, ...over });

beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'difflab-idx-'));
  // Raw train files, gzip test files (same content), standard names.
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxBytes([N, ROWS, COLS], PIX));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([N], LABELS));
  writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idxBytes([N, ROWS, COLS], PIX)));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxBytes([N], LABELS)));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('IDX parsing on hand-made files', () => {
  it('reads raw and gzip files to the same dims and bytes', () => {
    const raw = readIdxFile(join(dir, 'train-images-idx3-ubyte'), 3);
    const gz = readIdxFile(join(dir, 't10k-images-idx3-ubyte.gz'), 3);
    expect(raw.dims).toEqual([N, ROWS, COLS]);
    expect(gz.dims).toEqual([N, ROWS, COLS]);
    expect([...raw.data]).toEqual([...PIX]);
    expect([...gz.data]).toEqual([...PIX]);
  });

  it('detects gzip by magic bytes, not by name', () => {
    const p = join(dir, 'gz-without-suffix');
    writeFileSync(p, gzipSync(idxBytes([N], LABELS)));
    expect([...readIdxFile(p, 1).data]).toEqual(LABELS);
  });

  it('pairs images with labels and counts classes', () => {
    const pair = readIdxPair(join(dir, 'train-images-idx3-ubyte'), join(dir, 'train-labels-idx1-ubyte'));
    expect(pair.count).toBe(N);
    expect([pair.rows, pair.cols]).toEqual([ROWS, COLS]);
    expect([...pair.labels]).toEqual(LABELS);
    expect(pair.numClasses).toBe(3);
  });

  it('finds the standard names of each split', () => {
    expect(findIdxFiles(dir, 'train')).toEqual({ images: join(dir, 'train-images-idx3-ubyte'), labels: join(dir, 'train-labels-idx1-ubyte') });
    expect(findIdxFiles(dir, 'test')).toEqual({ images: join(dir, 't10k-images-idx3-ubyte.gz'), labels: join(dir, 't10k-labels-idx1-ubyte.gz') });
  });

  const bad: [string, Buffer | Uint8Array, number, RegExp][] = [
    ['wrong magic (a PNG header)', Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]), 3, /wrong magic number 0x89504e47: not an IDX file \(expected 0x00000803/],
    ['labels where images are expected', idxBytes([N], LABELS), 3, /has 1 dimension\(s\).*expected 3/],
    ['float32 elements', idxBytes([1], [0, 0, 0, 0], 0x0d), 1, /element type float32 .* not supported/],
    ['a short header', idxBytes([N, ROWS, COLS], []).subarray(0, 9), 3, /truncated IDX header: 9 bytes/],
    ['truncated data', idxBytes([N, ROWS, COLS], PIX.subarray(0, 17)), 3, /truncated: dims \[3, 2, 3\] need 18 data bytes after the 16-byte header, found 17/],
    ['trailing bytes', idxBytes([N], [...LABELS, 7, 7]), 1, /2 unexpected trailing bytes/],
    ['a zero dimension', idxBytes([0, ROWS, COLS], []), 3, /dimension 0 is 0/],
    ['an empty file', new Uint8Array(0), 1, /0 bytes is too short/],
  ];
  for (const [what, bytes, rank, re] of bad) {
    it(`rejects ${what} with a one-line error naming the file`, () => {
      const p = join(dir, `bad-${what.replace(/\W+/g, '-')}`);
      writeFileSync(p, bytes);
      let msg = '';
      try {
        readIdxFile(p, rank);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg).toMatch(re);
      expect(msg.startsWith(`${p}: `)).toBe(true);
      expect(msg).not.toContain('\n');
    });
  }

  it('rejects truncated and corrupt gzip data naming the file', () => {
    const gz = gzipSync(idxBytes([N, ROWS, COLS], PIX));
    const truncated = join(dir, 'truncated.gz');
    writeFileSync(truncated, gz.subarray(0, gz.length - 10));
    expect(() => readIdxFile(truncated, 3)).toThrow(new RegExp(`^${truncated}: corrupt or truncated gzip data \\(.+\\)$`));
    const corrupt = Buffer.from(gz);
    for (let i = 12; i < corrupt.length - 8; i++) corrupt[i] = 0xff;
    const corruptPath = join(dir, 'corrupt.gz');
    writeFileSync(corruptPath, corrupt);
    expect(() => readIdxFile(corruptPath, 3)).toThrow(new RegExp(`^${corruptPath}: corrupt or truncated gzip data`));
  });

  it('rejects a label file whose count differs from the images, naming both', () => {
    const labels = join(dir, 'two-labels');
    writeFileSync(labels, idxBytes([2], [0, 1]));
    expect(() => readIdxPair(join(dir, 'train-images-idx3-ubyte'), labels)).toThrow(
      `${labels}: 2 labels, but ${join(dir, 'train-images-idx3-ubyte')} has 3 images`,
    );
  });

  it('names a missing file and a missing standard name', () => {
    expect(() => readIdxFile(join(dir, 'nope'), 1)).toThrow(`${join(dir, 'nope')}: cannot read (ENOENT)`);
    const empty = mkdtempSync(join(tmpdir(), 'difflab-idx-empty-'));
    try {
      expect(() => findIdxFiles(empty, 'test')).toThrow(`${empty}: no t10k-images-idx3-ubyte(.gz) file for the test split`);
    } finally {
      rmSync(empty, { recursive: true });
    }
  });
});

describe('openIdxData', () => {
  it('gives x in [-1, 1] as [B, H, W, 1] float32 and int32 labels, for both splits', async () => {
    for (const split of ['train', 'test'] as const) {
      // The files are 2x3: size 3 resamples them to 3x3.
      const src = openIdxData(cfg({}), ctx(split));
      expect(src.size).toBe(N);
      expect(src.numClasses).toBe(3);
      expect(src.exampleShape).toEqual([3, 3, 1]);
      const b = src.batch([2, 0], new Rng(1));
      expect(b.x.shape).toEqual([2, 3, 3, 1]);
      expect(b.x.dtype).toBe('float32');
      expect(b.labels!.dtype).toBe('int32');
      expect([...(await b.labels!.data())]).toEqual([1, 2]);
      tf.dispose([b.x, b.labels!]);
    }
  });

  it('maps bytes v to v / 127.5 - 1 exactly at the native size', async () => {
    const pix = Uint8Array.from([0, 255, 51, 204, 1, 2, 3, 4]);
    writeFileSync(join(dir, 'sq-images'), idxBytes([2, 2, 2], pix));
    writeFileSync(join(dir, 'sq-labels'), idxBytes([2], [4, 9]));
    const src = openIdxData(cfg({ size: 2, train_images: join(dir, 'sq-images'), train_labels: join(dir, 'sq-labels') }), ctx());
    expect(src.numClasses).toBe(10);
    const b = src.batch([0, 1], new Rng(0));
    const x = await b.x.data();
    expect([...x]).toEqual([...pix].map((v) => Math.fround(v / 127.5 - 1)));
    expect(x[0]).toBe(-1);
    expect(x[1]).toBe(1);
    tf.dispose([b.x, b.labels!]);
  });

  it('applies limit, channels = 3 (replicated grey) and resampling', async () => {
    const src = openIdxData(cfg({ limit: 2, channels: 3, size: 6 }), ctx());
    expect(src.size).toBe(2);
    expect(src.exampleShape).toEqual([6, 6, 3]);
    expect(src.pixels.length).toBe(2 * 6 * 6 * 3);
    for (let p = 0; p < 36 * 2; p++) {
      expect(src.pixels[3 * p]).toBe(src.pixels[3 * p + 1]);
      expect(src.pixels[3 * p]).toBe(src.pixels[3 * p + 2]);
    }
    // Image 1 is brighter than image 0 everywhere (+10 per pixel before resampling).
    expect(src.pixels[36 * 3]! - src.pixels[0]!).toBe(10);
  });

  it('resolves a relative path against the cwd first, then against baseDir', () => {
    // Relative to baseDir only (nothing of that name in the cwd).
    const c: DataContext = { ...ctx(), baseDir: join(dir, '..') };
    const rel = dir.split('/').pop()!;
    expect(openIdxData(cfg({ path: rel }), c).size).toBe(N);
  });

  it('names the folder when it does not exist', () => {
    expect(() => openIdxData(cfg({ path: join(dir, 'missing') }), ctx())).toThrow(`${join(dir, 'missing')}: IDX data folder does not exist`);
  });

  it('batch() leaks no tensors beyond the ones it returns', async () => {
    const src = openIdxData(cfg({ random_flip: true }), ctx());
    await expectNoTensorLeak(async () => {
      const b = src.batch([0, 1, 2, 1], new Rng(3));
      expect(tf.memory().numTensors).toBeGreaterThanOrEqual(2);
      const total = b.x.sum();
      const sum = (await total.data())[0];
      tf.dispose([b.x, b.labels!, total]);
      return sum;
    }, 'sum');
    // Exactly two new tensors while the batch is alive.
    const before = tf.memory().numTensors;
    const b = src.batch([0], new Rng(0));
    expect(tf.memory().numTensors - before).toBe(2);
    tf.dispose([b.x, b.labels!]);
  });
});

const FASHION = fileURLToPath(new URL('../../../../shared/datasets/fashion-mnist', import.meta.url));
const hasFashion = existsSync(FASHION);
if (!hasFashion) console.warn(`SKIPPED real Fashion-MNIST tests: ${FASHION} is absent`);

describe.skipIf(!hasFashion)(`real Fashion-MNIST (skipped when ${FASHION} is absent)`, () => {
  it('has 60000 train and 10000 test 28x28 images, labels 0-9 with 6000/1000 per class', async () => {
    const train = await openImageData(imageDataSchema.parse({ path: FASHION }), ctx('train'));
    const test = await openImageData(imageDataSchema.parse({ path: FASHION }), ctx('test'));
    expect(train.size).toBe(60000);
    expect(test.size).toBe(10000);
    expect(train.exampleShape).toEqual([28, 28, 1]);
    expect(train.numClasses).toBe(10);
    expect(test.numClasses).toBe(10);
    for (const [src, per] of [[train, 6000], [test, 1000]] as const) {
      const counts = new Array<number>(10).fill(0);
      for (const l of src.labelIds!) counts[l]!++;
      expect(counts).toEqual(new Array(10).fill(per));
    }
    // Read from the file (and checked independently below): the first train label is 9 (ankle boot).
    expect(train.labelIds![0]).toBe(9);
    const rawLabels = gunzipSync(readFileSync(join(FASHION, 'train-labels-idx1-ubyte.gz')));
    expect(train.labelIds![0]).toBe(rawLabels[8]);
  });

  it('batch() of the first image equals an independent decode of the file', async () => {
    const train = openIdxData(idxDataSchema.parse({ format: 'idx', path: FASHION, limit: 5 }), ctx('train'));
    expect(train.size).toBe(5);
    const raw = gunzipSync(readFileSync(join(FASHION, 'train-images-idx3-ubyte.gz')));
    expect(raw.readUInt32BE(0)).toBe(0x803);
    const b = train.batch([0], new Rng(0));
    const x = await b.x.data();
    expect(b.x.shape).toEqual([1, 28, 28, 1]);
    for (let k = 0; k < 784; k++) expect(x[k]).toBe(Math.fround(raw[16 + k]! / 127.5 - 1));
    expect(Math.min(...x)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...x)).toBeLessThanOrEqual(1);
    tf.dispose([b.x, b.labels!]);
  });
});
