import { describe, expect, it } from 'vitest';
import { symmetricEigen } from '../../../src/core/analytic.js';
import { matMulSquare, sqrtmPsd, symmetricEigenQL } from '../../../src/core/metrics/linalg.js';
import { Rng } from '../../../src/core/random.js';

/** A random symmetric matrix B + B^T (indefinite) or B B^T (PSD, rank r). */
function randomSymmetric(d: number, rng: Rng, psdRank?: number): Float64Array {
  const r = psdRank ?? d;
  const b = Float64Array.from({ length: d * r }, () => rng.normal());
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      if (psdRank !== undefined) for (let k = 0; k < r; k++) s += b[i * r + k]! * b[j * r + k]!;
      else s = b[i * d + j]! + b[j * d + i]!;
      a[i * d + j] = s;
    }
  }
  return a;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe('symmetricEigenQL (Householder + implicit QL)', () => {
  it('reconstructs A = V diag(l) V^T with orthonormal V, eigenvalues ascending, for d = 1..40', () => {
    const rng = new Rng(1);
    for (const d of [1, 2, 3, 7, 16, 40]) {
      const a = randomSymmetric(d, rng);
      const { values, vectors } = symmetricEigenQL(a, d);
      for (let k = 1; k < d; k++) expect(values[k]!).toBeGreaterThanOrEqual(values[k - 1]!);
      const rec = new Float64Array(d * d);
      const vtv = new Float64Array(d * d);
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) {
          let s = 0;
          let o = 0;
          for (let k = 0; k < d; k++) {
            s += vectors[i * d + k]! * values[k]! * vectors[j * d + k]!;
            o += vectors[k * d + i]! * vectors[k * d + j]!;
          }
          rec[i * d + j] = s;
          vtv[i * d + j] = o;
        }
      }
      const eye = Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0));
      expect(maxAbs(rec, a)).toBeLessThan(1e-11 * Math.max(1, d));
      expect(maxAbs(vtv, eye)).toBeLessThan(1e-12 * Math.max(1, d));
    }
  });

  it('agrees with the Jacobi eigenvalues of core/analytic (an independent algorithm)', () => {
    const rng = new Rng(2);
    const d = 24;
    const a = randomSymmetric(d, rng);
    const ql = Array.from(symmetricEigenQL(a, d).values);
    const jac = Array.from(symmetricEigen(a, d).values).sort((x, y) => x - y);
    expect(maxAbs(ql, jac)).toBeLessThan(1e-10);
  });

  it('handles a diagonal matrix, repeated eigenvalues and a zero matrix', () => {
    const d = 4;
    const diag = Float64Array.from([3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, -2]);
    expect(Array.from(symmetricEigenQL(diag, d).values)).toEqual([-2, 1, 3, 3]);
    expect(Array.from(symmetricEigenQL(new Float64Array(9), 3).values)).toEqual([0, 0, 0]);
  });
});

describe('sqrtmPsd', () => {
  it('squares back to a PSD matrix, including a rank-deficient one', () => {
    const rng = new Rng(3);
    for (const [d, r] of [[10, 10], [12, 4]] as const) {
      const a = randomSymmetric(d, rng, r);
      const s = sqrtmPsd(a, d);
      expect(maxAbs(matMulSquare(s, s, d), a)).toBeLessThan(1e-10 * d);
      // The root is symmetric and PSD.
      expect(maxAbs(s, Float64Array.from({ length: d * d }, (_, i) => s[(i % d) * d + Math.floor(i / d)]!))).toBe(0);
      expect(symmetricEigenQL(s, d).values[0]!).toBeGreaterThan(-1e-7);
    }
  });

  it('matMulSquare equals the textbook triple loop', () => {
    const rng = new Rng(4);
    const d = 5;
    const a = Float64Array.from({ length: d * d }, () => rng.normal());
    const b = Float64Array.from({ length: d * d }, () => rng.normal());
    const c = matMulSquare(a, b, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += a[i * d + k]! * b[k * d + j]!;
        expect(c[i * d + j]).toBeCloseTo(s, 12);
      }
    }
  });
});
