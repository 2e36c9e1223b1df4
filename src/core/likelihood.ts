/**
 * Exact log-likelihood under the probability-flow ODE.
 *
 * In the VE frame with sigma as time, the PF-ODE is dx/dsigma = (x - D(x; sigma)) / sigma
 * (EDM, Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 1 with the score of eq. 3).
 * We integrate in u = ln sigma, where it reads
 *
 *   dx/du = f(x, u) = x - D(x; e^u),   div_x f = d - Tr(dD/dx).
 *
 * By the instantaneous change of variables (Chen et al. 2018, https://arxiv.org/abs/1806.07366,
 * Theorem 1; Song et al. 2021, https://arxiv.org/abs/2011.13456, appendix D.2, eq. 39)
 *
 *   log p_{sigmaMin}(x) = log p_prior(x(u1)) + int_{u0}^{u1} div_x f(x(u), u) du,
 *
 * u0 = ln sigmaMin, u1 = ln sigmaMax, with the prior N(0, sigmaMax^2 I) ('ve') or, for a
 * VP model whose x_T = s x is N(0, I), N(0, (1 + sigmaMax^2) I) ('vp': the data-to-VE
 * scaling x = x_T / s with 1/s^2 = 1 + sigma^2, EDM eq. 4 / Table 1). The result is the
 * density of the data perturbed by N(0, sigmaMin^2 I), in nats, and in bits per dimension
 * -log p / (d ln 2).
 *
 * The divergence is exact (one vector-Jacobian product per dimension, batched into a single
 * backward pass over d replicas of the batch) or Hutchinson's estimate v^T (I - J) v, J = dD/dx, with
 * E[v v^T] = I (Hutchinson 1989; FFJORD, Grathwohl et al. 2018, https://arxiv.org/abs/1810.01367,
 * eq. 7), with K probes held fixed along the trajectory; each probe gives an unbiased
 * estimate of the log-likelihood and the result reports their mean and standard error.
 *
 * Integrator: classical fixed-step RK4 in u on the augmented state (x, int div f du); the
 * integral accumulates on the host in float64.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './random.js';
import type { Conditioning, Denoiser } from './types.js';

/** log p_prior(x) at sigmaMax, per batch row. */
export type PriorLogDensity = (x: tf.Tensor, sigmaMax: number) => tf.Tensor1D;

export interface LikelihoodOptions {
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** RK4 steps, uniform in ln sigma (default 64). Each step makes 4 divergence evaluations. */
  readonly steps?: number;
  /** 'exact' (default when d <= 64) or 'hutchinson'. */
  readonly divergence?: 'exact' | 'hutchinson';
  /** Hutchinson probes per data point (default 8; >= 2 for a standard error). */
  readonly probes?: number;
  /** Hutchinson probe distribution (default 'rademacher'). */
  readonly probeType?: 'gaussian' | 'rademacher';
  /** Source of the Hutchinson probes; required for 'hutchinson'. */
  readonly rng?: Rng;
  /** 've' (default): N(0, sigmaMax^2 I); 'vp': N(0, (1 + sigmaMax^2) I); or a function. */
  readonly prior?: 've' | 'vp' | PriorLogDensity;
  readonly cond?: Conditioning;
}

export interface LikelihoodResult {
  /** log p_{sigmaMin}(x) in nats per batch row (the mean over probes for Hutchinson). */
  readonly logLikelihood: Float64Array;
  /** -logLikelihood / (d ln 2). */
  readonly bitsPerDim: Float64Array;
  /** Standard error of logLikelihood over the Hutchinson probes (zeros for 'exact'). */
  readonly standardError: Float64Array;
  /** log p_prior(x(sigmaMax)) per row. */
  readonly priorLogProb: Float64Array;
  /** Per-probe log-likelihood estimates [K][B] (one row for 'exact'). */
  readonly perProbe: Float64Array[];
  /** Number of data dimensions d. */
  readonly dim: number;
  /** Denoiser evaluations made (counting a replicated batch as one). */
  readonly nfe: number;
}

const LOG_2PI = Math.log(2 * Math.PI);

/** log N(x; 0, v I) per row: -1/2 (|x|^2 / v + d ln(2 pi v)). */
function isotropicLogDensity(x: tf.Tensor, variance: number): tf.Tensor1D {
  return tf.tidy(() => {
    const B = x.shape[0] as number;
    const d = x.size / B;
    const sq = tf.sum(tf.square(tf.reshape(x, [B, d])), 1);
    return tf.mul(tf.add(tf.div(sq, variance), d * (LOG_2PI + Math.log(variance))), -0.5) as tf.Tensor1D;
  });
}

