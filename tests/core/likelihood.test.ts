import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture, gaussianDenoiser, type GaussianSpec } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { pfOdeLogLikelihood, vePrior, vpPrior } from '../../src/core/likelihood.js';
import { epsilonParametrization, makeDenoiser, type RawNetwork } from '../../src/core/parametrizations.js';
import { createSchedule } from '../../src/core/schedules/index.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** A random SPD covariance A A^T / d + 0.3 I and a mean, for d dimensions. */
function gaussian(d: number, seed: number): GaussianSpec {
  const rng = new Rng(seed);
  const a = rng.normalArray(d * d);
  const cov: number[] = [];
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = i === j ? 0.3 : 0;
      for (let k = 0; k < d; k++) s += ((a[i * d + k] as number) * (a[j * d + k] as number)) / d;
      cov.push(s);
    }
  }
  return { mean: Array.from(rng.normalArray(d)), cov: { kind: 'full', matrix: cov } };
}

const mixtures: GaussianMixture[] = [];
function asMixture(spec: GaussianSpec): GaussianMixture {
  const m = new GaussianMixture([{ weight: 1, ...spec }]);
  mixtures.push(m);
  return m;
}
afterAll(() => mixtures.forEach((m) => m.dispose()));

async function analytic(m: GaussianMixture, x: tf.Tensor, sigma: number): Promise<Float32Array> {
  const t = m.logProb(x, sigma);
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

describe('PF-ODE log-likelihood with the exact divergence', () => {
  it.each([2, 10])('%i-D Gaussian data: matches log N(x; mu, Sigma + sigmaMin^2 I)', async (d) => {
    const spec = gaussian(d, 100 + d);
    const data = asMixture(spec);
    const x = data.sample(6, new Rng(d));
    const sigmaMin = 0.01;
    // The N(0, sigmaMax^2 I) prior misses p_{sigmaMax} = N(mu, Sigma + sigmaMax^2 I) by O(|mu| |x(sigmaMax)| / sigmaMax^2)
    // = O(1/sigmaMax) nats: 0.6% of log p at sigmaMax = 100 for the 2-D case, ~0.15% at 400.
    const sigmaMax = 400;
    const want = await analytic(data, x, sigmaMin);
    const exactPrior = (z: tf.Tensor, s: number): tf.Tensor1D => data.logProb(z, s);
    const D = gaussianDenoiser(spec);

    const tight = await expectNoTensorLeak(
      () => pfOdeLogLikelihood(D, x, { sigmaMin, sigmaMax, steps: 40, prior: exactPrior }),
      'likelihood',
    );
    const loose = await expectNoTensorLeak(() => pfOdeLogLikelihood(D, x, { sigmaMin, sigmaMax, steps: 40 }), 'likelihood');
    expect(tight.dim).toBe(d);
    for (let b = 0; b < 6; b++) {
      const w = want[b] as number;
      // With the true p_{sigmaMax} as prior the only error is RK4's (40 steps) and float32's: ~1e-4 observed.
      expect(Math.abs((tight.logLikelihood[b] as number) - w)).toBeLessThan(5e-4 * Math.max(1, Math.abs(w)));
      // With the brief's N(0, sigmaMax^2 I) prior: within 1%.
      expect(Math.abs((loose.logLikelihood[b] as number) - w)).toBeLessThan(0.01 * Math.abs(w));
      expect(loose.bitsPerDim[b]).toBeCloseTo(-(loose.logLikelihood[b] as number) / (d * Math.LN2), 12);
      expect(tight.standardError[b]).toBe(0);
    }
    x.dispose();
  });

  it('a VP eps-prediction network wrapped by makeDenoiser works the same (gradients flow through c_in, c_out)', async () => {
    const spec = gaussian(2, 102);
    const data = asMixture(spec);
    const x = data.sample(4, new Rng(3));
    const exact = gaussianDenoiser(spec);
    const cosine = createSchedule({ type: 'cosine' });
    // The ideal eps-network of a VP model: it sees x_t = s x and t, and returns (x - D*(x; sigma)) / sigma.
    const epsNet: RawNetwork = (xt, t) =>
      tf.tidy(() => {
        const ts = Array.from(t.dataSync());
        const sig = tf.tensor1d(ts.map((v) => cosine.sigma(v)));
        const scale = tf.tensor(ts.map((v) => cosine.s(v)), [ts.length, 1]);
        const xVe = tf.div(xt, scale);
        return tf.div(tf.sub(xVe, exact(xVe, sig)), tf.reshape(sig, [-1, 1]));
      });
    const D = makeDenoiser(epsNet, epsilonParametrization(cosine, { noiseInput: 'time' }));
    const sigmaMin = 0.02;
    const sigmaMax = 50;
    const want = await analytic(data, x, sigmaMin);
    const got = await expectNoTensorLeak(
      () => pfOdeLogLikelihood(D, x, { sigmaMin, sigmaMax, steps: 40, prior: (z, s) => data.logProb(z, s) }),
      'likelihood',
    );
    for (let b = 0; b < 4; b++) {
      const w = want[b] as number;
      expect(Math.abs((got.logLikelihood[b] as number) - w)).toBeLessThan(1e-3 * Math.max(1, Math.abs(w)));
    }
    x.dispose();
  });

  it('a 2-D Gaussian mixture (non-Gaussian data) with its exact denoiser', async () => {
    const mix = new GaussianMixture([
      { weight: 0.3, mean: [-2, 0], cov: { kind: 'isotropic', variance: 0.25 } },
      { weight: 0.7, mean: [1.5, 1], cov: { kind: 'full', matrix: [0.5, 0.2, 0.2, 0.3] } },
    ]);
    mixtures.push(mix);
    const x = mix.sample(8, new Rng(5));
    const sigmaMin = 0.01;
    const want = await analytic(mix, x, sigmaMin);
    const got = await expectNoTensorLeak(
      () =>
        pfOdeLogLikelihood(mix.denoiser(), x, {
          sigmaMin,
          sigmaMax: 50,
          steps: 80,
          prior: (z, s) => mix.logProb(z, s),
        }),
      'likelihood',
    );
    for (let b = 0; b < 8; b++) {
      const w = want[b] as number;
      // exact prior, 80 RK4 steps: ~5e-6 observed
      expect(Math.abs((got.logLikelihood[b] as number) - w)).toBeLessThan(1e-4 * Math.max(1, Math.abs(w)));
    }
    x.dispose();
  });

  it("the 'vp' prior is the VP model's N(0, I) seen in the VE frame: exact for unit-Gaussian data at any sigmaMax", async () => {
    // Data N(0, I) has p_sigma = N(0, (1 + sigma^2) I) exactly, the VP stationary law.
    const spec: GaussianSpec = { mean: [0, 0, 0], cov: { kind: 'isotropic', variance: 1 } };
    const data = asMixture(spec);
    const x = data.sample(5, new Rng(9));
    const want = await analytic(data, x, 0.02);
    const D = gaussianDenoiser(spec);
    const vp = await pfOdeLogLikelihood(D, x, { sigmaMin: 0.02, sigmaMax: 1, steps: 24, prior: 'vp' });
    const ve = await pfOdeLogLikelihood(D, x, { sigmaMin: 0.02, sigmaMax: 1, steps: 24, prior: 've' });
    let veMiss = 0;
    for (let b = 0; b < 5; b++) {
      expect(Math.abs((vp.logLikelihood[b] as number) - (want[b] as number))).toBeLessThan(1e-3);
      veMiss = Math.max(veMiss, Math.abs((ve.logLikelihood[b] as number) - (want[b] as number)));
    }
    // the plain VE prior N(0, sigmaMax^2 I) is the wrong law for this (VP) process
    expect(veMiss).toBeGreaterThan(0.1);
    // the priors themselves
    const z = tf.tensor2d([[1, 2, 2]]);
    const [pv, pe] = [vpPrior(z, 2), vePrior(z, 2)];
    expect(pv.dataSync()[0]).toBeCloseTo(-0.5 * (9 / 5 + 3 * Math.log(2 * Math.PI * 5)), 5);
    expect(pe.dataSync()[0]).toBeCloseTo(-0.5 * (9 / 4 + 3 * Math.log(2 * Math.PI * 4)), 5);
    tf.dispose([z, pv, pe, x]);
  });
});

describe('PF-ODE log-likelihood with the Hutchinson estimator', () => {
  it.each(['gaussian', 'rademacher'] as const)(
    '10-D Gaussian, %s probes: within 3.5 standard errors of the analytic log-density, chi-square consistent',
    async (probeType) => {
      const d = 10;
      const probes = probeType === 'rademacher' ? 16 : 64;
      const spec = gaussian(d, 110);
      const data = asMixture(spec);
      const x = data.sample(8, new Rng(77));
      const sigmaMin = 0.01;
      const sigmaMax = 100;
      const want = await analytic(data, x, sigmaMin);
      const res = await expectNoTensorLeak(
        () =>
          pfOdeLogLikelihood(gaussianDenoiser(spec), x, {
            sigmaMin,
            sigmaMax,
            steps: 32,
            divergence: 'hutchinson',
            probes,
            probeType,
            rng: new Rng(probeType === 'gaussian' ? 1 : 2),
            prior: (z, s) => data.logProb(z, s),
          }),
        'hutchinson',
      );
      expect(res.perProbe).toHaveLength(probes);
      let chi2 = 0;
      for (let b = 0; b < 8; b++) {
        const se = res.standardError[b] as number;
        expect(se).toBeGreaterThan(0);
        // Informative, not just wide. Per probe, Var[v^T A v] is 2 sum_{i != j} A_ij^2 for Rademacher
        // but 2 ||A||_F^2 for Gaussian probes, so Gaussian probes pay for the diagonal of
        // A = int (I - J) du (about 10 x 4.6^2 here): SE ~ sqrt(2 * 10 * 21 / 64) ~ 2.6.
        expect(se).toBeLessThan(probeType === 'rademacher' ? 1 : 5);
        const z = ((res.logLikelihood[b] as number) - (want[b] as number)) / se;
        expect(Math.abs(z), `row ${b}: z = ${z}`).toBeLessThan(3.5);
        chi2 += z * z;
      }
      // sum of 8 squared z-scores: chi-square(8) has 0.999 quantile 26.1 (Student-t tails of an
      // estimated SE make it a bit wider)
      expect(chi2).toBeLessThan(30);
      x.dispose();
    },
  );

  it('needs an rng, and validates its inputs', async () => {
    const x = tf.zeros([2, 3]);
    const D = gaussianDenoiser({ mean: [0, 0, 0], cov: { kind: 'isotropic', variance: 1 } });
    await expect(pfOdeLogLikelihood(D, x, { sigmaMin: 0.1, sigmaMax: 10, divergence: 'hutchinson' })).rejects.toThrow(/needs an rng/);
    await expect(pfOdeLogLikelihood(D, x, { sigmaMin: 1, sigmaMax: 0.5 })).rejects.toThrow(/sigmaMin < sigmaMax/);
    x.dispose();
  });
});
