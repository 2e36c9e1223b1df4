import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { Rng } from '../../../src/core/random.js';
import { decodePngToTensor, readImagePixels, writeImageGrid, writeTrajectoryStrip } from '../../../src/plugins/image/writers.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

let dir: string;

beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'difflab-writers-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Value of image b at (y, x, c), spread over [-1.2, 1.2] so that clamping matters. */
const val = (b: number, y: number, x: number, c: number) => ((b * 31 + y * 7 + x * 3 + c * 11) % 25) / 10 - 1.2;
const toByte = (v: number) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);

function batch(b: number, h: number, w: number, c: number): tf.Tensor4D {
  const data = new Float32Array(b * h * w * c);
  for (let i = 0; i < b; i++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) data[((i * h + y) * w + x) * c + k] = val(i, y, x, k);
  return tf.tensor4d(data, [b, h, w, c]);
}

describe('writeImageGrid', () => {
  it('writes an RGB grid of the expected size whose pixels round-trip', async () => {
    const x = batch(5, 6, 4, 3);
    const path = join(dir, 'grid-rgb.png');
    const info = await expectNoTensorLeak(() => writeImageGrid(x, path, { cols: 3, border: 2 }), 'writeImageGrid');
    // 3 columns x 2 rows of 4x6 images with 2-px borders.
    expect(info).toMatchObject({ width: 3 * 4 + 4 * 2, height: 2 * 6 + 3 * 2, channels: 3, rows: 2, cols: 3 });
    const meta = await sharp(path).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 20, 18, 3]);
    const img = await readImagePixels(path);
    const px = (y: number, xx: number) => [...img.data.subarray((y * img.width + xx) * 3, (y * img.width + xx) * 3 + 3)];
    for (const [b, y, xx] of [[0, 0, 0], [1, 3, 2], [4, 5, 3], [2, 1, 1]] as const) {
      const row = Math.floor(b / 3);
      const col = b % 3;
      const gy = 2 + row * (6 + 2) + y;
      const gx = 2 + col * (4 + 2) + xx;
      expect(px(gy, gx)).toEqual([0, 1, 2].map((c) => toByte(Math.fround(val(b, y, xx, c)))));
    }
    expect(px(0, 0)).toEqual([255, 255, 255]); // border
    expect(px(17, 19)).toEqual([255, 255, 255]); // the empty sixth cell
    x.dispose();
  });

  it('writes grey images as a one-channel PNG, with clamping, and accepts plain arrays', async () => {
    const data = Float32Array.from([-3, -1, 0, 1, 5, Number.NaN, 0.5, -0.5]);
    const path = join(dir, 'grid-grey.png');
    const info = await writeImageGrid({ data, shape: [2, 2, 2, 1] }, path, { border: 1, borderValue: 128 });
    expect(info).toMatchObject({ width: 2 * 2 + 3, height: 2 + 2, channels: 1, cols: 2, rows: 1 });
    const img = await readImagePixels(path);
    expect(img.channels).toBe(1);
    const at = (y: number, x: number) => img.data[y * img.width + x];
    expect([at(1, 1), at(1, 2), at(2, 1), at(2, 2)]).toEqual([0, 0, 128, 255]);
    expect([at(1, 4), at(1, 5), at(2, 4), at(2, 5)]).toEqual([255, 0, 191, 64]);
    expect(at(0, 0)).toBe(128);
    const t = await decodePngToTensor(path);
    expect(t.shape).toEqual([4, 7, 1]);
    expect((await t.data())[1 * 7 + 2]).toBe(-1);
    t.dispose();
  });

  it('writes via a temporary file (none left behind); a rejected write leaves the existing file untouched', async () => {
    const path = join(dir, 'atomic', 'grid.png');
    const x = batch(1, 2, 2, 1);
    await writeImageGrid(x, path);
    expect(readdirSync(join(dir, 'atomic'))).toEqual(['grid.png']);
    writeFileSync(join(dir, 'atomic', 'keep.png'), 'old');
    await expect(writeImageGrid(batch(1, 2, 2, 2), join(dir, 'atomic', 'keep.png'))).rejects.toThrow(/keep\.png: images must have 1 or 3 channels/);
    expect(readdirSync(join(dir, 'atomic')).sort()).toEqual(['grid.png', 'keep.png']);
    expect(readFileSync(join(dir, 'atomic', 'keep.png'), 'utf8')).toBe('old');
    x.dispose();
  });

  it('rejects bad shapes and options with one-line errors naming the file', async () => {
    const p = join(dir, 'bad.png');
    await expect(writeImageGrid({ data: [0], shape: [1, 1, 1] }, p)).rejects.toThrow(`${p}: writeImageGrid expects [B, H, W, C], got shape [1, 1, 1]`);
    await expect(writeImageGrid({ data: [0, 0], shape: [1, 1, 1, 1] }, p)).rejects.toThrow(`${p}: 2 values do not fill shape [1, 1, 1, 1]`);
    await expect(writeImageGrid({ data: [0], shape: [1, 1, 1, 1] }, p, { cols: 0 })).rejects.toThrow(`${p}: cols must be a positive integer`);
    expect(existsSync(p)).toBe(false);
  });
});

