import * as tf from '@tensorflow/tfjs';
import { diffusionFromConfig, type DiffusionConfig, type SampleConfig } from './config/diffusion.js';
import { Rng } from './random.js';
import { countNfe, getSampler } from './samplers/index.js';
import type { StepInfo } from './samplers/common.js';
import { sigmasFor } from './schedules/discretize.js';
import type { Conditioning, Denoiser } from './types.js';

/**
 * Denoising an observation with a trained diffusion model, the zero-shot
 * use of DiffWave (Kong et al. 2021, https://arxiv.org/abs/2009.09761,
 * Sec. 5.5): an observation y = x0 + sigma * eps with Gaussian noise of a
 * known (or estimated) level is exactly an iterate of the reverse process at
 * noise level sigma (the VE frame of EDM, Karras et al. 2022,
 * https://arxiv.org/abs/2206.00364, eq. 1 with s = 1), so the reverse
 * process is simply started there instead of at sigma_max. A deterministic
 * sampler follows the probability-flow ODE from y; a stochastic one draws
 * from p(x0 | x_sigma = y). With one Euler step (sigmas [sigma, 0]) the
 * result is D(y; sigma) = E[x0 | y], the posterior mean (Tweedie).
 *
 * Also here: the modality-agnostic helpers a denoising front end needs: a
 * robust noise-level estimate for 1-D signals and overlapping windows with
 * cross-fades for sequences longer than the model's example length.
 */

/** What denoiseFrom needs of a model: a LoadedModel (src/core/generate.ts) has all of it. */
export interface DenoiseModel {
  readonly denoiser: Denoiser;
  readonly config: { readonly diffusion: DiffusionConfig; readonly sample: SampleConfig };
  /** Class-conditional models are run unconditionally, on the null class (id = numClasses). */
  readonly numClasses?: number;
}

export interface DenoiseFromOptions {
  /** Sampler id (default: the run's sample.sampler). */
  readonly sampler?: string;
  /**
   * Steps of the run's discretization over its whole range [sigma_min,
   * sigma_max] (default: the run's sample.steps); the reverse process uses
   * those below the starting sigma.
   */
  readonly steps?: number;
  /** Seed of stochastic samplers' noise (default 0). */
  readonly seed?: number;
  readonly onStep?: (info: StepInfo) => void;
}

export interface DenoiseFromResult {
  /** The denoised batch, y's shape. The caller disposes. */
  readonly x: tf.Tensor;
  /** The noise levels the sampler visited: [sigma, ..., 0]. */
  readonly sigmas: number[];
  readonly nfe: number;
  readonly sampler: string;
}

/**
 * The reverse process's noise levels from `sigma` down: `sigma` itself,
 * then the levels of `full` (a descending discretization ending in 0) that
 * lie strictly below it. Levels within a relative 1e-6 of sigma are dropped,
 * so the first step is never a vanishing one.
 */
export function truncatedSigmas(full: ArrayLike<number>, sigma: number): number[] {
  if (!Number.isFinite(sigma) || sigma <= 0) throw new Error(`the starting noise level must be a finite number > 0, got ${sigma}`);
  const below = Array.from(full, Number).filter((s) => s < sigma * (1 - 1e-6));
  if (below[below.length - 1] !== 0) below.push(0);
  return [sigma, ...below];
}

/**
 * Runs the model's reverse process on y [B, ...exampleShape] (diffusion
 * space, the VE frame) starting at noise level sigma: the run's
 * discretization truncated to levels below sigma, with the run's (or the
 * given) sampler. sigma must lie within the model's schedule (at most
 * sigma_max); y is not disposed.
 */
export function denoiseFrom(model: DenoiseModel, y: tf.Tensor, sigma: number, options: DenoiseFromOptions = {}): DenoiseFromResult {
  const { schedule } = diffusionFromConfig(model.config.diffusion);
  if (!Number.isFinite(sigma) || sigma <= 0) throw new Error(`denoise: sigma must be a finite number > 0, got ${sigma}`);
  if (sigma > schedule.sigmaMax * (1 + 1e-6)) {
    throw new Error(`denoise: sigma ${sigma} is above the model's largest noise level (sigma_max ${schedule.sigmaMax})`);
  }
  const s = model.config.sample;
  const samplerId = options.sampler ?? s.sampler;
  const sampler = getSampler(samplerId);
  const full = sigmasFor(s.discretization, schedule, options.steps ?? s.steps, { rho: s.rho });
  const sigmas = truncatedSigmas(full, sigma);
  const rng = new Rng(options.seed ?? 0);
  const B = y.shape[0];
  if (y.rank < 1 || B === undefined || B < 1) throw new Error(`denoise: y must have shape [B, ...] with B >= 1, got [${y.shape.join(', ')}]`);
  const cond: Conditioning | undefined = model.numClasses !== undefined ? { labels: tf.fill([B], model.numClasses, 'int32') as tf.Tensor1D } : undefined;
  try {
    const opts = { ...camelOptions(s.options), rng, ...(cond ? { cond } : {}) };
    const x = sampler(model.denoiser, y, sigmas, opts, options.onStep);
    return { x, sigmas, nfe: countNfe(samplerId, sigmas, opts), sampler: samplerId };
  } finally {
    cond?.labels?.dispose();
  }
}

function camelOptions(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v]));
}

/** Phi^-1(3/4): the median of |N(0, 1)|. */
const MAD_TO_STD = 0.6744897501960817;

