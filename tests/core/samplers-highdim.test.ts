/**
 * Every sampler draws the right distribution in high dimension: on a 784-D
 * isotropic mixture (the 2-D case is in samplers-distribution.test.ts), the sample mean, covariance
 * and mixture weights (samples assigned to the nearest component mean)
 * approach the exact ones as the number of steps grows, and end within a
 * stated tolerance. The denoiser is the exact posterior mean of the mixture
 * (src/core/analytic.ts), so every error left is the sampler's (plus Monte
 * Carlo error: about 1/sqrt(N) for the mean, sqrt(w(1-w)/N) for the weights).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe } from 'vitest';
import { GaussianMixture } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import type { SamplerId } from '../../src/core/samplers/index.js';
import { karrasSigmas, logUniformSigmas } from '../../src/core/schedules/discretize.js';
import { runCases, type DistributionError } from '../helpers/sampler-cases.js';

beforeAll(async () => {
  await useBackend('wasm');
});


/**
 * How far a sample set is from a Gaussian mixture's true moments and weights:
 * mean = ||mean - mu|| / sqrt(tr Sigma); weights = max_k |fraction of samples
 * nearest to mu_k - w_k|; cov (a full 784 x 784 covariance cannot be
 * estimated from a few hundred samples) = the largest relative error of the
 * isotropic variance within each component, mean ||x - mu_k||^2 / d over the
 * samples nearest to mu_k.
 */

function distributionError(mix: GaussianMixture, x: tf.Tensor, variances: readonly number[]): DistributionError {
  const d = mix.dim;
  const data = x.dataSync();
  const n = x.shape[0] as number;
  const mu = mix.mean();
  const trueCov = mix.covariance();
  let tr = 0;
  for (let i = 0; i < d; i++) tr += trueCov[i * d + i] as number;

  const m = new Float64Array(d);
  for (let s = 0; s < n; s++) for (let i = 0; i < d; i++) m[i] = (m[i] as number) + (data[s * d + i] as number) / n;
  let me = 0;
  for (let i = 0; i < d; i++) me += ((m[i] as number) - (mu[i] as number)) ** 2;

  const nearest = mix.nearestComponent(x);
  const counts = new Float64Array(mix.size);
  for (const k of nearest) counts[k] = (counts[k] as number) + 1;
  let we = 0;
  counts.forEach((c, k) => {
    we = Math.max(we, Math.abs(c / n - (mix.weights[k] as number)));
  });

  let ce = 0;
  const ss = new Float64Array(mix.size);
  const means = Array.from({ length: mix.size }, (_, k) => mix.componentMean(k));
  for (let s = 0; s < n; s++) {
    const k = nearest[s] as number;
    const mk = means[k] as Float64Array;
    let acc = 0;
    for (let i = 0; i < d; i++) acc += ((data[s * d + i] as number) - (mk[i] as number)) ** 2;
    ss[k] = (ss[k] as number) + acc / d;
  }
  variances.forEach((v, k) => {
    const c = counts[k] as number;
    ce = Math.max(ce, c > 0 ? Math.abs((ss[k] as number) / c - v) / v : 1);
  });
  return { mean: Math.sqrt(me / tr), cov: ce, weights: we };
}


describe('784-D isotropic mixture (image-shaped [28, 28, 1]), N = 256', () => {
  const variances = [0.04, 0.06, 0.09, 0.12];
  const mix = () => {
    const rng = new Rng(123);
    // Means with entries +-0.5: ~20 apart, against a within-component spread of ~0.2-0.35 per pixel.
    return new GaussianMixture(
      variances.map((variance, k) => ({
        weight: [0.4, 0.3, 0.2, 0.1][k] as number,
        mean: Array.from({ length: 784 }, () => (rng.uniform() < 0.5 ? -0.5 : 0.5)),
        cov: { kind: 'isotropic' as const, variance },
      })),
      { shape: [28, 28, 1] },
    );
  };
  const sigmasFor = (id: SamplerId, steps: number) =>
    id === 'ald' ? logUniformSigmas(steps, 0.05, 50) : karrasSigmas(steps, 0.002, 50);
  const ode = { mean: 0.12, cov: 0.05, weights: 0.07 };
  const sde = { mean: 0.12, cov: 0.1, weights: 0.07 };
  runCases(
    '784-D',
    mix,
    256,
    [28, 28, 1],
    sigmasFor,
    [
      { id: 'euler', steps: [4, 16, 64], tol: { ...ode, cov: 0.15 } },
      { id: 'ddim', steps: [4, 16, 64], tol: { ...ode, cov: 0.15 } },
      { id: 'heun', steps: [4, 16, 64], tol: ode },
      { id: 'lms', steps: [4, 16, 64], tol: ode },
      { id: 'dpmpp-2m', steps: [4, 16, 64], tol: ode },
      { id: 'euler-ancestral', steps: [16, 64, 256], tol: sde },
      { id: 'ddpm', steps: [16, 64, 256], tol: sde },
      { id: 'dpmpp-2m-sde', steps: [8, 32, 128], tol: sde },
      { id: 'pc', steps: [16, 64, 128], tol: sde },
      // ALD needs both finer annealing and more Langevin steps per level in high dimension:
      // (levels, T) = (16, 2), (32, 5), (64, 10), epsilon = 0.5 sigma_L^2, sigma 50 -> 0.05.
      {
        id: 'ald',
        steps: [16, 32, 64],
        options: (steps) => ({ stepSize: 0.5 * 0.05 ** 2, stepsPerLevel: steps === 16 ? 2 : steps === 32 ? 5 : 10 }),
        tol: sde,
      },
    ],
    (m, y) => distributionError(m, y, variances),
  );
});
