import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { cubicKernel, kernelInceptionDistance, mmd2Unbiased, sampleWithoutReplacement } from '../../../src/core/metrics/kid.js';
import { Rng } from '../../../src/core/random.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

function gaussian(n: number, d: number, shift: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n * d }, () => shift + rng.normal());
}

/** The biased V-statistic (i = j terms kept): what the unbiased estimator must differ from. */
function mmd2Biased(x: Float32Array, m: number, y: Float32Array, n: number, d: number): number {
  const row = (a: Float32Array, i: number): Float32Array => a.subarray(i * d, (i + 1) * d);
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) xx += cubicKernel(row(x, i), row(x, j));
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) yy += cubicKernel(row(y, i), row(y, j));
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) xy += cubicKernel(row(x, i), row(y, j));
  return xx / (m * m) + yy / (n * n) - (2 * xy) / (m * n);
}

describe('KID (Binkowski et al. 2018): unbiased MMD^2, cubic kernel (x.y/d + 1)^3', () => {
  it('matches hand-computed tiny examples', async () => {
    // X = {(1,0), (2,0)}, Y = {(0,1), (0,2)}, d = 2:
    // k(x1,x2) = (2/2+1)^3 = 8, k(y1,y2) = 8, every x.y = 0 so k(x,y) = 1:
    // MMD^2 = 2*8/2 + 2*8/2 - 2*4/4 = 14.
    const x = Float32Array.from([1, 0, 2, 0]);
    const y = Float32Array.from([0, 1, 0, 2]);
    expect(mmd2Unbiased(x, 2, y, 2, 2)).toBeCloseTo(14, 12);
    const kid = await expectNoTensorLeak(() => kernelInceptionDistance(x, 2, y, 2, 2, { subsets: 3, subsetSize: 2 }), 'KID');
    expect(kid.subsetSize).toBe(2);
    expect(kid.values).toHaveLength(3);
    expect(kid.mean).toBeCloseTo(14, 5);
    expect(kid.std).toBeCloseTo(0, 5);
    // X = {(1,0), (0,1)}, Y = {(1,1), (0,0)}: within-set dots 0 (k = 1), cross dots 1, 0, 1, 0
    // (k = 1.5^3, 1, 1.5^3, 1): MMD^2 = 1 + 1 - 2 (2 * 3.375 + 2) / 4 = -2.375 (unbiased: can be negative).
    expect(mmd2Unbiased(Float32Array.from([1, 0, 0, 1]), 2, Float32Array.from([1, 1, 0, 0]), 2, 2)).toBeCloseTo(-2.375, 12);
  });

  it('the subset estimate equals the direct host computation on the same rows', async () => {
    const rng = new Rng(5);
    const d = 8;
    const x = gaussian(40, d, 0, rng);
    const y = gaussian(30, d, 0.2, rng);
    // subsetSize is clamped to the smaller set (30): every subset holds all of y and 30 of the 40 x rows.
    const kid = await kernelInceptionDistance(x, 40, y, 30, d, { subsets: 2, subsetSize: 1000 });
    expect(kid.subsetSize).toBe(30);
    // Replay the first subset's draws (seed 0: x rows, then y rows) and compute MMD^2 directly on the host.
    const again = new Rng(0);
    const ix = sampleWithoutReplacement(40, 30, again);
    const iy = sampleWithoutReplacement(30, 30, again);
    const pick = (a: Float32Array, rows: number[]): Float32Array => {
      const out = new Float32Array(rows.length * d);
      rows.forEach((r, i) => out.set(a.subarray(r * d, (r + 1) * d), i * d));
      return out;
    };
    expect(kid.values[0]!).toBeCloseTo(mmd2Unbiased(pick(x, ix), 30, pick(y, iy), 30, d), 6);
  });

  it('is unbiased: averaged over 300 independent pairs of same-distribution sets it is 0 within 3 standard errors (the biased V-statistic is not)', () => {
    const rng = new Rng(6);
    const d = 4;
    const m = 10;
    const reps = 300;
    const u: number[] = [];
    const v: number[] = [];
    for (let r = 0; r < reps; r++) {
      const x = gaussian(m, d, 0, rng);
      const y = gaussian(m, d, 0, rng);
      u.push(mmd2Unbiased(x, m, y, m, d));
      v.push(mmd2Biased(x, m, y, m, d));
    }
    const mean = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
    const se = (a: number[]): number => Math.sqrt(a.reduce((p, q) => p + (q - mean(a)) ** 2, 0) / (a.length - 1) / a.length);
    expect(Math.abs(mean(u))).toBeLessThan(3 * se(u));
    // The V-statistic's bias is (E k(x,x) - E k(x,y)) * 2/m > 0, many standard errors away from 0.
    expect(mean(v)).toBeGreaterThan(5 * se(v));
  });

  it('two samples of one distribution: |KID| within its std over subsets; shifted samples: clearly positive and growing with the shift', async () => {
    const rng = new Rng(7);
    const d = 16;
    const n = 1500;
    const x = gaussian(n, d, 0, rng);
    const same = await kernelInceptionDistance(x, n, gaussian(n, d, 0, rng), n, d, { subsets: 50, subsetSize: 500 });
    expect(Math.abs(same.mean)).toBeLessThan(same.std);
    const small = await kernelInceptionDistance(x, n, gaussian(n, d, 0.25, rng), n, d, { subsets: 50, subsetSize: 500 });
    const large = await kernelInceptionDistance(x, n, gaussian(n, d, 0.5, rng), n, d, { subsets: 50, subsetSize: 500 });
    expect(small.mean).toBeGreaterThan(5 * small.std);
    expect(large.mean).toBeGreaterThan(2 * small.mean);
  });

  it('validates its inputs; leaves no tensors behind', async () => {
    await expect(kernelInceptionDistance(new Float32Array(2), 1, new Float32Array(4), 2, 2)).rejects.toThrow(/at least 2/);
    await expect(kernelInceptionDistance(new Float32Array(4), 2, new Float32Array(4), 2, 2, { subsets: 0 })).rejects.toThrow(/subsets/);
    const before = tf.memory().numTensors;
    await kernelInceptionDistance(gaussian(50, 3, 0, new Rng(1)), 50, gaussian(50, 3, 0, new Rng(2)), 50, 3, { subsets: 4, subsetSize: 20 });
    expect(tf.memory().numTensors).toBe(before);
    const draw = sampleWithoutReplacement(10, 10, new Rng(3));
    expect([...draw].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
