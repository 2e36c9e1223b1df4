/**
 * Convergence order of the deterministic probability-flow ODE solvers
 * (Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 4 / Alg. 1):
 * the error of the solution at sigma_min against a fine reference solve
 * shrinks like steps^-p with p = 1 for Euler and p = 2 for Heun and
 * DPM-Solver++(2M). The sigmas stop at sigma_min (no trailing 0), so the
 * first-order final step onto sigma = 0 does not pollute the measured order.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { getSampler } from '../../src/core/samplers/index.js';
import { karrasSigmas } from '../../src/core/schedules/discretize.js';
import { expectNoTensorLeak } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const SIGMA_MIN = 0.05;
const SIGMA_MAX = 10;
/** n steps of Karras rho = 7 spacing from SIGMA_MAX down to SIGMA_MIN (the discretization's trailing 0 dropped). */
const sigmasFor = (n: number) => karrasSigmas(n + 1, SIGMA_MIN, SIGMA_MAX).slice(0, -1);

/** Least-squares slope of log(err) against log(steps), negated: the observed order. */
function observedOrder(steps: number[], errs: number[]): number {
  const xs = steps.map(Math.log);
  const ys = errs.map(Math.log);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  xs.forEach((x, i) => {
    num += (x - mx) * ((ys[i] as number) - my);
    den += (x - mx) ** 2;
  });
  return -num / den;
}

function rms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += ((a[i] as number) - (b[i] as number)) ** 2;
  return Math.sqrt(s / a.length);
}

describe('ODE solver order on a 2-D Gaussian mixture', () => {
  const mix = new GaussianMixture([
    { weight: 0.5, mean: [-2, 0], cov: { kind: 'full', matrix: [[0.3, 0.1], [0.1, 0.2]] } },
    { weight: 0.3, mean: [2, 1], cov: { kind: 'full', matrix: [[0.2, -0.05], [-0.05, 0.4]] } },
    { weight: 0.2, mean: [0.5, -2], cov: { kind: 'diagonal', variances: [0.25, 0.1] } },
  ]);
  let x0: tf.Tensor;
  let reference: Float32Array;

  beforeAll(() => {
    x0 = tf.tidy(() => tf.mul(new Rng(1).normalTensor([64, 2]), SIGMA_MAX));
    // Reference: Heun with 2048 steps (its error is ~(128/2048)^2 below the finest run measured here).
    const ref = getSampler('heun')(mix.denoiser(), x0, sigmasFor(2048));
    reference = ref.dataSync() as Float32Array;
    ref.dispose();
  });

  const cases = [
    { id: 'euler', steps: [32, 64, 128, 256], order: 1, tol: 0.15 },
    { id: 'heun', steps: [16, 32, 64, 128], order: 2, tol: 0.15 },
    { id: 'dpmpp-2m', steps: [16, 32, 64, 128], order: 2, tol: 0.25 },
  ];
  const observed: Record<string, number> = {};

  for (const c of cases) {
    it(`${c.id} converges with order ${c.order}`, async () => {
      const errs: number[] = [];
      for (const n of c.steps) {
        errs.push(
          await expectNoTensorLeak(() => {
            const y = getSampler(c.id)(mix.denoiser(), x0, sigmasFor(n));
            const e = rms(y.dataSync(), reference);
            y.dispose();
            return e;
          }, c.id),
        );
      }
      for (let k = 1; k < errs.length; k++) expect(errs[k]).toBeLessThan(errs[k - 1] as number);
      const p = observedOrder(c.steps, errs);
      observed[c.id] = p;
      console.log(`${c.id}: steps ${c.steps.join(', ')} -> rms error ${errs.map((e) => e.toExponential(2)).join(', ')}; order ${p.toFixed(2)}`);
      expect(Math.abs(p - c.order)).toBeLessThan(c.tol);
    });
  }

  it('LMS (order 4) converges faster than second order', async () => {
    const steps = [16, 32, 64, 128];
    const errs = await expectNoTensorLeak(() =>
      steps.map((n) => {
        const y = getSampler('lms')(mix.denoiser(), x0, sigmasFor(n));
        const e = rms(y.dataSync(), reference);
        y.dispose();
        return e;
      }),
    );
    const p = observedOrder(steps, errs);
    console.log(`lms: rms error ${errs.map((e) => e.toExponential(2)).join(', ')}; order ${p.toFixed(2)}`);
    expect(p).toBeGreaterThan(2.6);
  });

  it('the solvers agree with the exact ODE solution for Gaussian data', async () => {
    // For x0 ~ N(0, c^2) the probability-flow ODE dx/dsigma = sigma x / (c^2 + sigma^2) has the
    // solution x(sigma) = x(sigma_0) sqrt((c^2 + sigma^2) / (c^2 + sigma_0^2)).
    const c2 = 0.3;
    const gauss = new GaussianMixture([{ weight: 1, mean: [0], cov: { kind: 'isotropic', variance: c2 } }]);
    const start = tf.tidy(() => tf.mul(new Rng(3).normalTensor([16, 1]), SIGMA_MAX));
    const sig = sigmasFor(64);
    const factor = Math.sqrt((c2 + SIGMA_MIN ** 2) / (c2 + SIGMA_MAX ** 2));
    const exact = Array.from(start.dataSync(), (v) => v * factor);
    await expectNoTensorLeak(() => {
      for (const [id, tol] of [
        ['heun', 2e-3],
        ['dpmpp-2m', 2e-3],
        ['lms', 2e-4],
        ['euler', 4e-2],
      ] as const) {
        const y = getSampler(id)(gauss.denoiser(), start, sig);
        const err = rms(y.dataSync(), exact) / rms(exact, new Float32Array(exact.length));
        y.dispose();
        console.log(`gaussian exact, 64 steps: ${id} relative rms error ${err.toExponential(2)}`);
        expect(err, id).toBeLessThan(tol);
      }
    });
    tf.dispose(start);
    gauss.dispose();
  });
});
