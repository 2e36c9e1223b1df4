import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  GaussianMixture,
  cholesky,
  choleskySolve,
  gaussianDenoiser,
  symmetricEigen,
  type MixtureComponentSpec,
} from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const FULL3 = [
  [1.5, 0.4, -0.3],
  [0.4, 0.8, 0.2],
  [-0.3, 0.2, 0.6],
];

/** A 2-D, three-component mixture with full covariances and labels 0, 1, 1. */
function mixture2d(): MixtureComponentSpec[] {
  return [
    { weight: 0.5, mean: [-2, 0], cov: { kind: 'full', matrix: [[0.3, 0.1], [0.1, 0.2]] }, label: 0 },
    { weight: 0.3, mean: [2, 1], cov: { kind: 'full', matrix: [[0.2, -0.05], [-0.05, 0.4]] }, label: 1 },
    { weight: 0.2, mean: [0.5, -2], cov: { kind: 'diagonal', variances: [0.25, 0.1] }, label: 1 },
  ];
}

function hostNormal2dLogPdf(x: number[], mu: number[], c: number[][]): number {
  const [a, b] = c[0] as [number, number];
  const [, d] = c[1] as [number, number];
  const det = a * d - b * b;
  const dx = (x[0] as number) - (mu[0] as number);
  const dy = (x[1] as number) - (mu[1] as number);
  const q = (d * dx * dx - 2 * b * dx * dy + a * dy * dy) / det;
  return -0.5 * (q + Math.log(det) + 2 * Math.log(2 * Math.PI));
}

describe('host linear algebra', () => {
  it('Cholesky, its solve and Jacobi eigendecomposition reconstruct the matrix', () => {
    const d = 3;
    const a = FULL3.flat();
    const l = cholesky(a, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += (l[i * d + k] as number) * (l[j * d + k] as number);
        expect(s).toBeCloseTo(a[i * d + j] as number, 12);
      }
    }
    const b = [1, 2, 3];
    const x = choleskySolve(l, b, d, 1);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (a[i * d + k] as number) * (x[k] as number);
      expect(s).toBeCloseTo(b[i] as number, 12);
    }
    const { values, vectors } = symmetricEigen(a, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += (vectors[i * d + k] as number) * (values[k] as number) * (vectors[j * d + k] as number);
        expect(s).toBeCloseTo(a[i * d + j] as number, 12);
      }
    }
    expect(() => cholesky([1, 2, 2, 1], 2)).toThrow(/not positive definite/);
  });
});

describe('Gaussian denoiser', () => {
  const sigmas = [0.05, 0.5, 1, 3, 20, 0.5];

  for (const cov of [
    { kind: 'full', matrix: FULL3 } as const,
    { kind: 'diagonal', variances: [1.5, 0.8, 0.6] } as const,
    { kind: 'isotropic', variance: 0.7 } as const,
  ]) {
    it(`literal formula (${cov.kind}) equals the one-component mixture`, async () => {
      const mean = [0.3, -1, 2];
      const gauss = gaussianDenoiser({ mean, cov });
      const mix = new GaussianMixture([{ weight: 1, mean, cov }]);
      const x = tf.tensor2d(new Rng(1).normalArray(sigmas.length * 3), [sigmas.length, 3]).mul(2);
      const sigma = tf.tensor1d(sigmas);
      const [a, b] = await expectNoTensorLeak(() => {
        const ga = gauss(x, sigma);
        const mb = mix.denoiser()(x, sigma);
        const out = [ga.dataSync().slice(), mb.dataSync().slice()];
        tf.dispose([ga, mb]);
        return out;
      }, 'gaussian denoisers');
      expect(maxRelError(a as Float32Array, b as Float32Array)).toBeLessThan(2e-6);
      // And against a Float64 host evaluation of mu + Sigma (Sigma + s^2 I)^-1 (x - mu) with a dense matrix.
      const dense = mix.componentCovariance(0);
      const xs = x.dataSync();
      const ref = new Float64Array(sigmas.length * 3);
      sigmas.forEach((s, r) => {
        const m = Float64Array.from(dense);
        for (let i = 0; i < 3; i++) m[i * 3 + i] = (m[i * 3 + i] as number) + s * s;
        const diff = [0, 1, 2].map((i) => (xs[r * 3 + i] as number) - (mean[i] as number));
        const sol = choleskySolve(cholesky(m, 3), diff, 3, 1);
        for (let i = 0; i < 3; i++) {
          let v = mean[i] as number;
          for (let k = 0; k < 3; k++) v += (dense[i * 3 + k] as number) * (sol[k] as number);
          ref[r * 3 + i] = v;
        }
      });
      expect(maxRelError(a as Float32Array, ref)).toBeLessThan(2e-6);
      tf.dispose([x, sigma]);
      mix.dispose();
    });
  }

  it('D(x; sigma) -> x as sigma -> 0 and -> mu as sigma -> infinity', () => {
    const mean = [1, 2, 3];
    const gauss = gaussianDenoiser({ mean, cov: { kind: 'full', matrix: FULL3 } });
    const x = tf.tensor2d([[0.1, -0.2, 5]]);
    const small = gauss(x, tf.tensor1d([1e-4])).dataSync();
    const large = gauss(x, tf.tensor1d([1e4])).dataSync();
    expect(maxRelError(small, x.dataSync())).toBeLessThan(1e-6);
    expect(maxRelError(large, mean)).toBeLessThan(1e-6);
  });
});

