import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { gaussianDenoiser } from '../src/core/analytic.js';
import { useBackend } from '../src/core/backend/select.js';
import { diffusionSchema, sampleSchema } from '../src/core/config/diffusion.js';
import { denoiseFrom, estimateNoiseSigmaMad, overlapAdd, truncatedSigmas, windowStarts, type DenoiseModel } from '../src/core/denoise.js';
import { Rng } from '../src/core/random.js';
import { karrasSigmas } from '../src/core/schedules/discretize.js';
import type { Denoiser } from '../src/core/types.js';
import { expectNoTensorLeak } from './helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

/** Gaussian data N(mu, diag(lambda)) in d = 32 dimensions, variances from 0.01 (below the noise) to 4 (far above it). */
const D = 32;
const MU = Float64Array.from({ length: D }, (_, i) => Math.sin(i));
const LAMBDA = Float64Array.from({ length: D }, (_, i) => 0.01 * 400 ** (i / (D - 1)));
const SPEC = { mean: MU, cov: { kind: 'diagonal' as const, variances: LAMBDA } };

function model(sample: Record<string, unknown>, schedule: Record<string, unknown> = {}, denoiser: Denoiser = gaussianDenoiser(SPEC), numClasses?: number): DenoiseModel {
  return {
    denoiser,
    config: {
      diffusion: diffusionSchema.parse({
        schedule: { type: 'edm', sigma_min: 0.002, sigma_max: 80, ...schedule },
        parametrization: { type: 'edm' },
        objective: { noise: { type: 'log-normal' }, weighting: { type: 'edm' } },
      }),
      sample: sampleSchema.parse(sample),
    },
    ...(numClasses !== undefined ? { numClasses } : {}),
  };
}

/** B clean draws x0 and their noisy observations y = x0 + sigma eps. */
function observations(b: number, sigma: number, seed = 1): { x0: Float32Array; y: Float32Array } {
  const rng = new Rng(seed);
  const x0 = new Float32Array(b * D);
  const y = new Float32Array(b * D);
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < D; i++) {
      x0[n * D + i] = MU[i]! + Math.sqrt(LAMBDA[i]!) * rng.normal();
      y[n * D + i] = x0[n * D + i]! + sigma * rng.normal();
    }
  }
  return { x0, y };
}

/** E[x0 | y] = mu + lambda / (lambda + sigma^2) (y - mu) (Bishop 2006, eq. 2.116). */
function posteriorMean(y: Float32Array, sigma: number): Float64Array {
  return Float64Array.from(y, (v, k) => MU[k % D]! + (LAMBDA[k % D]! / (LAMBDA[k % D]! + sigma * sigma)) * (v - MU[k % D]!));
}

/** The probability-flow ODE from (y, sigma) to 0 in closed form: mu + sqrt(lambda / (lambda + sigma^2)) (y - mu). */
function odeSolution(y: Float32Array, sigma: number): Float64Array {
  return Float64Array.from(y, (v, k) => MU[k % D]! + Math.sqrt(LAMBDA[k % D]! / (LAMBDA[k % D]! + sigma * sigma)) * (v - MU[k % D]!));
}

function mse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s / a.length;
}

async function run(m: DenoiseModel, y: Float32Array, b: number, sigma: number, options: Parameters<typeof denoiseFrom>[3] = {}) {
  return expectNoTensorLeak(async () => {
    const t = tf.tensor2d(y, [b, D]);
    const r = denoiseFrom(m, t, sigma, options);
    const out = (await r.x.data()) as Float32Array;
    r.x.dispose();
    t.dispose();
    return { out, sigmas: r.sigmas, nfe: r.nfe, sampler: r.sampler };
  }, 'denoiseFrom');
}

