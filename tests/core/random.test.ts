import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/index.js';

describe('Rng', () => {
  it('is reproducible from a seed and differs across seeds', () => {
    const a = new Rng(42).normalArray(8);
    const b = new Rng(42).normalArray(8);
    const c = new Rng(43).normalArray(8);
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
  });

  it('resumes exactly from a saved state (including the cached Box-Muller normal)', () => {
    const r = new Rng(5);
    r.normal(); // leaves a spare normal cached
    const state = JSON.parse(JSON.stringify(r.getState()));
    const expected = r.normalArray(5);
    expect([...new Rng(state).normalArray(5)]).toEqual([...expected]);
  });

  it('draws standard normals and uniforms with the right moments', () => {
    const r = new Rng(1);
    const n = 200_000;
    const x = r.normalArray(n);
    let m = 0;
    let v = 0;
    for (const xi of x) m += xi;
    m /= n;
    for (const xi of x) v += (xi - m) ** 2;
    v /= n - 1;
    // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
    expect(Math.abs(m)).toBeLessThan(0.011);
    expect(Math.abs(v - 1)).toBeLessThan(0.016);
    const u = r.uniformArray(n);
    let um = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const ui of u) {
      um += ui;
      lo = Math.min(lo, ui);
      hi = Math.max(hi, ui);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(um / n - 0.5)).toBeLessThan(0.004);
  });

  it('int() covers its range uniformly and shuffle() is a permutation', () => {
    const r = new Rng(3);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) counts[r.int(10)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    const perm = r.shuffle([...Array(50).keys()]);
    expect([...perm].sort((a, b) => a - b)).toEqual([...Array(50).keys()]);
    expect(perm).not.toEqual([...Array(50).keys()]);
  });

  it('rejects a non-finite seed', () => {
    expect(() => new Rng(Number.NaN)).toThrow('seed must be a finite number');
  });
});
