import * as tf from '@tensorflow/tfjs';
import { Rng } from '../random.js';
import type { ValueWithStd } from './types.js';

/**
 * Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs",
 * https://arxiv.org/abs/1801.01401, Sec. 4 / Appendix): the unbiased
 * estimator of the squared maximum mean discrepancy
 *
 *   MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
 *             - 2/(mn) sum_{i,j} k(x_i, y_j)
 *
 * with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
 * random subsets (drawn without replacement within a subset), reported with
 * the standard deviation over subsets. Defaults follow the authors' code
 * and torch-fidelity: 100 subsets of 1000.
 *
 * Unlike FD, the estimator is unbiased: its expectation is 0 for two samples
 * of one distribution, so small sets give noisy but centred values and
 * negative values are possible.
 */
export interface KidOptions {
  /** Number of random subsets (default 100). */
  readonly subsets?: number;
  /** Rows per subset, clamped to the smaller set (default 1000). */
  readonly subsetSize?: number;
  /** Seed of the subset draws (default 0). */
  readonly seed?: number;
}

export interface KidResult extends ValueWithStd {
  readonly subsetSize: number;
}

/** k(x, y) = (x.y / d + 1)^3 for two vectors of length d. */
export function cubicKernel(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const d = x.length;
  let dot = 0;
  for (let k = 0; k < d; k++) dot += (x[k] as number) * (y[k] as number);
  return (dot / d + 1) ** 3;
}

/**
 * Unbiased MMD^2 from the dot-product blocks of X [m, d] and Y [n, d]:
 * `xx` [m, m], `yy` [n, n], `xy` [m, n] row-major dot products x_i.y_j. The
 * kernel and the sums run in float64.
 */
export function mmd2UnbiasedFromDots(xx: ArrayLike<number>, yy: ArrayLike<number>, xy: ArrayLike<number>, m: number, n: number, d: number): number {
  if (m < 2 || n < 2) throw new Error(`MMD^2: need at least 2 rows per set, got ${m} and ${n}`);
  const k = (dot: number): number => {
    const t = dot / d + 1;
    return t * t * t;
  };
  const offDiag = (g: ArrayLike<number>, s: number): number => {
    let sum = 0;
    for (let i = 0; i < s; i++) {
      const base = i * s;
      for (let j = 0; j < s; j++) if (i !== j) sum += k(g[base + j] as number);
    }
    return sum;
  };
  let cross = 0;
  for (let i = 0; i < m * n; i++) cross += k(xy[i] as number);
  return offDiag(xx, m) / (m * (m - 1)) + offDiag(yy, n) / (n * (n - 1)) - (2 * cross) / (m * n);
}

/** Unbiased MMD^2 with the cubic kernel between two feature sets, directly on the host (small sets; tests). */
export function mmd2Unbiased(x: ArrayLike<number>, m: number, y: ArrayLike<number>, n: number, d: number): number {
  const dots = (a: ArrayLike<number>, ra: number, b: ArrayLike<number>, rb: number): Float64Array => {
    const out = new Float64Array(ra * rb);
    for (let i = 0; i < ra; i++) {
      for (let j = 0; j < rb; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += (a[i * d + c] as number) * (b[j * d + c] as number);
        out[i * rb + j] = s;
      }
    }
    return out;
  };
  return mmd2UnbiasedFromDots(dots(x, m, x, m), dots(y, n, y, n), dots(x, m, y, n), m, n, d);
}

/** `count` distinct indices from [0, n) (partial Fisher-Yates). */
export function sampleWithoutReplacement(n: number, count: number, rng: Rng): number[] {
  if (count > n) throw new Error(`cannot draw ${count} distinct indices from ${n}`);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(n - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a.slice(0, count);
}

function gatherRows(x: ArrayLike<number>, rows: readonly number[], d: number, transpose: boolean): Float32Array {
  const m = rows.length;
  const out = new Float32Array(m * d);
  for (let r = 0; r < m; r++) {
    const src = rows[r]! * d;
    for (let c = 0; c < d; c++) {
      if (transpose) out[c * m + r] = x[src + c] as number;
      else out[r * d + c] = x[src + c] as number;
    }
  }
  return out;
}

/**
 * KID between feature sets X [n1, d] and Y [n2, d]. The dot-product blocks of
 * each subset are plain float32 matMuls on the active tfjs backend (operands
 * laid out so no transposed matMul is needed); the kernel and all sums are
 * float64 on the host. No tensor outlives the call.
 */
export async function kernelInceptionDistance(
  x: ArrayLike<number>,
  n1: number,
  y: ArrayLike<number>,
  n2: number,
  d: number,
  options: KidOptions = {},
): Promise<KidResult> {
  const subsets = options.subsets ?? 100;
  const m = Math.min(options.subsetSize ?? 1000, n1, n2);
  if (!(Number.isInteger(subsets) && subsets >= 1)) throw new Error(`KID: subsets must be a positive integer, got ${subsets}`);
  if (m < 2) throw new Error(`KID: need at least 2 examples in each set, got ${n1} and ${n2}`);
  if (x.length !== n1 * d || y.length !== n2 * d) throw new Error(`KID: feature arrays do not match [${n1}, ${d}] and [${n2}, ${d}]`);
  const rng = new Rng(options.seed ?? 0);
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const ix = sampleWithoutReplacement(n1, m, rng);
    const iy = sampleWithoutReplacement(n2, m, rng);
    const blocks = tf.tidy(() => {
      const xs = tf.tensor2d(gatherRows(x, ix, d, false), [m, d]);
      const ys = tf.tensor2d(gatherRows(y, iy, d, false), [m, d]);
      const xt = tf.tensor2d(gatherRows(x, ix, d, true), [d, m]);
      const yt = tf.tensor2d(gatherRows(y, iy, d, true), [d, m]);
      return [tf.matMul(xs, xt), tf.matMul(ys, yt), tf.matMul(xs, yt)];
    });
    try {
      const [xx, yy, xy] = await Promise.all(blocks.map((b) => b.data()));
      values.push(mmd2UnbiasedFromDots(xx!, yy!, xy!, m, m, d));
    } finally {
      tf.dispose(blocks);
    }
  }
  return { ...meanStd(values), subsetSize: m };
}

/** Mean and population standard deviation (ddof = 0, as numpy.std in the reference code). */
export function meanStd(values: readonly number[]): ValueWithStd {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { mean, std, values };
}
