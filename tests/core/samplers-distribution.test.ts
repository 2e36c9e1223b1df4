/**
 * Every sampler draws the right distribution: on a 2-D Gaussian mixture (full
 * covariances; the 784-D case is in samplers-highdim.test.ts), the sample mean, covariance
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
import type { SamplerId } from '../../src/core/samplers/index.js';
import { karrasSigmas, logUniformSigmas } from '../../src/core/schedules/discretize.js';
import { runCases, type DistributionError } from '../helpers/sampler-cases.js';

beforeAll(async () => {
  await useBackend('wasm');
});


/**
 * How far a sample set is from a Gaussian mixture's true moments and weights:
 * mean = ||mean - mu|| / sqrt(tr Sigma) (in units of the data's spread);
 * cov = ||C - Sigma||_F / ||Sigma||_F with the full sample covariance;
 * weights = max_k |fraction of samples nearest to mu_k - w_k|.
 */

function distributionError(mix: GaussianMixture, x: tf.Tensor): DistributionError {
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
  let num = 0;
  let den = 0;
  for (let a = 0; a < d; a++) {
    for (let b = 0; b < d; b++) {
      let c = 0;
      for (let s = 0; s < n; s++) c += ((data[s * d + a] as number) - (m[a] as number)) * ((data[s * d + b] as number) - (m[b] as number));
      c /= n;
      num += (c - (trueCov[a * d + b] as number)) ** 2;
      den += (trueCov[a * d + b] as number) ** 2;
    }
  }
  ce = Math.sqrt(num / den);
  return { mean: Math.sqrt(me / tr), cov: ce, weights: we };
}


describe('2-D Gaussian mixture (full covariances), N = 4000', () => {
  const mix = () =>
    new GaussianMixture([
      { weight: 0.5, mean: [-2, 0], cov: { kind: 'full', matrix: [[0.3, 0.1], [0.1, 0.2]] } },
      { weight: 0.3, mean: [2, 1], cov: { kind: 'full', matrix: [[0.2, -0.05], [-0.05, 0.4]] } },
      { weight: 0.2, mean: [0.5, -2], cov: { kind: 'diagonal', variances: [0.25, 0.1] } },
    ]);
  const sigmasFor = (id: SamplerId, steps: number) =>
    id === 'ald' ? logUniformSigmas(steps, 0.01, 20) : karrasSigmas(steps, 0.002, 20);
  const ode = { mean: 0.03, cov: 0.05, weights: 0.02 };
  const sde = { mean: 0.04, cov: 0.06, weights: 0.025 };
  runCases('2-D', mix, 4000, [2], sigmasFor, [
    { id: 'euler', steps: [4, 16, 64], tol: { ...ode, cov: 0.08 } },
    { id: 'ddim', steps: [4, 16, 64], tol: { ...ode, cov: 0.08 } },
    { id: 'heun', steps: [4, 16, 64], tol: ode },
    { id: 'lms', steps: [4, 16, 64], tol: ode },
    { id: 'dpmpp-2m', steps: [4, 16, 64], tol: ode },
    { id: 'euler-ancestral', steps: [8, 32, 128], tol: sde },
    { id: 'ddpm', steps: [8, 32, 128], tol: sde },
    { id: 'dpmpp-2m-sde', steps: [8, 32, 128], tol: sde },
    { id: 'pc', steps: [8, 32, 128], tol: sde },
    // ALD: geometric levels 20 -> 0.01, T = 5 Langevin steps per level, epsilon = 0.5 sigma_L^2.
    { id: 'ald', steps: [16, 64, 256], options: () => ({ stepSize: 0.5 * 0.01 ** 2, stepsPerLevel: 5 }), tol: sde },
  ], (m, y) => distributionError(m, y));
});
