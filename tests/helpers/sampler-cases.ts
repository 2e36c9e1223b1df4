/**
 * The shared driver of the sampler distribution tests (2-D and 784-D): each
 * case runs a sampler at increasing step counts on an exact mixture
 * denoiser, measures the sample set with the test's own error function, and
 * checks that the error shrinks and ends within tolerance, leak-free.
 */
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import type { GaussianMixture } from '../../src/core/analytic.js';
import { Rng } from '../../src/core/random.js';
import { getSampler, countNfe, type AnySamplerOptions, type SamplerId } from '../../src/core/samplers/index.js';
import { expectNoTensorLeak } from './tensors.js';

/** How far a sample set is from a mixture's true moments and weights (each test defines the covariance term). */
export interface DistributionError {
  readonly mean: number;
  readonly cov: number;
  readonly weights: number;
}

/** The worst of the three errors. */
export function worst(e: DistributionError): number {
  return Math.max(e.mean, e.cov, e.weights);
}

export function formatError(e: DistributionError): string {
  return `mean ${e.mean.toFixed(3)} cov ${e.cov.toFixed(3)} weights ${e.weights.toFixed(3)}`;
}

export interface Case {
  readonly id: SamplerId;
  /** Increasing step counts (ALD: noise levels). */
  readonly steps: readonly number[];
  readonly options?: (steps: number) => AnySamplerOptions;
  /** Tolerances on the last run's errors. */
  readonly tol: DistributionError;
}

export function runCases(
  label: string,
  mix: () => GaussianMixture,
  n: number,
  shape: readonly number[],
  sigmasFor: (id: SamplerId, steps: number) => number[],
  cases: readonly Case[],
  measure: (m: GaussianMixture, y: tf.Tensor) => DistributionError,
): void {
  for (const c of cases) {
    it(`${label}: ${c.id} approaches the mixture as steps grow (${c.steps.join(' -> ')})`, async () => {
      const m = mix();
      const errs: DistributionError[] = [];
      for (const steps of c.steps) {
        const sigmas = sigmasFor(c.id, steps);
        const opts: AnySamplerOptions = { ...(c.options?.(steps) ?? {}), rng: new Rng(2) };
        const x0 = tf.tidy(() => tf.mul(new Rng(1).normalTensor([n, ...shape]), sigmas[0] as number));
        const e = await expectNoTensorLeak(() => {
          const y = getSampler(c.id)(m.denoiser(), x0, sigmas, opts);
          const err = measure(m, y);
          y.dispose();
          return err;
        }, c.id);
        x0.dispose();
        console.log(`${label} ${c.id} steps ${steps} (nfe ${countNfe(c.id, sigmas, opts)}): ${formatError(e)}`);
        errs.push(e);
      }
      const first = errs[0] as DistributionError;
      const last = errs[errs.length - 1] as DistributionError;
      // The error shrinks: the worst metric at least halves from the fewest to the most steps,
      // and never grows by more than Monte Carlo noise from one step count to the next.
      expect(worst(last)).toBeLessThan(worst(first) / 2);
      for (let k = 1; k < errs.length; k++) expect(worst(errs[k] as DistributionError)).toBeLessThan(worst(errs[k - 1] as DistributionError) + 0.03);
      expect(last.mean).toBeLessThan(c.tol.mean);
      expect(last.cov).toBeLessThan(c.tol.cov);
      expect(last.weights).toBeLessThan(c.tol.weights);
      m.dispose();
    });
  }
}
