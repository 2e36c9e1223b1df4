import { matMulSquare, sqrtmPsd, symmetricEigenQL } from './linalg.js';
import type { GaussianStats } from './types.js';

/**
 * Mean and unbiased covariance of n feature rows (row-major [n, d]), summed
 * in float64 after centring (no cancellation when |mean| >> std). Divides
 * by n - 1 like numpy.cov, which the reference FID code uses
 * (https://github.com/bioinf-jku/TTUR, `calculate_activation_statistics`).
 */
export function gaussianStats(features: ArrayLike<number>, n: number, d: number): GaussianStats {
  if (!(Number.isInteger(n) && n >= 2 && Number.isInteger(d) && d >= 1)) {
    throw new Error(`gaussianStats: need at least 2 rows of at least 1 feature, got n=${n}, d=${d}`);
  }
  if (features.length !== n * d) throw new Error(`gaussianStats: ${features.length} values for [${n}, ${d}]`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += features[i * d + j] as number;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = (features[i * d + j] as number) - mean[j]!;
    // Lower triangle only; mirrored below.
    for (let a = 0; a < d; a++) {
      const ra = row[a]!;
      if (ra === 0) continue;
      const base = a * d;
      for (let b = 0; b <= a; b++) cov[base + b]! += ra * row[b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      const v = cov[a * d + b]! / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { n, dim: d, mean, cov };
}

export interface FrechetTerms {
  /** The Frechet distance. */
  readonly value: number;
  /** ||mu1 - mu2||^2 */
  readonly meanTerm: number;
  /** tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) */
  readonly covTerm: number;
}

/**
 * The Frechet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2),
 * Heusel et al. 2017 (https://arxiv.org/abs/1706.08500) eq. 6:
 *
 *   d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
 *
 * tr((S1 S2)^(1/2)) is computed as tr((A S2 A)^(1/2)) with A = S1^(1/2):
 * S1 S2 = A (A S2 A) A^(-1) is similar to the symmetric PSD matrix A S2 A,
 * so both have the same (non-negative) eigenvalues and the trace of the
 * square root is sum_k sqrt(lambda_k(A S2 A)). This needs only symmetric
 * eigendecompositions in float64 — no complex-valued `sqrtm` of a
 * non-symmetric product and no `eps * I` retry as in the reference code.
 * Negative round-off eigenvalues of singular covariances are clamped to 0.
 */
export function frechetDistance(a: GaussianStats, b: GaussianStats): FrechetTerms {
  if (a.dim !== b.dim) throw new Error(`frechetDistance: feature dimensions differ (${a.dim} vs ${b.dim})`);
  const d = a.dim;
  let meanTerm = 0;
  for (let j = 0; j < d; j++) meanTerm += (a.mean[j]! - b.mean[j]!) ** 2;
  let tr1 = 0;
  let tr2 = 0;
  for (let j = 0; j < d; j++) {
    tr1 += a.cov[j * d + j]!;
    tr2 += b.cov[j * d + j]!;
  }
  const sqrtA = sqrtmPsd(a.cov, d);
  const m = matMulSquare(matMulSquare(sqrtA, b.cov, d), sqrtA, d);
  // Symmetrize against round-off before the eigendecomposition.
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      const s = 0.5 * (m[i * d + j]! + m[j * d + i]!);
      m[i * d + j] = s;
      m[j * d + i] = s;
    }
  }
  const { values } = symmetricEigenQL(m, d);
  let trSqrt = 0;
  for (const v of values) trSqrt += Math.sqrt(Math.max(v, 0));
  const covTerm = tr1 + tr2 - 2 * trSqrt;
  return { value: meanTerm + covTerm, meanTerm, covTerm };
}

/** FD between two feature sets (row-major [n1, d] and [n2, d]). */
export function frechetDistanceFromFeatures(x: ArrayLike<number>, n1: number, y: ArrayLike<number>, n2: number, d: number): number {
  return frechetDistance(gaussianStats(x, n1, d), gaussianStats(y, n2, d)).value;
}