describe('denoiseFrom (the reverse process started at the observation\'s noise level)', () => {
  const SIGMA = 0.5;

  it('starts at sigma and keeps the run\'s discretization below it', () => {
    const full = karrasSigmas(24, 0.002, 80, 7);
    const s = truncatedSigmas(full, SIGMA);
    expect(s[0]).toBe(SIGMA);
    expect(s.slice(1)).toEqual(full.filter((v) => v < SIGMA));
    expect(s[s.length - 1]).toBe(0);
    // A sigma on the grid is not visited twice; one below the grid's smallest is a single step.
    expect(truncatedSigmas(full, full[5]!)).toEqual(full.slice(5));
    expect(truncatedSigmas(full, 0.001)).toEqual([0.001, 0]);
    expect(() => truncatedSigmas(full, 0)).toThrow('must be a finite number > 0, got 0');
  });

  it('one Euler step from sigma is exactly the posterior mean D(y; sigma)', async () => {
    const { y } = observations(16, SIGMA);
    // sigma_min above sigma: the truncated discretization is [sigma, 0].
    const r = await run(model({ sampler: 'euler', steps: 10 }, { sigma_min: 0.6 }), y, 16, SIGMA);
    expect(r.sigmas).toEqual([SIGMA, 0]);
    expect(r.nfe).toBe(1);
    const pm = posteriorMean(y, SIGMA);
    r.out.forEach((v, k) => expect(v).toBeCloseTo(pm[k]!, 4));
  });

  it('Heun follows the probability-flow ODE from y, and lands nearer the clean signal and its posterior mean than y', async () => {
    const B = 256;
    const { x0, y } = observations(B, SIGMA);
    const r = await run(model({ sampler: 'heun', steps: 64 }), y, B, SIGMA);
    expect(r.sampler).toBe('heun');
    expect(r.sigmas[0]).toBe(SIGMA);
    expect(r.sigmas.length - 1).toBeLessThan(64);
    const exact = odeSolution(y, SIGMA);
    let worst = 0;
    r.out.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - exact[k]!))));
    expect(worst).toBeLessThan(5e-3);
    const pm = posteriorMean(y, SIGMA);
    expect(mse(r.out, pm)).toBeLessThan(0.25 * mse(y, pm));
    expect(mse(r.out, x0)).toBeLessThan(0.6 * mse(y, x0));
    // And the ODE's error is what theory says: E (a (y - mu) - (x0 - mu))^2 = 2 lambda (1 - a), a = sqrt(lambda / (lambda + sigma^2)).
    let theory = 0;
    for (let i = 0; i < D; i++) theory += 2 * LAMBDA[i]! * (1 - Math.sqrt(LAMBDA[i]! / (LAMBDA[i]! + SIGMA ** 2)));
    expect(mse(r.out, x0)).toBeCloseTo(theory / D, 1);
  });

  it('a stochastic sampler draws from p(x0 | y): the mean of many draws is the posterior mean', async () => {
    const K = 512;
    const { y: one } = observations(1, SIGMA, 7);
    const y = new Float32Array(K * D);
    for (let n = 0; n < K; n++) y.set(one, n * D);
    const r = await run(model({ sampler: 'ddpm', steps: 64 }), y, K, SIGMA, { seed: 3 });
    const mean = new Float64Array(D);
    for (let n = 0; n < K; n++) for (let i = 0; i < D; i++) mean[i]! += r.out[n * D + i]! / K;
    const pm = posteriorMean(one, SIGMA);
    for (let i = 0; i < D; i++) {
      // Posterior std / sqrt(K) is the Monte Carlo error of the mean: allow 4 of them plus the discretization's bias.
      const postStd = Math.sqrt((LAMBDA[i]! * SIGMA ** 2) / (LAMBDA[i]! + SIGMA ** 2));
      expect(Math.abs(mean[i]! - pm[i]!)).toBeLessThan(4 * (postStd / Math.sqrt(K)) + 0.01);
    }
    // Same seed, same draws; another seed, others.
    const a = await run(model({ sampler: 'ddpm', steps: 64 }), y.subarray(0, 4 * D), 4, SIGMA, { seed: 3 });
    const b = await run(model({ sampler: 'ddpm', steps: 64 }), y.subarray(0, 4 * D), 4, SIGMA, { seed: 3 });
    const c = await run(model({ sampler: 'ddpm', steps: 64 }), y.subarray(0, 4 * D), 4, SIGMA, { seed: 4 });
    expect(b.out).toEqual(a.out);
    expect(c.out).not.toEqual(a.out);
  });

  it('runs a class-conditional model on its null class, and refuses a sigma outside the model', async () => {
    const inner = gaussianDenoiser(SPEC);
    const seen: number[][] = [];
    const spy: Denoiser = (x, s, cond) => {
      seen.push(Array.from(cond?.labels?.dataSync() ?? []));
      return inner(x, s, cond);
    };
    const { y } = observations(3, SIGMA);
    await run(model({ sampler: 'euler', steps: 4 }, {}, spy, 10), y, 3, SIGMA);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((l) => l.length === 3 && l.every((v) => v === 10))).toBe(true);
    const m = model({ sampler: 'heun', steps: 4 });
    const t = tf.tensor2d(y, [3, D]);
    expect(() => denoiseFrom(m, t, 100)).toThrow("denoise: sigma 100 is above the model's largest noise level (sigma_max 80)");
    expect(() => denoiseFrom(m, t, -1)).toThrow('denoise: sigma must be a finite number > 0, got -1');
    expect(() => denoiseFrom(m, t, SIGMA, { sampler: 'nope' })).toThrow("unknown sampler 'nope'");
    t.dispose();
  });
});