describe('Gaussian mixture', () => {
  it('logProb at sigma = 0 and sigma > 0 equals the host log-sum-exp of the component densities', () => {
    const specs = mixture2d();
    const mix = new GaussianMixture(specs);
    const pts = [
      [0, 0],
      [-2, 0.1],
      [3, 3],
      [10, -10],
    ];
    for (const s of [0, 0.7]) {
      const got = mix.logProb(tf.tensor2d(pts), s).dataSync();
      pts.forEach((p, r) => {
        const terms = specs.map((c) => {
          const cov =
            c.cov.kind === 'full'
              ? (c.cov.matrix as number[][]).map((row, i) => row.map((v, j) => v + (i === j ? s * s : 0)))
              : c.cov.kind === 'diagonal'
                ? [
                    [(c.cov.variances[0] as number) + s * s, 0],
                    [0, (c.cov.variances[1] as number) + s * s],
                  ]
                : [];
          return Math.log(c.weight) + hostNormal2dLogPdf(p, c.mean as number[], cov);
        });
        const m = Math.max(...terms);
        const ref = m + Math.log(terms.reduce((acc, t) => acc + Math.exp(t - m), 0));
        expect(Math.abs((got[r] as number) - ref)).toBeLessThan(2e-4 * Math.max(1, Math.abs(ref)));
      });
    }
    mix.dispose();
  });

  it("posterior mean equals Tweedie's formula x + sigma^2 grad log p_sigma(x) (2-D, full covariances)", async () => {
    const mix = new GaussianMixture(mixture2d());
    const b = 64;
    const rng = new Rng(7);
    const x = tf.tensor2d(rng.normalArray(b * 2), [b, 2]).mul(2);
    const sigmaVals = Array.from({ length: b }, (_, i) => 0.05 * 1.12 ** i);
    const sigma = tf.tensor1d(sigmaVals);
    const [d, tweedie] = await expectNoTensorLeak(() =>
      tf.tidy(() => {
        const den = mix.denoise(x, sigma);
        const grad = tf.grad((xx: tf.Tensor) => tf.sum(mix.logProb(xx, sigma)))(x);
        const tw = tf.add(x, tf.mul(grad, tf.reshape(tf.square(sigma), [b, 1])));
        return [den.dataSync().slice(), tw.dataSync().slice()];
      }),
    );
    expect(maxRelError(d as Float32Array, tweedie as Float32Array)).toBeLessThan(1e-4);
    mix.dispose();
  });

  it("posterior mean equals Tweedie's formula in 784-D (isotropic components, image-shaped x)", async () => {
    const d = 784;
    const rng = new Rng(11);
    const specs: MixtureComponentSpec[] = [0, 1, 2, 3].map((k) => ({
      weight: [0.4, 0.3, 0.2, 0.1][k] as number,
      mean: Array.from(rng.normalArray(d), (v) => 0.1 * v),
      cov: { kind: 'isotropic', variance: 0.02 + 0.01 * k },
    }));
    const mix = new GaussianMixture(specs, { shape: [28, 28, 1] });
    const x0 = mix.sample(6, rng);
    const sigmaVals = [0.05, 0.1, 0.2, 0.4, 1, 3];
    const sigma = tf.tensor1d(sigmaVals);
    const x = tf.tidy(() => tf.add(x0, tf.mul(tf.reshape(sigma, [6, 1, 1, 1]), new Rng(3).normalTensor([6, 28, 28, 1]))));
    expect(x.shape).toEqual([6, 28, 28, 1]);
    const [den, tw] = await expectNoTensorLeak(() =>
      tf.tidy(() => {
        const dd = mix.denoiser()(x, sigma);
        expect(dd.shape).toEqual([6, 28, 28, 1]);
        const grad = tf.grad((xx: tf.Tensor) => tf.sum(mix.logProb(xx, sigma)))(x);
        const t = tf.add(x, tf.mul(grad, tf.reshape(tf.square(sigma), [6, 1, 1, 1])));
        return [dd.dataSync().slice(), t.dataSync().slice()];
      }),
    );
    expect(maxRelError(den as Float32Array, tw as Float32Array)).toBeLessThan(2e-4);
    tf.dispose([x0, x, sigma]);
    mix.dispose();
  });

  it('exact sampling reproduces the mixture weights, mean and covariance', () => {
    const mix = new GaussianMixture(mixture2d());
    const n = 40000;
    const { x, components } = mix.sampleWithComponents(n, new Rng(5));
    const counts = [0, 0, 0];
    for (const k of components) counts[k] = (counts[k] as number) + 1;
    counts.forEach((c, k) => expect(Math.abs(c / n - (mix.weights[k] as number))).toBeLessThan(0.01));
    const data = x.dataSync();
    const mean = [0, 0];
    for (let i = 0; i < n; i++) for (let j = 0; j < 2; j++) mean[j] = (mean[j] as number) + (data[i * 2 + j] as number) / n;
    const cov = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < 2; a++) {
        for (let b = 0; b < 2; b++) {
          cov[a * 2 + b] =
            (cov[a * 2 + b] as number) + ((data[i * 2 + a] as number) - (mean[a] as number)) * ((data[i * 2 + b] as number) - (mean[b] as number)) / n;
        }
      }
    }
    const trueMean = mix.mean();
    const trueCov = mix.covariance();
    for (let j = 0; j < 2; j++) expect(Math.abs((mean[j] as number) - (trueMean[j] as number))).toBeLessThan(0.03);
    for (let j = 0; j < 4; j++) expect(Math.abs((cov[j] as number) - (trueCov[j] as number))).toBeLessThan(0.06);
    // Samples lie nearest to the component they came from, almost always (the components are well separated).
    const nearest = mix.nearestComponent(x);
    let agree = 0;
    for (let i = 0; i < n; i++) if (nearest[i] === components[i]) agree++;
    expect(agree / n).toBeGreaterThan(0.98);
    // Class-restricted sampling only uses that class's components.
    const one = mix.sampleWithComponents(500, new Rng(6), 1);
    expect([...one.components].every((k) => k === 1 || k === 2)).toBe(true);
    tf.dispose([x, one.x]);
    mix.dispose();
  });

  it('class-conditional denoiser: a label restricts to that class (renormalized), the null label is unconditional', async () => {
    const specs = mixture2d();
    const mix = new GaussianMixture(specs);
    const classOne = new GaussianMixture(specs.filter((c) => c.label === 1));
    const nullLabel = -1;
    const den = mix.denoiser({ nullLabel });
    const x = tf.tensor2d([
      [0, 0],
      [1, -1],
      [-1, 1],
      [0, 0],
    ]);
    const sigma = tf.tensor1d([0.5, 1, 2, 0.5]);
    const labels = tf.tensor1d([1, 1, nullLabel, 0]);
    await expectNoTensorLeak(() => {
      const got = den(x, sigma, { labels });
      const c1 = classOne.denoise(x, sigma);
      const uncond = mix.denoise(x, sigma);
      const c0 = gaussianDenoiser(specs[0] as MixtureComponentSpec)(x, sigma);
      const g = got.arraySync() as number[][];
      expect(maxRelError(g[0] as number[], (c1.arraySync() as number[][])[0] as number[])).toBeLessThan(1e-5);
      expect(maxRelError(g[1] as number[], (c1.arraySync() as number[][])[1] as number[])).toBeLessThan(1e-5);
      expect(maxRelError(g[2] as number[], (uncond.arraySync() as number[][])[2] as number[])).toBeLessThan(1e-5);
      expect(maxRelError(g[3] as number[], (c0.arraySync() as number[][])[3] as number[])).toBeLessThan(1e-5);
      tf.dispose([got, c1, uncond, c0]);
    });
    // Class-restricted log-density: log of the renormalized class mixture.
    const lp = mix.logProb(x, 0.3, 1).dataSync();
    const lpRef = classOne.logProb(x, 0.3).dataSync();
    expect(maxRelError(lp, lpRef)).toBeLessThan(1e-5);
    expect(() => den(x, sigma, { labels: tf.tensor1d([1, 1, 7, 0]) })).toThrow(/label 7 has no component/);
    mix.dispose();
    classOne.dispose();
  });

  it('rejects bad specs with a message naming the problem', () => {
    expect(() => new GaussianMixture([])).toThrow(/at least one component/);
    expect(() => new GaussianMixture([{ weight: 0, mean: [0], cov: { kind: 'isotropic', variance: 1 } }])).toThrow(/weight/);
    expect(
      () => new GaussianMixture([{ weight: 1, mean: [0, 0], cov: { kind: 'full', matrix: [[1, 2], [2, 1]] } }]),
    ).toThrow(/not positive definite/);
    expect(() => new GaussianMixture([{ weight: 1, mean: [0, 0], cov: { kind: 'diagonal', variances: [1] } }])).toThrow(
      /expected 2/,
    );
  });
});