/**
 * Daubechies' orthonormal 8-tap low-pass filter with 4 vanishing moments
 * ("db4"; Daubechies, Ten Lectures on Wavelets, 1992, Table 6.1, N = 4).
 * Its quadrature-mirror high-pass g[k] = (-1)^k h[7 - k] has unit norm (white
 * noise of std s gives details of std s) and annihilates cubics, so a smooth
 * signal leaks into the details as (frequency)^4, where Haar's first
 * difference leaks as (frequency)^1.
 */
const DB4_LOW = [
  -0.010597401784997278, 0.032883011666982945, 0.030841381835986965, -0.18703481171888114, -0.02798376941698385, 0.6308807679295904,
  0.7148465705525415, 0.23037781330885523,
] as const;
const DB4_HIGH = DB4_LOW.map((_, k) => (k % 2 === 0 ? 1 : -1) * DB4_LOW[DB4_LOW.length - 1 - k]!);

/**
 * Robust estimate of the std of additive white Gaussian noise in a 1-D
 * signal (e.g. a waveform): the median absolute finest-scale wavelet detail
 * coefficient divided by 0.6745 (Donoho & Johnstone 1994, "Ideal spatial
 * adaptation by wavelet shrinkage", Biometrika 81(3),
 * https://doi.org/10.1093/biomet/81.3.425), with the db4 wavelet. White
 * noise puts details of std s into every coefficient, a smooth signal
 * almost none, and the median ignores the minority of coefficients that
 * transients, fricatives and other content near the Nyquist frequency make
 * large; if that content fills most of the signal the noise is
 * over-estimated.
 */
export function estimateNoiseSigmaMad(x: ArrayLike<number>): number {
  const taps = DB4_HIGH.length;
  if (x.length < taps) throw new Error(`estimateNoiseSigmaMad: needs at least ${taps} samples, got ${x.length}`);
  // d_i = sum_k g[k] x[2i + k] over the positions where the filter fits (no boundary extension).
  const n = Math.floor((x.length - taps) / 2) + 1;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let k = 0; k < taps; k++) v += DB4_HIGH[k]! * x[2 * i + k]!;
    d[i] = Math.abs(v);
  }
  d.sort();
  const median = n % 2 === 1 ? d[(n - 1) / 2]! : (d[n / 2 - 1]! + d[n / 2]!) / 2;
  return median / MAD_TO_STD;
}

/**
 * Start offsets of windows of `length` covering [0, total): one window when
 * total <= length, else the fewest windows whose neighbours overlap by at
 * least `minOverlap`, spread evenly from 0 to total - length.
 */
export function windowStarts(total: number, length: number, minOverlap: number): number[] {
  if (!Number.isInteger(total) || total < 1) throw new Error(`windowStarts: total must be a positive integer, got ${total}`);
  if (!Number.isInteger(length) || length < 1) throw new Error(`windowStarts: length must be a positive integer, got ${length}`);
  if (!Number.isInteger(minOverlap) || minOverlap < 0 || minOverlap >= length) {
    throw new Error(`windowStarts: minOverlap must be an integer in [0, ${length}), got ${minOverlap}`);
  }
  if (total <= length) return [0];
  const n = Math.ceil((total - minOverlap) / (length - minOverlap));
  return Array.from({ length: n }, (_, i) => Math.round((i * (total - length)) / (n - 1)));
}

/**
 * Overlap-adds windows [C channels interleaved, `length` frames each, at
 * `starts`] into one sequence of `total` frames with raised-cosine
 * cross-fades over each overlap: window i fades out where window i + 1
 * fades in (sin^2 / cos^2, which sum to 1), and the result is divided by
 * the summed weights, so any overlap pattern gives a partition of unity.
 */
export function overlapAdd(windows: readonly ArrayLike<number>[], starts: readonly number[], length: number, total: number, channels = 1): Float32Array {
  if (windows.length !== starts.length) throw new Error(`overlapAdd: ${windows.length} windows but ${starts.length} starts`);
  const acc = new Float64Array(total * channels);
  const wsum = new Float64Array(total);
  windows.forEach((w, i) => {
    if (w.length !== length * channels) throw new Error(`overlapAdd: window ${i} has ${w.length} values, expected ${length * channels}`);
    const s0 = starts[i]!;
    const fadeIn = i > 0 ? starts[i - 1]! + length - s0 : 0;
    const fadeOut = i + 1 < starts.length ? s0 + length - starts[i + 1]! : 0;
    for (let k = 0; k < length; k++) {
      const t = s0 + k;
      if (t < 0 || t >= total) continue;
      // (k + 0.5) keeps every weight > 0, so no frame is left without one.
      let weight = 1;
      if (k < fadeIn) weight *= Math.sin((Math.PI / 2) * ((k + 0.5) / fadeIn)) ** 2;
      if (k >= length - fadeOut) weight *= Math.cos((Math.PI / 2) * ((k - (length - fadeOut) + 0.5) / fadeOut)) ** 2;
      wsum[t]! += weight;
      for (let c = 0; c < channels; c++) acc[t * channels + c]! += weight * w[k * channels + c]!;
    }
  });
  const out = new Float32Array(total * channels);
  for (let t = 0; t < total; t++) {
    if (!(wsum[t]! > 0)) throw new Error(`overlapAdd: frame ${t} is covered by no window`);
    for (let c = 0; c < channels; c++) out[t * channels + c] = acc[t * channels + c]! / wsum[t]!;
  }
  return out;
}
