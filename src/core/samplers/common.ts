/**
 * What every sampler shares: the signature, the step callback, sigma
 * validation and the tensor bookkeeping (each step in tf.tidy, the previous
 * iterate disposed, the caller's x never disposed).
 *
 * Every sampler runs its whole loop inside one tf.tidy (so an exception frees
 * everything) and each update in a nested tf.tidy that disposes the previous
 * iterate (so memory stays flat across steps).
 *
 * Conventions follow k-diffusion's `sampling.py`
 * (https://github.com/crowsonkb/k-diffusion/blob/master/k_diffusion/sampling.py):
 * x is the initial noise already scaled by sigmas[0]; sigmas are descending,
 * normally with a trailing 0 (the discretizations in src/core/schedules add
 * it); the denoiser is called with a [B] vector of one sigma per row.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../random.js';
import type { Conditioning, Denoiser } from '../types.js';

/** Descending noise levels, normally ending with 0 (number[], Float32Array, Float64Array). */
export type Sigmas = ArrayLike<number>;

/** Options every sampler understands. */
export interface SamplerOptions {
  /** The random stream for stochastic samplers (required by them; unused by deterministic ones). */
  readonly rng?: Rng;
  /** Passed through to every denoiser call. */
  readonly cond?: Conditioning;
}

/**
 * One sampler step, reported before the update (like k-diffusion's callback).
 * The tensors are the sampler's own and are disposed after the callback
 * returns. The callback runs inside the sampler's tf.tidy scope, so tensors it
 * creates are freed when the sampler returns: read them (dataSync/array) or
 * keep a copy with tf.keep(t.clone()).
 */
export interface StepInfo {
  /** Step index, 0-based. */
  readonly i: number;
  /** Number of steps (calls of the callback) in this run. */
  readonly total: number;
  /** sigmas[i]. */
  readonly sigma: number;
  /** The noise level the denoiser saw (sigma raised by churn; = sigma otherwise). */
  readonly sigmaHat: number;
  /** sigmas[i + 1]. */
  readonly sigmaNext: number;
  /** The iterate the denoiser saw at this step. */
  readonly x: tf.Tensor;
  /** D(x; sigmaHat). */
  readonly denoised: tf.Tensor;
}

export type StepCallback = (info: StepInfo) => void;

/** A sampler: a pure function of the denoiser, the initial noise and the noise levels. */
export type Sampler<O extends SamplerOptions = SamplerOptions> = (
  denoiser: Denoiser,
  x: tf.Tensor,
  sigmas: Sigmas,
  options?: O,
  onStep?: StepCallback,
) => tf.Tensor;

/** Validates sigmas (finite, >= 0, strictly descending, at least one entry) and copies them to numbers. */
export function checkSigmas(sigmas: Sigmas, sampler: string): number[] {
  const s = Array.from(sigmas, Number);
  if (s.length === 0) throw new Error(`${sampler}: sigmas is empty`);
  s.forEach((v, i) => {
    if (!Number.isFinite(v) || v < 0) throw new Error(`${sampler}: sigmas[${i}] = ${v} is not a finite number >= 0`);
    if (i > 0 && !(v < (s[i - 1] as number))) {
      throw new Error(`${sampler}: sigmas must be strictly descending, but sigmas[${i}] = ${v} >= sigmas[${i - 1}] = ${s[i - 1]}`);
    }
  });
  return s;
}

export function checkBatch(x: tf.Tensor, sampler: string): number {
  if (x.rank < 1) throw new Error(`${sampler}: x must have shape [B, ...], got a scalar`);
  return x.shape[0] as number;
}

/** The rng a stochastic sampler needs, or an error naming the sampler. */
export function needRng(options: SamplerOptions | undefined, sampler: string, why = ''): Rng {
  const rng = options?.rng;
  if (!rng) throw new Error(`${sampler}: options.rng is required${why ? ` (${why})` : ''}`);
  return rng;
}

/**
 * D(x; sigma) with a [B] sigma vector, as a tensor that outlives the tidy
 * scope (the caller disposes it). Checks the output shape.
 */
export function denoise(denoiser: Denoiser, x: tf.Tensor, sigma: number, cond: Conditioning | undefined): tf.Tensor {
  return tf.tidy(() => {
    const out = denoiser(x, tf.fill([x.shape[0] as number], sigma) as tf.Tensor1D, cond);
    if (out.shape.length !== x.shape.length || out.shape.some((n, i) => n !== x.shape[i])) {
      throw new Error(`denoiser returned shape [${out.shape.join(', ')}] for x of shape [${x.shape.join(', ')}]`);
    }
    // A denoiser that hands back its input (e.g. D(x; 0) = x) must not let us dispose the caller's tensor.
    return out === x ? tf.clone(out) : out;
  });
}

/** Runs one update in tf.tidy and disposes the previous iterate. */
export function advance(x: tf.Tensor, update: () => tf.Tensor): tf.Tensor {
  const next = tf.tidy(update);
  if (next !== x) x.dispose();
  return next;
}

/** A sampler's result for zero steps: a copy, so the caller can always dispose input and output independently. */
export function start(x: tf.Tensor): tf.Tensor {
  return tf.clone(x);
}

/**
 * Karras ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma
 * (Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 4 with s(t) = 1, sigma(t) = t;
 * k-diffusion `to_d`).
 */
export function toD(x: tf.Tensor, sigma: number, denoised: tf.Tensor): tf.Tensor {
  return tf.div(tf.sub(x, denoised), sigma);
}

/**
 * k-diffusion's `get_ancestral_step`: split a step sigma -> sigmaNext into a
 * deterministic step down to sigmaDown and fresh noise of std sigmaUp, with
 * sigmaDown^2 + sigmaUp^2 = sigmaNext^2 and
 * sigmaUp = min(sigmaNext, eta * sqrt(sigmaNext^2 (sigma^2 - sigmaNext^2) / sigma^2)).
 * With eta = 1 this is the DDPM posterior variance in the VE frame
 * (Ho et al. 2020, https://arxiv.org/abs/2006.11239, eq. 7; see ddpm.ts).
 */
export function ancestralStep(sigma: number, sigmaNext: number, eta = 1): { sigmaDown: number; sigmaUp: number } {
  if (!eta) return { sigmaDown: sigmaNext, sigmaUp: 0 };
  const sigmaUp = Math.min(sigmaNext, eta * Math.sqrt((sigmaNext ** 2 * (sigma ** 2 - sigmaNext ** 2)) / sigma ** 2));
  const sigmaDown = Math.sqrt(Math.max(sigmaNext ** 2 - sigmaUp ** 2, 0));
  return { sigmaDown, sigmaUp };
}

/** Calls onStep with the step's tensors (no copies). */
export function report(
  onStep: StepCallback | undefined,
  i: number,
  total: number,
  sigma: number,
  sigmaHat: number,
  sigmaNext: number,
  x: tf.Tensor,
  denoised: tf.Tensor,
): void {
  if (onStep) onStep({ i, total, sigma, sigmaHat, sigmaNext, x, denoised });
}