describe('writeTrajectoryStrip', () => {
  it('writes two rows (x and the denoised estimate) of equally sized frames', async () => {
    const rng = new Rng(3);
    const xs = [0, 1, 2, 3].map(() => rng.normalTensor([5, 6, 1]));
    const x0 = [0, 1, 2, 3].map((k) => tf.fill([5, 6, 1], -1 + (2 * k) / 3));
    const path = join(dir, 'traj.png');
    const info = await expectNoTensorLeak(() => writeTrajectoryStrip([xs, x0], path, { border: 1 }), 'writeTrajectoryStrip');
    expect(info).toMatchObject({ width: 4 * 6 + 5, height: 2 * 5 + 3, rows: 2, cols: 4, channels: 1 });
    const img = await readImagePixels(path);
    // Second row, frame k: constant -1 + 2k/3 -> bytes 0, 85, 170, 255.
    for (let k = 0; k < 4; k++) expect(img.data[(1 + 5 + 1 + 2) * img.width + 1 + k * 7 + 3]).toBe([0, 85, 170, 255][k]);
    // First row, frame 2, pixel (1, 4) round-trips with clamping.
    const v = (await xs[2]!.data())[1 * 6 + 4]!;
    expect(img.data[(1 + 1) * img.width + 1 + 2 * 7 + 4]).toBe(toByte(v));
    tf.dispose([...xs, ...x0]);
  });

  it('accepts one row of frames (also [1, H, W, C]) and min-max scales with scaling: minmax', async () => {
    const a = { data: [10, 20, 30, 40], shape: [2, 2, 1] };
    const b = tf.tensor4d([-5, 0, 0, 5], [1, 2, 2, 1]);
    const path = join(dir, 'strip.png');
    const info = await writeTrajectoryStrip([a, b], path, { border: 0, scaling: 'minmax' });
    expect(info).toMatchObject({ width: 4, height: 2, rows: 1, cols: 2 });
    const img = await readImagePixels(path);
    expect([...img.data]).toEqual([0, 85, 0, 128, 170, 255, 128, 255]);
    b.dispose();
  });

  it('pads a short row, and rejects mismatched frames naming the frame', async () => {
    const f = (v: number) => ({ data: new Array(12).fill(v), shape: [2, 2, 3] });
    const path = join(dir, 'ragged.png');
    const info = await writeTrajectoryStrip([[f(0), f(0), f(0)], [f(1)]], path, { border: 1 });
    expect(info).toMatchObject({ cols: 3, rows: 2, width: 3 * 2 + 4, height: 2 * 2 + 3, channels: 3 });
    const p = join(dir, 'mismatch.png');
    await expect(writeTrajectoryStrip([f(0), { data: [0, 0, 0, 0], shape: [2, 2, 1] }], p)).rejects.toThrow(
      `${p}: frame 1 has shape [2, 2, 1], frame 0 has [2, 2, 3]`,
    );
    await expect(writeTrajectoryStrip([], p)).rejects.toThrow(`${p}: writeTrajectoryStrip needs at least one frame`);
    expect(existsSync(p)).toBe(false);
  });
});
