import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { formatIssues } from '../../../src/core/config/load.js';
import { Rng } from '../../../src/core/random.js';
import { imageDataSchema } from '../../../src/plugins/image/config.js';
import { resolveDataPath } from '../../../src/plugins/image/data/paths.js';
import { conformImages, convertChannels, createResizer } from '../../../src/plugins/image/data/pixels.js';
import { createImageDataSource } from '../../../src/plugins/image/data/source.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** 4 images of 3x5x2 whose byte at (i, y, x, c) = 50 i + 10 y + 2 x + c: every pixel distinct within an image. */
const H = 3;
const W = 5;
const C = 2;
const pixels = Uint8Array.from({ length: 4 * H * W * C }, (_, k) => {
  const c = k % C;
  const x = Math.floor(k / C) % W;
  const y = Math.floor(k / (C * W)) % H;
  const i = Math.floor(k / (C * W * H));
  return 50 * i + 10 * y + 2 * x + c;
});
const unit = (v: number) => Math.fround(v / 127.5 - 1);
const make = (randomFlip: boolean) =>
  createImageDataSource({ pixels, height: H, width: W, channels: C, labels: Int32Array.from([0, 1, 2, 1]), numClasses: 3, randomFlip, description: 'mem' });

async function take(src: ReturnType<typeof make>, idx: number[], seed: number): Promise<Float32Array> {
  const b = src.batch(idx, new Rng(seed));
  const x = (await b.x.data()) as Float32Array;
  tf.dispose([b.x, b.labels!]);
  return x;
}

describe('createImageDataSource', () => {
  it('without random_flip returns the cached pixels in [-1, 1], never mirrored', async () => {
    const src = make(false);
    expect(src.size).toBe(4);
    expect(src.exampleShape).toEqual([H, W, C]);
    const x = await take(src, [3, 0, 3], 1);
    const stride = H * W * C;
    for (let k = 0; k < stride; k++) {
      expect(x[k]).toBe(unit(pixels[3 * stride + k]!));
      expect(x[stride + k]).toBe(unit(pixels[k]!));
    }
  });

  it('flips exactly the examples whose rng draw is < 0.5, as a true left-right mirror', async () => {
    const src = make(true);
    const idx = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];
    for (const seed of [1, 2, 3]) {
      const x = await take(src, idx, seed);
      const draws = new Rng(seed);
      const stride = H * W * C;
      idx.forEach((i, j) => {
        const flip = draws.uniform() < 0.5;
        for (let y = 0; y < H; y++)
          for (let xx = 0; xx < W; xx++)
            for (let c = 0; c < C; c++) {
              const srcX = flip ? W - 1 - xx : xx;
              expect(x[j * stride + (y * W + xx) * C + c]).toBe(unit(pixels[i * stride + (y * W + srcX) * C + c]!));
            }
      });
    }
  });

  it('is reproducible by seed and differs across seeds', async () => {
    const src = make(true);
    const idx = Array.from({ length: 32 }, (_, j) => j % 4);
    const a = await take(src, idx, 11);
    const b = await take(src, idx, 11);
    const c = await take(src, idx, 12);
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
  });

  it('rejects out-of-range and non-integer indices, naming the source and position', () => {
    const src = make(false);
    expect(() => src.batch([0, 4], new Rng(0))).toThrow('mem: batch index 4 (position 1) is out of range [0, 4)');
    expect(() => src.batch([1.5], new Rng(0))).toThrow('mem: batch index 1.5 (position 0) is out of range [0, 4)');
    expect(() => src.batch([-1], new Rng(0))).toThrow(RangeError);
  });

  it('rejects a cache that is not whole images, or labels of the wrong count', () => {
    expect(() => createImageDataSource({ pixels: new Uint8Array(7), height: 2, width: 2, channels: 1, randomFlip: false, description: 'odd' })).toThrow(
      'odd: cache of 7 bytes is not a whole number of 2x2x1 images',
    );
    expect(() =>
      createImageDataSource({ pixels: new Uint8Array(8), height: 2, width: 2, channels: 1, labels: new Int32Array(3), randomFlip: false, description: 'lab' }),
    ).toThrow('lab: 3 labels for 2 images');
  });

  it('batch() creates exactly x and labels, and leaks nothing once they are disposed', async () => {
    const src = make(true);
    await expectNoTensorLeak(() => take(src, [0, 1, 2, 3], 4), 'batch');
    const before = tf.memory().numTensors;
    const b = src.batch([2, 1], new Rng(0));
    expect(tf.memory().numTensors - before).toBe(2);
    expect(b.labels!.dtype).toBe('int32');
    expect([...(await b.labels!.data())]).toEqual([2, 1]);
    tf.dispose([b.x, b.labels!]);
    const unlabelled = createImageDataSource({ pixels, height: H, width: W, channels: C, randomFlip: false, description: 'u' });
    expect(unlabelled.numClasses).toBeUndefined();
    const u = unlabelled.batch([0], new Rng(0));
    expect(u.labels).toBeUndefined();
    u.x.dispose();
  });
});