describe('estimateNoiseSigmaMad', () => {
  it('finds the std of white noise under a loud low-frequency tone, ignoring a loud transient', () => {
    const rng = new Rng(5);
    const n = 16000;
    for (const s of [0.01, 0.05, 0.2]) {
      const x = Float32Array.from({ length: n }, (_, t) => 0.5 * Math.sin((2 * Math.PI * 200 * t) / 8000) + (t > 4000 && t < 4400 ? rng.normal() : 0) + s * rng.normal());
      const est = estimateNoiseSigmaMad(x);
      expect(Math.abs(est / s - 1)).toBeLessThan(0.06);
    }
    expect(estimateNoiseSigmaMad(new Float32Array(100))).toBe(0);
    expect(() => estimateNoiseSigmaMad([1, 2, 3])).toThrow('needs at least 8 samples, got 3');
  });
});

describe('windows with cross-fades', () => {
  it('cover the sequence with at least the minimum overlap, evenly', () => {
    expect(windowStarts(100, 100, 25)).toEqual([0]);
    expect(windowStarts(30, 100, 25)).toEqual([0]);
    const s = windowStarts(1000, 100, 25);
    expect(s[0]).toBe(0);
    expect(s[s.length - 1]).toBe(900);
    for (let i = 1; i < s.length; i++) expect(s[i - 1]! + 100 - s[i]!).toBeGreaterThanOrEqual(25);
    expect(s.length).toBe(Math.ceil((1000 - 25) / 75));
    expect(() => windowStarts(10, 8, 8)).toThrow('minOverlap must be an integer in [0, 8), got 8');
  });

  it('overlap-add is a partition of unity: windows cut from a signal give it back exactly', () => {
    const rng = new Rng(2);
    for (const [T, L] of [
      [1000, 100],
      [101, 100],
      [57, 100],
      [5000, 333],
    ] as const) {
      const x = Float32Array.from({ length: T }, () => rng.normal());
      const starts = windowStarts(T, L, Math.floor(L / 4));
      const windows = starts.map((s0) => Float32Array.from({ length: L }, (_, k) => (s0 + k < T ? x[s0 + k]! : 99)));
      const y = overlapAdd(windows, starts, L, T);
      y.forEach((v, i) => expect(v).toBeCloseTo(x[i]!, 5));
    }
    // Two windows of different constants cross-fade smoothly (monotone) across their overlap.
    const y = overlapAdd([new Float32Array(100).fill(0), new Float32Array(100).fill(1)], [0, 50], 100, 150);
    expect(y[0]).toBe(0);
    expect(y[149]).toBe(1);
    for (let i = 1; i < 150; i++) expect(y[i]!).toBeGreaterThanOrEqual(y[i - 1]!);
  });
});
