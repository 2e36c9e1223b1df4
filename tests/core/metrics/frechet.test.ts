import { describe, expect, it } from 'vitest';
import { cholesky } from '../../../src/core/analytic.js';
import { frechetDistance, frechetDistanceFromFeatures, gaussianStats } from '../../../src/core/metrics/frechet.js';
import type { GaussianStats } from '../../../src/core/metrics/types.js';
import { Rng } from '../../../src/core/random.js';

/** n draws of N(mean, cov) as float32 rows, via the Cholesky factor. */
function sampleGaussian(mean: readonly number[], cov: ArrayLike<number>, n: number, rng: Rng): Float32Array {
  const d = mean.length;
  const l = cholesky(cov, d);
  const out = new Float32Array(n * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) z[k] = rng.normal();
    for (let r = 0; r < d; r++) {
      let s = mean[r]!;
      for (let k = 0; k <= r; k++) s += l[r * d + k]! * z[k]!;
      out[i * d + r] = s;
    }
  }
  return out;
}

function stats(mean: readonly number[], cov: readonly number[]): GaussianStats {
  return { n: Infinity, dim: mean.length, mean: Float64Array.from(mean), cov: Float64Array.from(cov) };
}

/**
 * FD of two 2-D Gaussians in closed form without any eigendecomposition:
 * S1 S2 has non-negative eigenvalues l1, l2, so
 * (tr sqrt(S1 S2))^2 = l1 + l2 + 2 sqrt(l1 l2) = tr(S1 S2) + 2 sqrt(det S1 det S2).
 */
function fd2d(m1: readonly number[], s1: readonly number[], m2: readonly number[], s2: readonly number[]): number {
  const tr12 = s1[0]! * s2[0]! + s1[1]! * s2[2]! + s1[2]! * s2[1]! + s1[3]! * s2[3]!;
  const det1 = s1[0]! * s1[3]! - s1[1]! * s1[2]!;
  const det2 = s2[0]! * s2[3]! - s2[1]! * s2[2]!;
  const trSqrt = Math.sqrt(tr12 + 2 * Math.sqrt(det1 * det2));
  const dm = (m1[0]! - m2[0]!) ** 2 + (m1[1]! - m2[1]!) ** 2;
  return dm + s1[0]! + s1[3]! + s2[0]! + s2[3]! - 2 * trSqrt;
}

/** A random orthogonal d x d matrix (Gram-Schmidt of Gaussian columns), row-major. */
function randomOrthogonal(d: number, rng: Rng): Float64Array {
  const q = Float64Array.from({ length: d * d }, () => rng.normal());
  for (let j = 0; j < d; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += q[i * d + j]! * q[i * d + p]!;
      for (let i = 0; i < d; i++) q[i * d + j]! -= dot * q[i * d + p]!;
    }
    let norm = 0;
    for (let i = 0; i < d; i++) norm += q[i * d + j]! ** 2;
    for (let i = 0; i < d; i++) q[i * d + j]! /= Math.sqrt(norm);
  }
  return q;
}

/** Q diag(e) Q^T. */
function withEigen(q: Float64Array, e: readonly number[]): Float64Array {
  const d = e.length;
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) a[i * d + j]! += q[i * d + k]! * e[k]! * q[j * d + k]!;
  return a;
}