/** The VE prior N(0, sigmaMax^2 I) (Song et al. 2021, appendix C: p_T for the VE SDE). */
export const vePrior: PriorLogDensity = (x, sigmaMax) => isotropicLogDensity(x, sigmaMax * sigmaMax);

/** The VP prior N(0, I) on x_T = s x, expressed in the VE frame: N(0, (1 + sigmaMax^2) I). */
export const vpPrior: PriorLogDensity = (x, sigmaMax) => isotropicLogDensity(x, 1 + sigmaMax * sigmaMax);

function tileRows(t: tf.Tensor, K: number): tf.Tensor {
  return K === 1 ? t.clone() : tf.tile(t, [K, ...new Array<number>(t.rank - 1).fill(1)]);
}

function tileCond(cond: Conditioning | undefined, K: number): Conditioning | undefined {
  if (!cond) return undefined;
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(cond)) if (v) out[k] = tileRows(v, K);
  return out as Conditioning;
}

/**
 * v^T J v per replica row, J = dD/dx, for probes V [R*B, ...] and x tiled R times:
 * one backward pass of sum(D(x_rep) * V) (a vector-Jacobian product per row).
 */
function probeQuadratic(
  denoiser: Denoiser,
  xRep: tf.Tensor,
  sigmaRep: tf.Tensor1D,
  condRep: Conditioning | undefined,
  V: tf.Tensor,
): tf.Tensor1D {
  const vjp = tf.grad((xr: tf.Tensor) => tf.sum(tf.mul(denoiser(xr, sigmaRep, condRep), V)))(xRep);
  const axes = Array.from({ length: vjp.rank - 1 }, (_, i) => i + 1);
  return tf.sum(tf.mul(vjp, V), axes) as tf.Tensor1D;
}

/**
 * log-likelihood of the data rows of `x` (shape [B, ...]) under the PF-ODE of `denoiser`
 * between sigmaMin and sigmaMax.
 */
