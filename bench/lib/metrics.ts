/**
 * Sample-quality metrics for the sampler benchmark, in plain float64
 * JavaScript so that both libraries' samples go through the same code.
 * Samples are row-major [n, d] arrays.
 */
import { Rng } from '../../src/core/random.js';

export type Samples = Float32Array | Float64Array;

/**
 * L random directions, uniform on the unit sphere of R^d (normalized
 * Gaussians drawn from the seeded difflab Rng), as one [L, d] array.
 */
export function randomDirections(d: number, count: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const out = new Float64Array(count * d);
  for (let l = 0; l < count; l++) {
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = rng.normal();
      out[l * d + j] = v;
      norm += v * v;
    }
    const inv = 1 / Math.sqrt(norm);
    for (let j = 0; j < d; j++) out[l * d + j] = (out[l * d + j] as number) * inv;
  }
  return out;
}

/** Sorted projections of the samples onto each direction: [L][n]. */
export function sortedProjections(x: Samples, n: number, d: number, dirs: Float64Array): Float64Array[] {
  const count = dirs.length / d;
  const out: Float64Array[] = [];
  for (let l = 0; l < count; l++) {
    const p = new Float64Array(n);
    const off = l * d;
    for (let i = 0; i < n; i++) {
      let s = 0;
      const row = i * d;
      for (let j = 0; j < d; j++) s += (x[row + j] as number) * (dirs[off + j] as number);
      p[i] = s;
    }
    p.sort();
    out.push(p);
  }
  return out;
}

/**
 * Sliced 2-Wasserstein distance between two equally sized samples given their
 * sorted projections: sqrt(mean over directions of W2^2 of the 1-D
 * projections), where the 1-D W2^2 of two sorted samples of size n is
 * mean_i (a_(i) - b_(i))^2. Non-finite samples give Infinity.
 */
export function slicedW2(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  if (a.length !== b.length || a.length === 0) throw new Error('slicedW2: direction counts differ');
  let total = 0;
  for (let l = 0; l < a.length; l++) {
    const pa = a[l] as Float64Array;
    const pb = b[l] as Float64Array;
    if (pa.length !== pb.length) throw new Error(`slicedW2: sample sizes differ (${pa.length} vs ${pb.length})`);
    let s = 0;
    for (let i = 0; i < pa.length; i++) {
      const diff = (pa[i] as number) - (pb[i] as number);
      s += diff * diff;
    }
    total += s / pa.length;
  }
  const v = Math.sqrt(total / a.length);
  return Number.isFinite(v) ? v : Infinity;
}

export function sampleMean(x: Samples, n: number, d: number): Float64Array {
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) m[j] = (m[j] as number) + (x[i * d + j] as number);
  for (let j = 0; j < d; j++) m[j] = (m[j] as number) / n;
  return m;
}

/** Full sample covariance [d, d] (divides by n - 1). Only for small d. */
export function sampleCov(x: Samples, n: number, d: number, mean: Float64Array): Float64Array {
  const c = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = (x[i * d + j] as number) - (mean[j] as number);
    for (let a = 0; a < d; a++) {
      const ra = row[a] as number;
      for (let b = a; b < d; b++) c[a * d + b] = (c[a * d + b] as number) + ra * (row[b] as number);
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = (c[a * d + b] as number) / (n - 1);
      c[a * d + b] = v;
      c[b * d + a] = v;
    }
  }
  return c;
}

/** Per-coordinate sample variance (divides by n - 1). */
export function sampleVar(x: Samples, n: number, d: number, mean: Float64Array): Float64Array {
  const v = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const c = (x[i * d + j] as number) - (mean[j] as number);
      v[j] = (v[j] as number) + c * c;
    }
  }
  for (let j = 0; j < d; j++) v[j] = (v[j] as number) / (n - 1);
  return v;
}

export function l2Diff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = (a[i] as number) - (b[i] as number);
    s += diff * diff;
  }
  const v = Math.sqrt(s);
  return Number.isFinite(v) ? v : Infinity;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs((a[i] as number) - (b[i] as number));
    if (!(diff <= m)) m = Number.isNaN(diff) ? Infinity : diff;
  }
  return m;
}

/** max_j |a_ij - b_ij| for each of the n rows of two [n, d] arrays. */
export function rowMaxAbsDiff(a: Samples, b: Samples, n: number, d: number): Float64Array {
  if (a.length !== n * d || b.length !== n * d) throw new Error(`rowMaxAbsDiff: expected ${n * d} values, got ${a.length} and ${b.length}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = maxAbsDiff(a.subarray(i * d, (i + 1) * d), b.subarray(i * d, (i + 1) * d));
  return out;
}

export function median(values: ArrayLike<number>): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : 0.5 * ((s[mid - 1] as number) + (s[mid] as number));
}

/** The exact first two moments of the target, used by `moments` errors. */
export interface ExactMoments {
  readonly mean: Float64Array;
  /** Full [d, d] covariance when `covMetric` is 'frobenius', else the diagonal [d]. */
  readonly cov: Float64Array;
  readonly trace: number;
}

export type CovMetric = 'frobenius' | 'diag-l2';

export interface MomentErrors {
  /** ||mean_hat - mean||_2 */
  readonly meanErr: number;
  /** frobenius: ||Cov_hat - Cov||_F; diag-l2: ||diag(Cov_hat) - diag(Cov)||_2 */
  readonly covErr: number;
  /** (tr Cov_hat - tr Cov) / tr Cov: signed over- (+) or under- (-) dispersion. */
  readonly traceRelErr: number;
}

export function momentErrors(x: Samples, n: number, d: number, exact: ExactMoments, covMetric: CovMetric): MomentErrors {
  const mean = sampleMean(x, n, d);
  const meanErr = l2Diff(mean, exact.mean);
  let covErr: number;
  let trace = 0;
  if (covMetric === 'frobenius') {
    const c = sampleCov(x, n, d, mean);
    covErr = l2Diff(c, exact.cov);
    for (let j = 0; j < d; j++) trace += c[j * d + j] as number;
  } else {
    const v = sampleVar(x, n, d, mean);
    covErr = l2Diff(v, exact.cov);
    for (let j = 0; j < d; j++) trace += v[j] as number;
  }
  const traceRelErr = (trace - exact.trace) / exact.trace;
  return { meanErr, covErr, traceRelErr: Number.isFinite(traceRelErr) ? traceRelErr : Infinity };
}
