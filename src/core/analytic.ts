/**
 * Analytic denoisers: exact ground truth for tests and benchmarks.
 *
 * For data x0 ~ N(mu, Sigma) noised in the VE frame x = x0 + sigma * eps, the
 * noised marginal is N(mu, Sigma + sigma^2 I) and the optimal denoiser (the
 * posterior mean E[x0 | x]) is the Gaussian conditional mean
 *
 *   D(x; sigma) = mu + Sigma (Sigma + sigma^2 I)^-1 (x - mu)
 *
 * (Bishop, Pattern Recognition and Machine Learning, 2006, eq. 2.116 with an
 * identity observation model; also Karras et al. 2022, https://arxiv.org/abs/2206.00364,
 * eq. 2-3 for why D is the object to compute).
 *
 * For a mixture sum_k w_k N(mu_k, Sigma_k) the posterior mean is the
 * responsibility-weighted sum of the per-component Gaussian posterior means,
 * with responsibilities r_k(x) proportional to w_k N(x; mu_k, Sigma_k + sigma^2 I)
 * (Bishop 2006, eq. 9.13 applied to the noised marginal), computed stably with
 * log-sum-exp. By Tweedie's formula (Efron 2011, https://doi.org/10.1198/jasa.2011.tm11181,
 * eq. 1.4) this equals x + sigma^2 grad_x log p_sigma(x); the tests check it.
 *
 * Everything works on any [B, ...shape] tensor by flattening the trailing
 * dimensions to d = prod(shape). Covariances are isotropic (one variance,
 * cheap in e.g. 784-D), diagonal, or full (eigendecomposed once, in Float64
 * on the host, by cyclic Jacobi rotations).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './random.js';
import type { Conditioning, Denoiser } from './types.js';

// ---------------------------------------------------------------------------
// Specs

export type CovarianceSpec =
  | { readonly kind: 'isotropic'; readonly variance: number }
  | { readonly kind: 'diagonal'; readonly variances: ArrayLike<number> }
  /** Row-major d*d, or an array of d rows. Must be symmetric positive definite. */
  | { readonly kind: 'full'; readonly matrix: ArrayLike<number> | readonly ArrayLike<number>[] };

export interface GaussianSpec {
  readonly mean: ArrayLike<number>;
  readonly cov: CovarianceSpec;
}

export interface MixtureComponentSpec extends GaussianSpec {
  /** Positive mixture weight; weights are normalized to sum to 1. */
  readonly weight: number;
  /** Class label for class-conditional use (default 0). */
  readonly label?: number;
}

export interface MixtureOptions {
  /**
   * Event shape of one sample (default [d]). Denoisers and log-densities
   * accept x of shape [B, ...] for any trailing shape with d elements; samples
   * are returned with shape [n, ...shape].
   */
  readonly shape?: readonly number[];
}

// ---------------------------------------------------------------------------
// Small dense linear algebra in Float64 (host side, precomputation only)