export async function pfOdeLogLikelihood(denoiser: Denoiser, x: tf.Tensor, options: LikelihoodOptions): Promise<LikelihoodResult> {
  const { sigmaMin, sigmaMax } = options;
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin && Number.isFinite(sigmaMax))) {
    throw new Error(`likelihood: need 0 < sigmaMin < sigmaMax < inf, got ${sigmaMin}, ${sigmaMax}`);
  }
  const B = x.shape[0];
  if (x.rank < 1 || B === undefined || B < 1) throw new Error('likelihood: x must have shape [B, ...] with B >= 1');
  const d = x.size / B;
  const eventShape = x.shape.slice(1);
  const steps = options.steps ?? 64;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`likelihood: steps must be an integer >= 1, got ${steps}`);
  const method = options.divergence ?? (d <= 64 ? 'exact' : 'hutchinson');
  const prior: PriorLogDensity =
    typeof options.prior === 'function' ? options.prior : options.prior === 'vp' ? vpPrior : vePrior;

  // The replicated probe matrix V [R*B, ...]: one-hot basis vectors (exact) or random probes.
  let R: number;
  let V: tf.Tensor;
  if (method === 'exact') {
    R = d;
    V = tf.tidy(() => tf.reshape(tf.tile(tf.reshape(tf.eye(d), [d, 1, d]), [1, B, 1]), [d * B, ...eventShape]));
  } else if (method === 'hutchinson') {
    const rng = options.rng;
    if (!rng) throw new Error(`likelihood: the Hutchinson estimator needs an rng`);
    R = options.probes ?? 8;
    if (!Number.isInteger(R) || R < 1) throw new Error(`likelihood: probes must be an integer >= 1, got ${R}`);
    const shape = [R * B, ...eventShape];
    if ((options.probeType ?? 'rademacher') === 'gaussian') {
      V = rng.normalTensor(shape);
    } else {
      const u = rng.uniformArray(R * B * d);
      V = tf.tensor(Float32Array.from(u, (v) => (v < 0.5 ? -1 : 1)), shape);
    }
  } else {
    throw new Error(`likelihood: unknown divergence method '${String(method)}'; choose exact or hutchinson`);
  }
  const probeRows = method === 'exact' ? 1 : R;
  // v^T (I - J) v = v^T v - v^T J v: for the exact trace, d - Tr J; for Hutchinson, the probe's
  // own |v|^2 (= d for Rademacher), which keeps Gaussian probes' variance at 2 ||I - J||_F^2
  // instead of 2 ||J||_F^2 (J -> I as sigma -> 0, where d - v^T J v would be noisy).
  let probeNorms = new Float64Array(B).fill(d);
  if (method === 'hutchinson') {
    const norms = tf.tidy(() => tf.sum(tf.square(tf.reshape(V, [R * B, d])), 1));
    probeNorms = Float64Array.from(norms.dataSync());
    norms.dispose();
  }
  const condRep = tileCond(options.cond, R);
  let nfe = 0;

  /** Drift f = x - D(x; sigma) [B, ...] and div f per probe row [probeRows*B] (host, float64). */
  const field = (xs: tf.Tensor, u: number): { drift: tf.Tensor; div: Float64Array } => {
    const sigma = Math.exp(u);
    const drift = tf.tidy(() => {
      const s = tf.fill([B], sigma) as tf.Tensor1D;
      return tf.sub(xs, denoiser(xs, s, options.cond));
    });
    const quad = tf.tidy(() => {
      const xRep = tileRows(xs, R);
      const sRep = tf.fill([R * B], sigma) as tf.Tensor1D;
      const q = probeQuadratic(denoiser, xRep, sRep, condRep, V);
      // exact: Tr J = sum over the d one-hot replicas; Hutchinson: one estimate per probe.
      return method === 'exact' ? tf.sum(tf.reshape(q, [d, B]), 0) : q;
    });
    nfe += 2;
    const q = quad.dataSync();
    quad.dispose();
    const div = new Float64Array(q.length);
    for (let i = 0; i < q.length; i++) div[i] = (probeNorms[i] as number) - (q[i] as number);
    return { drift, div };
  };

  const u0 = Math.log(sigmaMin);
  const u1 = Math.log(sigmaMax);
  const h = (u1 - u0) / steps;
  const integral = new Float64Array(probeRows * B);
  let state = x.clone();
  try {
    for (let n = 0; n < steps; n++) {
      const u = u0 + n * h;
      // Classical RK4 (Runge 1895 / Kutta 1901; Hairer, Norsett & Wanner, Solving ODEs I, Table 1.2).
      const k1 = field(state, u);
      const x2 = tf.tidy(() => tf.add(state, tf.mul(k1.drift, h / 2)));
      const k2 = field(x2, u + h / 2);
      const x3 = tf.tidy(() => tf.add(state, tf.mul(k2.drift, h / 2)));
      const k3 = field(x3, u + h / 2);
      const x4 = tf.tidy(() => tf.add(state, tf.mul(k3.drift, h)));
      const k4 = field(x4, u + h);
      const next = tf.tidy(() =>
        tf.add(state, tf.mul(tf.addN([k1.drift, tf.mul(k2.drift, 2), tf.mul(k3.drift, 2), k4.drift]), h / 6)),
      );
      for (let i = 0; i < integral.length; i++) {
        integral[i] =
          (integral[i] as number) +
          (h / 6) * ((k1.div[i] as number) + 2 * (k2.div[i] as number) + 2 * (k3.div[i] as number) + (k4.div[i] as number));
      }
      tf.dispose([state, x2, x3, x4, k1.drift, k2.drift, k3.drift, k4.drift]);
      state = next;
    }
    const priorT = prior(state, sigmaMax);
    const priorLogProb = Float64Array.from(await priorT.data());
    priorT.dispose();

    const perProbe = Array.from({ length: probeRows }, (_, k) =>
      Float64Array.from({ length: B }, (_, b) => (priorLogProb[b] as number) + (integral[k * B + b] as number)),
    );
    const logLikelihood = new Float64Array(B);
    const standardError = new Float64Array(B);
    for (let b = 0; b < B; b++) {
      let mean = 0;
      for (const row of perProbe) mean += row[b] as number;
      mean /= probeRows;
      logLikelihood[b] = mean;
      if (method === 'hutchinson') {
        let ss = 0;
        for (const row of perProbe) ss += ((row[b] as number) - mean) ** 2;
        standardError[b] = probeRows > 1 ? Math.sqrt(ss / (probeRows - 1) / probeRows) : Number.NaN;
      }
    }
    const bitsPerDim = logLikelihood.map((l) => -l / (d * Math.LN2));
    return { logLikelihood, bitsPerDim, standardError, priorLogProb, perProbe, dim: d, nfe };
  } finally {
    tf.dispose([state, V]);
    if (condRep) tf.dispose(Object.values(condRep).filter((t): t is tf.Tensor => t !== undefined));
  }
}