describe('frechetDistance (Heusel et al. 2017, eq. 6)', () => {
  const m1 = [0.5, -1];
  const s1 = [2, 0.6, 0.6, 1];
  const m2 = [-0.25, 0.75];
  const s2 = [0.5, -0.3, -0.3, 1.5];

  it('equals the eigen-free 2-D closed form on exact statistics', () => {
    const expected = fd2d(m1, s1, m2, s2);
    const got = frechetDistance(stats(m1, s1), stats(m2, s2));
    expect(got.value).toBeCloseTo(expected, 12);
    expect(got.meanTerm).toBeCloseTo(0.75 ** 2 + 1.75 ** 2, 12);
    expect(got.meanTerm + got.covTerm).toBeCloseTo(got.value, 12);
  });

  it('estimated from 100k samples per Gaussian, approaches the closed form', () => {
    const rng = new Rng(11);
    const n = 100_000;
    const x = sampleGaussian(m1, s1, n, rng);
    const y = sampleGaussian(m2, s2, n, rng);
    const expected = fd2d(m1, s1, m2, s2);
    const got = frechetDistanceFromFeatures(x, n, y, n, 2);
    // Sampling error of the moments at n = 1e5 is ~1e-2 here; a wrong formula is off by O(1).
    expect(Math.abs(got - expected)).toBeLessThan(0.03);
    expect(expected).toBeGreaterThan(3);
  });

  it('commuting covariances in 48-D: ||mu1-mu2||^2 + sum (sqrt(a_k) - sqrt(b_k))^2', () => {
    const rng = new Rng(12);
    const d = 48;
    const q = randomOrthogonal(d, rng);
    const a = Array.from({ length: d }, () => 0.1 + 3 * rng.uniform());
    const b = Array.from({ length: d }, () => 0.1 + 3 * rng.uniform());
    const mu1 = Array.from({ length: d }, () => rng.normal());
    const mu2 = Array.from({ length: d }, () => rng.normal());
    let expected = 0;
    for (let k = 0; k < d; k++) expected += (mu1[k]! - mu2[k]!) ** 2 + (Math.sqrt(a[k]!) - Math.sqrt(b[k]!)) ** 2;
    const got = frechetDistance(
      { n: 0, dim: d, mean: Float64Array.from(mu1), cov: withEigen(q, a) },
      { n: 0, dim: d, mean: Float64Array.from(mu2), cov: withEigen(q, b) },
    ).value;
    expect(got).toBeCloseTo(expected, 9);
  });

  it('diagonal covariances reduce to sum (mu1-mu2)^2 + sum (sqrt(v1) - sqrt(v2))^2', () => {
    const d = 5;
    const v1 = [1, 4, 0.25, 9, 2];
    const v2 = [4, 1, 1, 0.01, 2];
    const diag = (v: number[]): number[] => Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? v[i / (d + 1)]! : 0));
    const mu1 = [0, 1, 2, 3, 4];
    const mu2 = [1, 1, 0, 3, 5];
    const expected = 1 + 0 + 4 + 0 + 1 + (1 + 1 + 0.25 + 2.9 ** 2 + 0);
    expect(frechetDistance(stats(mu1, diag(v1)), stats(mu2, diag(v2))).value).toBeCloseTo(expected, 12);
  });

  it('is symmetric and ~0 for a set against itself (full and rank-deficient covariances)', () => {
    const rng = new Rng(13);
    for (const [n, d] of [[500, 16], [20, 32]] as const) {
      // Correlated features: a random linear map of Gaussian noise; with n < d the covariance is singular.
      const w = Float64Array.from({ length: d * d }, () => rng.normal());
      const make = (shift: number): Float32Array => {
        const out = new Float32Array(n * d);
        for (let i = 0; i < n; i++) {
          const z = Array.from({ length: d }, () => rng.normal());
          for (let r = 0; r < d; r++) {
            let s = shift;
            for (let k = 0; k < d; k++) s += w[r * d + k]! * z[k]!;
            out[i * d + r] = s;
          }
        }
        return out;
      };
      const x = make(0);
      const y = make(0.3);
      const sx = gaussianStats(x, n, d);
      const sy = gaussianStats(y, n, d);
      const ab = frechetDistance(sx, sy).value;
      const ba = frechetDistance(sy, sx).value;
      expect(Math.abs(ab - ba)).toBeLessThan(1e-9 * ab);
      const trace = Array.from({ length: d }, (_, k) => sx.cov[k * d + k]!).reduce((p, q) => p + q, 0);
      // Relative to the scale of the features (tr S ~ d^2 here). A singular S
      // has round-off eigenvalues ~eps ||S||^2 in its null space, whose square
      // roots (~sqrt(eps) ||S||) bound the accuracy: 1e-6 relative then.
      expect(Math.abs(frechetDistance(sx, sx).value)).toBeLessThan((n > d ? 1e-9 : 1e-6) * trace);
      expect(ab).toBeGreaterThan(0);
    }
  });

  it('gaussianStats: the mean and numpy.cov (ddof 1) of a small set', () => {
    const x = [1, 2, 3, 6, 5, 4, 2, 2];
    const s = gaussianStats(x, 4, 2);
    expect(Array.from(s.mean)).toEqual([2.75, 3.5]);
    // Centred columns: [-1.75, 0.25, 2.25, -0.75] and [-1.5, 2.5, 0.5, -1.5].
    const c00 = (1.75 ** 2 + 0.25 ** 2 + 2.25 ** 2 + 0.75 ** 2) / 3;
    const c01 = (1.75 * 1.5 + 0.25 * 2.5 + 2.25 * 0.5 + 0.75 * 1.5) / 3;
    const c11 = (1.5 ** 2 + 2.5 ** 2 + 0.5 ** 2 + 1.5 ** 2) / 3;
    expect(s.cov[0]).toBeCloseTo(c00, 14);
    expect(s.cov[1]).toBeCloseTo(c01, 14);
    expect(s.cov[2]).toBeCloseTo(c01, 14);
    expect(s.cov[3]).toBeCloseTo(c11, 14);
    expect(() => gaussianStats([1, 2], 1, 2)).toThrow(/at least 2 rows/);
    expect(() => frechetDistance(s, gaussianStats([1, 2, 3, 4, 5, 6], 2, 3))).toThrow(/dimensions differ/);
  });
});