describe('pixel helpers', () => {
  it('converts channels: grey to RGB replicates, RGB to grey is BT.601 luma, alpha is dropped', () => {
    expect([...convertChannels(Uint8Array.from([7, 200]), 2, 1, 3)]).toEqual([7, 7, 7, 200, 200, 200]);
    expect([...convertChannels(Uint8Array.from([255, 0, 0, 0, 255, 0]), 2, 3, 1)]).toEqual([76, 150]);
    expect([...convertChannels(Uint8Array.from([9, 128, 1, 2, 3, 4]), 3, 2, 1)]).toEqual([9, 1, 3]);
    expect([...convertChannels(Uint8Array.from([1, 2, 3, 4]), 1, 4, 3)]).toEqual([1, 2, 3]);
  });

  it('resampling keeps constant images constant and averages when downsampling by 2', () => {
    const resize = createResizer(4, 4, 1, 2, 2);
    const out = new Uint8Array(4);
    resize(new Uint8Array(16).fill(77), out, 0);
    expect([...out]).toEqual([77, 77, 77, 77]);
    // Left two columns 0, right two columns 200: the halves stay apart, each side averaged toward its own value.
    const img = Uint8Array.from({ length: 16 }, (_, k) => (k % 4 < 2 ? 0 : 200));
    resize(img, out, 0);
    expect(out[0]).toBeLessThan(60);
    expect(out[1]).toBeGreaterThan(140);
    expect(out[0]).toBe(out[2]);
    expect(out[0]! + out[1]!).toBe(200); // symmetric filter
  });

  it('conformImages is the identity at the same shape and resizes each image separately', () => {
    expect(conformImages(pixels, 4, [H, W, C], [H, W, C])).toBe(pixels);
    const two = Uint8Array.from([...new Array(9).fill(10), ...new Array(9).fill(250)]);
    const out = conformImages(two, 2, [3, 3, 1], [5, 5, 3]);
    expect(out.length).toBe(2 * 75);
    expect(new Set(out.subarray(0, 75))).toEqual(new Set([10]));
    expect(new Set(out.subarray(75))).toEqual(new Set([250]));
  });
});

describe('data config schema', () => {
  it('defaults to Fashion-MNIST IDX', () => {
    expect(imageDataSchema.parse({})).toEqual({
      format: 'idx',
      path: '../shared/datasets/fashion-mnist',
      train_images: null,
      train_labels: null,
      test_images: null,
      test_labels: null,
      size: 28,
      channels: 1,
      random_flip: false,
      limit: null,
      skip_bad_files: false,
    });
  });

  it('gives each format its defaults', () => {
    expect(imageDataSchema.parse({ format: 'folder', path: 'imgs' })).toMatchObject({ size: 64, channels: 3, fit: 'cover', test_path: null });
    expect(imageDataSchema.parse({ format: 'cifar10', path: 'c' })).toMatchObject({ size: 32, channels: 3, limit: null });
  });

  const errors: [unknown, string][] = [
    [{ format: 'png' }, "cfg.yaml: data.format: format must be one of 'idx', 'folder', 'cifar10'"],
    [{ format: 'folder', path: 'p', channels: 4 }, 'cfg.yaml: data.channels: channels must be 1 or 3'],
    [{ format: 'folder', path: 'p', fit: 'stretch' }, 'cfg.yaml: data.fit:'],
    [{ format: 'cifar10', path: 'p', fit: 'cover' }, 'cfg.yaml: data.fit: unknown key'],
    [{ format: 'idx', randomFlip: true }, 'cfg.yaml: data.randomFlip: unknown key'],
    [{ limit: 0 }, 'cfg.yaml: data.limit:'],
    [{ format: 'idx', test_images: 'a' }, 'cfg.yaml: data.test_labels: test_images and test_labels must be set together'],
    [{ format: 'folder' }, 'cfg.yaml: data.path:'],
  ];
  for (const [raw, msg] of errors) {
    it(`rejects ${JSON.stringify(raw)} with a message naming the key`, () => {
      const r = imageDataSchema.safeParse(raw);
      expect(r.success).toBe(false);
      const line = formatIssues('cfg.yaml', r.error!, ['data']);
      expect(line.startsWith(msg)).toBe(true);
      expect(line).not.toContain('\n');
    });
  }
});

describe('resolveDataPath', () => {
  let cwd: string;
  let base: string;
  beforeAll(() => {
    cwd = mkdtempSync(join(tmpdir(), 'difflab-cwd-'));
    base = mkdtempSync(join(tmpdir(), 'difflab-base-'));
    mkdirSync(join(cwd, 'both'));
    mkdirSync(join(base, 'both'));
    mkdirSync(join(base, 'base-only'));
  });
  afterAll(() => {
    rmSync(cwd, { recursive: true, force: true });
    rmSync(base, { recursive: true, force: true });
  });

  it('keeps absolute paths, prefers the cwd when the path exists there, else uses baseDir', () => {
    expect(resolveDataPath('/abs/x', base, cwd)).toBe('/abs/x');
    expect(resolveDataPath('both', base, cwd)).toBe(join(cwd, 'both'));
    expect(resolveDataPath('base-only', base, cwd)).toBe(join(base, 'base-only'));
    expect(resolveDataPath('nowhere', base, cwd)).toBe(join(base, 'nowhere'));
  });
});
