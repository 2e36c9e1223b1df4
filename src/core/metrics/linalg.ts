/**
 * Dense symmetric linear algebra in float64 on the host, sized for feature
 * covariances (d = 64 for difflab's Fashion-MNIST classifier, 2048 for
 * Inception-v3 pool3). `core/analytic.ts`'s Jacobi `symmetricEigen` is exact
 * but O(d^3) per sweep with ~10 sweeps; here the standard two-phase method
 * is used instead: Householder reduction to tridiagonal form, then the
 * implicit QL algorithm with Wilkinson shifts (Golub & Van Loan, Matrix
 * Computations, 4th ed., Alg. 8.3.1 and Sec. 8.3.5; the EISPACK routines
 * tred2/tql2 as transcribed in the public-domain JAMA package), O(d^3) once.
 *
 * All matrices are row-major Float64Array of d*d values.
 */

/** C = A B for d x d matrices (i-k-j loop order: contiguous inner loop). */
export function matMulSquare(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const ci = i * d;
    for (let k = 0; k < d; k++) {
      const aik = a[ci + k]!;
      if (aik === 0) continue;
      const bk = k * d;
      for (let j = 0; j < d; j++) c[ci + j]! += aik * b[bk + j]!;
    }
  }
  return c;
}

/**
 * Eigendecomposition A = V diag(values) V^T of a symmetric matrix, values
 * ascending; `vectors` is row-major with the eigenvectors as columns. Only
 * the lower triangle of `a` is read; `a` is not modified.
 */
export function symmetricEigenQL(a: ArrayLike<number>, d: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== d * d) throw new Error(`symmetricEigenQL: ${a.length} values for a ${d}x${d} matrix`);
  // V holds the matrix, then the accumulated transformations (JAMA's V[i][j] = V[i*d+j]).
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) V[i * d + j] = V[j * d + i] = a[i * d + j] as number;
  const dd = new Float64Array(d);
  const e = new Float64Array(d);
  tred2(V, dd, e, d);
  tql2(V, dd, e, d);
  return { values: dd, vectors: V };
}

/** Householder tridiagonalization (EISPACK tred2): on exit V is the orthogonal transform, dd the diagonal, e the sub-diagonal. */
function tred2(V: Float64Array, dd: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) dd[j] = V[(n - 1) * n + j]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(dd[k]!);
    if (scale === 0) {
      e[i] = dd[i - 1]!;
      for (let j = 0; j < i; j++) {
        dd[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
        V[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        dd[k]! /= scale;
        h += dd[k]! * dd[k]!;
      }
      let f = dd[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      dd[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = dd[j]!;
        V[j * n + i] = f;
        g = e[j]! + V[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j]! * dd[k]!;
          e[k]! += V[k * n + j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * dd[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * dd[j]!;
      for (let j = 0; j < i; j++) {
        f = dd[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k * n + j]! -= f * e[k]! + g * dd[k]!;
        dd[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
      }
    }
    dd[i] = h;
  }
  // Accumulate transformations.
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i]!;
    V[i * n + i] = 1;
    const h = dd[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) dd[k] = V[k * n + i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1]! * V[k * n + j]!;
        for (let k = 0; k <= i; k++) V[k * n + j]! -= g * dd[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    dd[j] = V[(n - 1) * n + j]!;
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (dd, e), accumulating into V (EISPACK tql2); sorts ascending. */
function tql2(V: Float64Array, dd: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  if (n > 0) e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(dd[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m === n) m = n - 1; // e[n-1] is 0, so this never triggers; guards typed-array reads
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error('symmetricEigenQL: QL iteration did not converge');
        let g = dd[l]!;
        let p = (dd[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        dd[l] = e[l]! / (p + r);
        dd[l + 1] = e[l]! * (p + r);
        const dl1 = dd[l + 1]!;
        let h = g - dd[l]!;
        for (let i = l + 2; i < n; i++) dd[i]! -= h;
        f += h;
        p = dd[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * dd[i]! - s * g;
          dd[i + 1] = h + s * (c * g + s * dd[i]!);
          for (let k = 0; k < n; k++) {
            const vk = k * n;
            h = V[vk + i + 1]!;
            V[vk + i + 1] = s * V[vk + i]! + c * h;
            V[vk + i] = c * V[vk + i]! - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        dd[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    dd[l] = dd[l]! + f;
    e[l] = 0;
  }
  // Selection sort of eigenvalues (and vectors) into ascending order.
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = dd[i]!;
    for (let j = i + 1; j < n; j++) {
      if (dd[j]! < p) {
        k = j;
        p = dd[j]!;
      }
    }
    if (k !== i) {
      dd[k] = dd[i]!;
      dd[i] = p;
      for (let j = 0; j < n; j++) {
        const t = V[j * n + i]!;
        V[j * n + i] = V[j * n + k]!;
        V[j * n + k] = t;
      }
    }
  }
}

/**
 * The PSD square root V diag(sqrt(max(lambda, 0))) V^T of a symmetric
 * positive semi-definite matrix. Eigenvalues slightly below zero (round-off
 * of a singular covariance) are clamped to 0.
 */
export function sqrtmPsd(a: ArrayLike<number>, d: number): Float64Array {
  const { values, vectors } = symmetricEigenQL(a, d);
  // B = V diag(sqrt(l)), then B V^T.
  const r = new Float64Array(values.length);
  for (let k = 0; k < d; k++) r[k] = Math.sqrt(Math.max(values[k]!, 0));
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[i * d + k]! * r[k]! * vectors[j * d + k]!;
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
  return out;
}