/** Lower Cholesky factor L (row-major d*d) with A = L L^T; throws if A is not positive definite. */
export function cholesky(a: ArrayLike<number>, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j] as number;
      for (let k = 0; k < j; k++) s -= (l[i * d + k] as number) * (l[j * d + k] as number);
      if (i === j) {
        if (!(s > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${i} = ${s})`);
        l[i * d + i] = Math.sqrt(s);
      } else {
        l[i * d + j] = s / (l[j * d + j] as number);
      }
    }
  }
  return l;
}

/** Solves (L L^T) X = B for X (d x m, row-major) given the Cholesky factor L. */
export function choleskySolve(l: Float64Array, b: ArrayLike<number>, d: number, m: number): Float64Array {
  const x = Float64Array.from(b as ArrayLike<number>);
  for (let c = 0; c < m; c++) {
    // forward: L y = b
    for (let i = 0; i < d; i++) {
      let s = x[i * m + c] as number;
      for (let k = 0; k < i; k++) s -= (l[i * d + k] as number) * (x[k * m + c] as number);
      x[i * m + c] = s / (l[i * d + i] as number);
    }
    // backward: L^T x = y
    for (let i = d - 1; i >= 0; i--) {
      let s = x[i * m + c] as number;
      for (let k = i + 1; k < d; k++) s -= (l[k * d + i] as number) * (x[k * m + c] as number);
      x[i * m + c] = s / (l[i * d + i] as number);
    }
  }
  return x;
}

/**
 * Eigendecomposition A = V diag(values) V^T of a symmetric matrix by cyclic
 * Jacobi rotations (Golub & Van Loan, Matrix Computations, 4th ed., Alg. 8.5.3).
 * `vectors` is row-major d*d with the eigenvectors as columns.
 */
export function symmetricEigen(a: ArrayLike<number>, d: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a as ArrayLike<number>);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let scale = 0;
  for (let i = 0; i < d * d; i++) scale += (m[i] as number) ** 2;
  const tol = 1e-30 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += (m[p * d + q] as number) ** 2;
    if (off <= tol) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q] as number;
        if (apq === 0) continue;
        const app = m[p * d + p] as number;
        const aqq = m[q * d + q] as number;
        // Rotation angle that zeroes a_pq (Golub & Van Loan Alg. 8.5.1, symSchur2).
        const tau = (aqq - app) / (2 * apq);
        const t = (tau >= 0 ? 1 : -1) / (Math.abs(tau) + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p] as number;
          const mkq = m[k * d + q] as number;
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k] as number;
          const mqk = m[q * d + k] as number;
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p] as number;
          const vkq = v[k * d + q] as number;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = m[i * d + i] as number;
  return { values, vectors: v };
}

// ---------------------------------------------------------------------------
// Prepared Gaussians

type Kind = CovarianceSpec['kind'];

interface Prepared {
  readonly kind: Kind;
  readonly mean: Float64Array;
  /** Dense covariance (full only), row-major. */
  readonly matrix: Float64Array | null;
  /** Eigenvalues: length 1 (isotropic) or d. */
  readonly eig: Float64Array;
  /** Eigenvectors as columns (full only). */
  readonly basis: Float64Array | null;
  /** Sampling factor: Cholesky L (full only); sqrt(eig) otherwise. */
  readonly chol: Float64Array | null;
}

function toRowMajor(matrix: ArrayLike<number> | readonly ArrayLike<number>[], d: number): Float64Array {
  const out = new Float64Array(d * d);
  const first = (matrix as ArrayLike<unknown>)[0];
  if (typeof first === 'number' || matrix.length === 0) {
    const flat = matrix as ArrayLike<number>;
    if (flat.length !== d * d) throw new Error(`full covariance: expected ${d * d} entries, got ${flat.length}`);
    for (let i = 0; i < d * d; i++) out[i] = flat[i] as number;
  } else {
    const rows = matrix as readonly ArrayLike<number>[];
    if (rows.length !== d) throw new Error(`full covariance: expected ${d} rows, got ${rows.length}`);
    rows.forEach((row, i) => {
      if (row.length !== d) throw new Error(`full covariance: row ${i} has ${row.length} entries, expected ${d}`);
      for (let j = 0; j < d; j++) out[i * d + j] = row[j] as number;
    });
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      const a = out[i * d + j] as number;
      const b = out[j * d + i] as number;
      if (Math.abs(a - b) > 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))) {
        throw new Error(`full covariance is not symmetric: [${i},${j}]=${a} vs [${j},${i}]=${b}`);
      }
      const s = 0.5 * (a + b);
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
  return out;
}

function prepare(spec: GaussianSpec, d: number, what: string): Prepared {
  if (spec.mean.length !== d) throw new Error(`${what}: mean has ${spec.mean.length} entries, expected ${d}`);
  const mean = Float64Array.from(spec.mean);
  if (!mean.every(Number.isFinite)) throw new Error(`${what}: mean has non-finite entries`);
  const cov = spec.cov;
  switch (cov.kind) {
    case 'isotropic':
      if (!(cov.variance > 0) || !Number.isFinite(cov.variance)) {
        throw new Error(`${what}: isotropic variance must be finite and > 0, got ${cov.variance}`);
      }
      return { kind: 'isotropic', mean, matrix: null, eig: Float64Array.of(cov.variance), basis: null, chol: null };
    case 'diagonal': {
      if (cov.variances.length !== d) {
        throw new Error(`${what}: diagonal covariance has ${cov.variances.length} entries, expected ${d}`);
      }
      const eig = Float64Array.from(cov.variances);
      eig.forEach((v, i) => {
        if (!(v > 0) || !Number.isFinite(v)) throw new Error(`${what}: variance ${i} must be finite and > 0, got ${v}`);
      });
      return { kind: 'diagonal', mean, matrix: null, eig, basis: null, chol: null };
    }
    case 'full': {
      const matrix = toRowMajor(cov.matrix, d);
      let chol: Float64Array;
      try {
        chol = cholesky(matrix, d);
      } catch (err) {
        throw new Error(`${what}: ${(err as Error).message}`);
      }
      const { values, vectors } = symmetricEigen(matrix, d);
      return { kind: 'full', mean, matrix, eig: values, basis: vectors, chol };
    }
    default:
      throw new Error(`${what}: unknown covariance kind '${(cov as { kind: string }).kind}'`);
  }
}

/** Device-side constants of one component, created lazily. */
interface ComponentTensors {
  readonly mean: tf.Tensor2D; // [1, d]
  readonly eig: tf.Tensor2D; // [1, 1] or [1, d]
  readonly basis: tf.Tensor2D | null; // [d, d]
}

function eventSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function flatten(x: tf.Tensor, d: number, what: string): tf.Tensor2D {
  if (x.rank < 1) throw new Error(`${what}: x must have a batch dimension, got a scalar`);
  const b = x.shape[0] as number;
  if (x.size !== b * d) {
    throw new Error(`${what}: x of shape [${x.shape.join(', ')}] does not hold ${d} values per batch row`);
  }
  return tf.reshape(x, [b, d]);
}

function sigmaColumn(sigma: tf.Tensor | number, b: number, what: string): tf.Tensor2D {
  if (typeof sigma === 'number') return tf.fill([b, 1], sigma) as tf.Tensor2D;
  if (sigma.size !== b) throw new Error(`${what}: sigma has ${sigma.size} entries for a batch of ${b}`);
  return tf.reshape(sigma, [b, 1]);
}

// ---------------------------------------------------------------------------
// Gaussian mixture

const LOG_2PI = Math.log(2 * Math.PI);

/**
 * A Gaussian mixture sum_k w_k N(mu_k, Sigma_k) over d = prod(shape)
 * dimensions, with exact denoisers, log-densities and sampling.
 * A single Gaussian is a mixture with one component.
 *
 * Holds a few device tensors (means, eigenvalues, eigenbases), created by the
 * constructor; call dispose() when done with it.
 */
export class GaussianMixture {
  readonly dim: number;
  readonly shape: readonly number[];
  readonly weights: Float64Array;
  readonly labels: readonly number[];
  private readonly comps: Prepared[];
  private tensors: ComponentTensors[] | null = null;
  private labelTensor: tf.Tensor2D | null = null;

  constructor(components: readonly MixtureComponentSpec[], options: MixtureOptions = {}) {
    if (components.length === 0) throw new Error('GaussianMixture: needs at least one component');
    const first = components[0] as MixtureComponentSpec;
    this.shape = options.shape ? [...options.shape] : [first.mean.length];
    this.dim = eventSize(this.shape);
    let total = 0;
    for (const [k, c] of components.entries()) {
      if (!(c.weight > 0) || !Number.isFinite(c.weight)) {
        throw new Error(`GaussianMixture: component ${k} weight must be finite and > 0, got ${c.weight}`);
      }
      total += c.weight;
    }
    this.weights = Float64Array.from(components, (c) => c.weight / total);
    this.labels = components.map((c) => c.label ?? 0);
    this.comps = components.map((c, k) => prepare(c, this.dim, `GaussianMixture component ${k}`));
    this.deviceTensors();
  }

  /** Number of components. */
  get size(): number {
    return this.comps.length;
  }

  /** Component k's mean (a copy). */
  componentMean(k: number): Float64Array {
    return Float64Array.from(this.comp(k).mean);
  }

  /** Component k's dense covariance (row-major d*d, a copy). */
  componentCovariance(k: number): Float64Array {
    const c = this.comp(k);
    const d = this.dim;
    if (c.matrix) return Float64Array.from(c.matrix);
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++) out[i * d + i] = (c.kind === 'isotropic' ? c.eig[0] : c.eig[i]) as number;
    return out;
  }

  /** Mean of the mixture: sum_k w_k mu_k. */
  mean(): Float64Array {
    const out = new Float64Array(this.dim);
    this.comps.forEach((c, k) => {
      const w = this.weights[k] as number;
      for (let i = 0; i < this.dim; i++) out[i] = (out[i] as number) + w * (c.mean[i] as number);
    });
    return out;
  }

  /**
   * Covariance of the mixture (law of total covariance):
   * sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T. Row-major d*d.
   */
  covariance(): Float64Array {
    const d = this.dim;
    const mu = this.mean();
    const out = new Float64Array(d * d);
    this.comps.forEach((_, k) => {
      const w = this.weights[k] as number;
      const ck = this.componentCovariance(k);
      const mk = this.comp(k).mean;
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) {
          out[i * d + j] = (out[i * d + j] as number) + w * ((ck[i * d + j] as number) + (mk[i] as number) * (mk[j] as number));
        }
      }
    });
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] = (out[i * d + j] as number) - (mu[i] as number) * (mu[j] as number);
    return out;
  }

  /**
   * Per-component log N(x; mu_k, Sigma_k + sigma^2 I) [B] and posterior mean
   * E[x0 | x, k] = mu_k + Sigma_k (Sigma_k + sigma^2 I)^-1 (x - mu_k) [B, d],
   * both in the eigenbasis of Sigma_k, where the inverse is diagonal:
   * Sigma (Sigma + s^2 I)^-1 = V diag(lambda / (lambda + s^2)) V^T.
   */
  private componentTerms(x2: tf.Tensor2D, s2: tf.Tensor2D, k: number, wantMean: boolean): { logN: tf.Tensor1D; mean: tf.Tensor2D | null } {
    const c = this.comp(k);
    const t = this.deviceTensors()[k] as ComponentTensors;
    const d = this.dim;
    const diff = tf.sub(x2, t.mean);
    const y = t.basis ? tf.matMul(diff, t.basis) : diff; // coordinates in the eigenbasis, [B, d]
    const v = tf.add(t.eig, s2); // lambda + sigma^2: [B, 1] (isotropic) or [B, d]
    const maha = tf.sum(tf.div(tf.square(y), v), 1);
    const logDet = c.kind === 'isotropic' ? tf.mul(tf.log(tf.reshape(v, [-1])), d) : tf.sum(tf.log(v), 1);
    // log N(x; mu, C) = -1/2 [(x-mu)^T C^-1 (x-mu) + log det C + d log 2 pi]  (Bishop 2006, eq. 2.43)
    const logN = tf.mul(tf.add(tf.add(maha, logDet), d * LOG_2PI), -0.5) as tf.Tensor1D;
    if (!wantMean) return { logN, mean: null };
    const shrunk = tf.mul(y, tf.div(t.eig, v)); // lambda / (lambda + sigma^2) per eigen-direction
    const back = t.basis ? tf.matMul(shrunk, t.basis, false, true) : shrunk;
    return { logN, mean: tf.add(back, t.mean) as tf.Tensor2D };
  }

  /** Unnormalized log-responsibilities log w_k + log N_k [B, K], optionally restricted by labels. */
  private logits(x2: tf.Tensor2D, s2: tf.Tensor2D, wantMeans: boolean, allowed: tf.Tensor | null) {
    const terms = this.comps.map((_, k) => this.componentTerms(x2, s2, k, wantMeans));
    let logits = tf.add(tf.stack(terms.map((t) => t.logN), 1), tf.tensor2d([Array.from(this.weights, Math.log)]));
    if (allowed) logits = tf.where(allowed, logits, tf.fill(logits.shape, -Infinity));
    return { logits: logits as tf.Tensor2D, means: terms.map((t) => t.mean) };
  }

  /**
   * log p_sigma(x) [B]: the exact log-density of the noised marginal
   * sum_k w_k N(x; mu_k, Sigma_k + sigma^2 I) (sigma = 0, the default, gives the
   * data density), with log-sum-exp over components. Differentiable in x.
   * `label` restricts to the components of one class (renormalized weights).
   */
  logProb(x: tf.Tensor, sigma: tf.Tensor | number = 0, label?: number): tf.Tensor1D {
    return tf.tidy(() => {
      const x2 = flatten(x, this.dim, 'GaussianMixture.logProb');
      const b = x2.shape[0];
      const s2 = tf.square(sigmaColumn(sigma, b, 'GaussianMixture.logProb'));
      const allowed = label === undefined ? null : this.allowedMask(tf.fill([b], label), null, b);
      const { logits } = this.logits(x2, s2, false, allowed);
      const lse = tf.logSumExp(logits, 1);
      if (label === undefined) return lse as tf.Tensor1D;
      // Renormalize the restricted weights.
      const wc = this.labels.reduce((acc, l, k) => (l === label ? acc + (this.weights[k] as number) : acc), 0);
      return tf.sub(lse, Math.log(wc)) as tf.Tensor1D;
    });
  }

  /**
   * The exact posterior mean E[x0 | x] under this mixture at noise level sigma
   * (per batch row), shape of x. `labels` (shape [B]) restricts each row to the
   * components of its class; rows whose label equals `nullLabel` use the whole
   * mixture.
   */
  denoise(x: tf.Tensor, sigma: tf.Tensor | number, labels?: tf.Tensor, nullLabel?: number): tf.Tensor {
    return tf.tidy(() => {
      const x2 = flatten(x, this.dim, 'GaussianMixture.denoise');
      const b = x2.shape[0];
      const s2 = tf.square(sigmaColumn(sigma, b, 'GaussianMixture.denoise'));
      const allowed = labels === undefined ? null : this.allowedMask(labels, nullLabel ?? null, b);
      const { logits, means } = this.logits(x2, s2, true, allowed);
      // Responsibilities r_k = exp(logit_k - logsumexp(logits)) (Bishop 2006, eq. 9.13).
      const resp = tf.exp(tf.sub(logits, tf.logSumExp(logits, 1, true)));
      const respCols = tf.unstack(resp, 1);
      let out: tf.Tensor = tf.zerosLike(x2);
      means.forEach((m, k) => {
        out = tf.add(out, tf.mul(tf.reshape(respCols[k] as tf.Tensor, [b, 1]), m as tf.Tensor2D));
      });
      return tf.reshape(out, x.shape);
    });
  }

  /**
   * This mixture's posterior mean as a difflab Denoiser. With `nullLabel`
   * given, it is class-conditional: `cond.labels[b]` selects the components of
   * that class, and rows labelled `nullLabel` (or calls without labels) are
   * unconditional. Without `nullLabel`, labels are ignored.
   */
  denoiser(options: { nullLabel?: number } = {}): Denoiser {
    const nullLabel = options.nullLabel;
    return (x: tf.Tensor, sigma: tf.Tensor1D, cond?: Conditioning) => {
      const labels = nullLabel === undefined ? undefined : cond?.labels;
      return this.denoise(x, sigma, labels, nullLabel);
    };
  }

  /** [B, K] boolean: component k allowed for row b. Validates labels on the host. */
  private allowedMask(labels: tf.Tensor, nullLabel: number | null, b: number): tf.Tensor2D {
    if (labels.size !== b) throw new Error(`GaussianMixture: ${labels.size} labels for a batch of ${b}`);
    const known = new Set(this.labels);
    for (const l of labels.dataSync()) {
      if (l !== nullLabel && !known.has(l)) {
        throw new Error(
          `GaussianMixture: label ${l} has no component (labels: ${[...known].join(', ')}${nullLabel === null ? '' : `; null label ${nullLabel}`})`,
        );
      }
    }
    const col = tf.reshape(tf.cast(labels, 'float32'), [b, 1]);
    const match = tf.equal(col, this.labelRow());
    if (nullLabel === null) return match as tf.Tensor2D;
    return tf.logicalOr(match, tf.equal(col, nullLabel)) as tf.Tensor2D;
  }

  /**
   * n exact samples [n, ...shape] and the component each came from: pick k with
   * probability w_k (one rng.uniform), then mu_k + L_k z with z ~ N(0, I) (d
   * rng.normal draws) and L_k L_k^T = Sigma_k. `label` samples one class.
   */
  sampleWithComponents(n: number, rng: Rng, label?: number): { x: tf.Tensor; components: Int32Array } {
    if (!Number.isInteger(n) || n < 0) throw new Error(`GaussianMixture.sample: n must be an integer >= 0, got ${n}`);
    const d = this.dim;
    const ks = this.comps.map((_, k) => k).filter((k) => label === undefined || this.labels[k] === label);
    if (ks.length === 0) throw new Error(`GaussianMixture.sample: no component has label ${label}`);
    const cum: number[] = [];
    let acc = 0;
    for (const k of ks) cum.push((acc += this.weights[k] as number));
    const out = new Float32Array(n * d);
    const components = new Int32Array(n);
    const z = new Float64Array(d);
    for (let s = 0; s < n; s++) {
      const u = rng.uniform() * acc;
      let j = cum.findIndex((c) => u < c);
      if (j < 0) j = ks.length - 1;
      const k = ks[j] as number;
      components[s] = k;
      const c = this.comp(k);
      for (let i = 0; i < d; i++) z[i] = rng.normal();
      for (let i = 0; i < d; i++) {
        let v: number;
        if (c.chol) {
          v = 0;
          for (let j2 = 0; j2 <= i; j2++) v += (c.chol[i * d + j2] as number) * (z[j2] as number);
        } else {
          v = Math.sqrt((c.kind === 'isotropic' ? c.eig[0] : c.eig[i]) as number) * (z[i] as number);
        }
        out[s * d + i] = (c.mean[i] as number) + v;
      }
    }
    return { x: tf.tensor(out, [n, ...this.shape], 'float32'), components };
  }

  /** n exact samples [n, ...shape] (see sampleWithComponents). */
  sample(n: number, rng: Rng, label?: number): tf.Tensor {
    return this.sampleWithComponents(n, rng, label).x;
  }

  /** Index of the nearest component mean for each row of x (Euclidean). */
  nearestComponent(x: tf.Tensor): Int32Array {
    return tf.tidy(() => {
      const x2 = flatten(x, this.dim, 'GaussianMixture.nearestComponent');
      const dists = this.comps.map((_, k) => tf.sum(tf.square(tf.sub(x2, (this.deviceTensors()[k] as ComponentTensors).mean)), 1));
      return tf.argMin(tf.stack(dists, 1), 1).dataSync() as Int32Array;
    });
  }

  /** Frees the device tensors (they are re-created if the mixture is used again). */
  dispose(): void {
    for (const t of this.tensors ?? []) {
      t.mean.dispose();
      t.eig.dispose();
      t.basis?.dispose();
    }
    this.labelTensor?.dispose();
    this.tensors = null;
    this.labelTensor = null;
  }

  private comp(k: number): Prepared {
    const c = this.comps[k];
    if (!c) throw new Error(`GaussianMixture: no component ${k} (has ${this.comps.length})`);
    return c;
  }

  private labelRow(): tf.Tensor2D {
    this.labelTensor ??= tf.keep(tf.tensor2d([[...this.labels]]));
    return this.labelTensor;
  }

  private deviceTensors(): ComponentTensors[] {
    if (this.tensors === null) {
      const d = this.dim;
      this.tensors = this.comps.map((c) => ({
        mean: tf.keep(tf.tensor2d(Float32Array.from(c.mean), [1, d], 'float32')),
        eig: tf.keep(tf.tensor2d(Float32Array.from(c.eig), [1, c.eig.length], 'float32')),
        basis: c.basis ? tf.keep(tf.tensor2d(Float32Array.from(c.basis), [d, d], 'float32')) : null,
      }));
      this.labelRow();
    }
    return this.tensors;
  }
}

// ---------------------------------------------------------------------------
// Single Gaussian, literal formula

/**
 * The posterior-mean denoiser of Gaussian data N(mu, Sigma), computed
 * literally as D(x; sigma) = mu + Sigma (Sigma + sigma^2 I)^-1 (x - mu)
 * (Bishop 2006, eq. 2.116): elementwise for isotropic/diagonal Sigma, and for
 * a full Sigma with a Float64 Cholesky solve of (Sigma + sigma^2 I) for each
 * distinct sigma in the batch (read to the host). Independent of
 * GaussianMixture's eigenbasis code, so each checks the other.
 */
export function gaussianDenoiser(spec: GaussianSpec, options: MixtureOptions = {}): Denoiser {
  const shape = options.shape ? [...options.shape] : [spec.mean.length];
  const d = eventSize(shape);
  const c = prepare(spec, d, 'gaussianDenoiser');
  return (x: tf.Tensor, sigma: tf.Tensor1D) =>
    tf.tidy(() => {
      const x2 = flatten(x, d, 'gaussianDenoiser');
      const b = x2.shape[0];
      const mean = tf.tensor2d(Float32Array.from(c.mean), [1, d], 'float32');
      const diff = tf.sub(x2, mean);
      const s2 = tf.square(sigmaColumn(sigma, b, 'gaussianDenoiser'));
      let shrunk: tf.Tensor;
      if (c.kind !== 'full') {
        const lam = tf.tensor2d(Float32Array.from(c.eig), [1, c.eig.length], 'float32');
        shrunk = tf.mul(diff, tf.div(lam, tf.add(lam, s2)));
      } else {
        const sig = sigma.dataSync();
        const distinct = [...new Set(sig)];
        shrunk = tf.zerosLike(diff);
        for (const s of distinct) {
          // A = Sigma + s^2 I; Y = A^-1 Sigma, so Sigma A^-1 = Y^T and (row form) (x-mu) Sigma A^-1 ... = (x-mu) Y.
          const a = Float64Array.from(c.matrix as Float64Array);
          for (let i = 0; i < d; i++) a[i * d + i] = (a[i * d + i] as number) + s * s;
          const y = choleskySolve(cholesky(a, d), c.matrix as Float64Array, d, d);
          const rows = tf.reshape(tf.equal(sigma, s), [b, 1]);
          const part = tf.matMul(diff, tf.tensor2d(Float32Array.from(y), [d, d], 'float32'));
          shrunk = tf.where(tf.broadcastTo(rows, part.shape), part, shrunk);
        }
      }
      return tf.reshape(tf.add(shrunk, mean), x.shape);
    });
}
