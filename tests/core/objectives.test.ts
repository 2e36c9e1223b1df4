import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture, gaussianDenoiser } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import {
  createLossWeighting,
  createNoiseDistribution,
  createObjective,
  dsmLoss,
  dsmLossEffectiveTarget,
  dsmPerSampleLoss,
  edmWeighting,
  logNormalNoise,
  logUniformNoise,
  minSnrWeighting,
  ncsnWeighting,
  simpleWeighting,
  snrPlusOneWeighting,
  snrWeighting,
  uniformTimeNoise,
  uniformWeighting,
  type DSMObjective,
} from '../../src/core/objectives.js';
import {
  edmPreconditioning,
  epsilonParametrization,
  makeDenoiser,
  scoreParametrization,
  type RawNetwork,
} from '../../src/core/parametrizations.js';
import { Rng } from '../../src/core/random.js';
import { createSchedule } from '../../src/core/schedules/index.js';
import type { Denoiser } from '../../src/core/types.js';
import { expectNoTensorLeak } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('cpu');
});

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

/** A fixed nonlinear "network" that uses both of its inputs. */
const toyNet: RawNetwork = (xIn, cNoise) =>
  tf.tidy(() => {
    const c = tf.reshape(cNoise, [cNoise.shape[0], ...new Array<number>(xIn.rank - 1).fill(1)]);
    return tf.sub(tf.tanh(tf.add(tf.mul(xIn, 0.7), tf.mul(c, 1e-3))), 0.1);
  });

describe('loss weightings lambda(sigma) on ||D - x0||^2', () => {
  it('match their formulas at sample points', () => {
    for (const s of [0.01, 0.3, 1, 2.5, 80]) {
      const snr = 1 / (s * s);
      expect(uniformWeighting()(s)).toBe(1);
      expect(relErr(simpleWeighting()(s), snr)).toBeLessThan(1e-15);
      expect(relErr(snrWeighting()(s), snr)).toBeLessThan(1e-15);
      expect(relErr(snrPlusOneWeighting()(s), snr + 1)).toBeLessThan(1e-15);
      expect(relErr(minSnrWeighting(5)(s), Math.min(snr, 5))).toBeLessThan(1e-15);
      expect(relErr(edmWeighting(0.5)(s), (s * s + 0.25) / (s * 0.5) ** 2)).toBeLessThan(1e-15);
      // EDM: lambda = 1 / c_out^2, so the effective-target loss has unit weight
      expect(edmWeighting(0.5)(s) * edmPreconditioning({ sigmaData: 0.5 }).coefficients(s).cOut ** 2).toBeCloseTo(1, 12);
      expect(relErr(ncsnWeighting()(s), 0.5 * snr)).toBeLessThan(1e-15);
    }
    expect(minSnrWeighting(5)(0.1)).toBe(5); // SNR 100 clipped at gamma
    expect(createLossWeighting({ type: 'min-snr', gamma: 2 })(0.1)).toBe(2);
    expect(createLossWeighting({ type: 'edm', sigmaData: 1 })(1)).toBeCloseTo(2, 14);
    expect(() => createLossWeighting({ type: 'p2' } as never)).toThrow(
      /unknown loss weighting 'p2'; choose one of: uniform, simple, snr, snr\+1, min-snr, edm, ncsn/,
    );
  });
});

describe('training noise densities p(sigma)', () => {
  const n = 20000;

  it("EDM log-normal: ln sigma has mean P_mean and std P_std (within 4 standard errors)", () => {
    const sig = logNormalNoise().sample(new Rng(1), n);
    const logs = sig.map(Math.log);
    const mean = logs.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
    expect(Math.abs(mean - -1.2)).toBeLessThan((4 * 1.2) / Math.sqrt(n));
    expect(Math.abs(sd - 1.2)).toBeLessThan((4 * 1.2) / Math.sqrt(2 * n));
  });

  it('log-uniform: ln sigma uniform on [ln min, ln max]', () => {
    const sig = logUniformNoise({ sigmaMin: 0.01, sigmaMax: 100 }).sample(new Rng(2), n);
    const u = sig.map((s) => (Math.log(s) - Math.log(0.01)) / Math.log(1e4));
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const mean = u.reduce((a, b) => a + b, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    const quarter = u.filter((x) => x < 0.25).length / n;
    expect(Math.abs(quarter - 0.25)).toBeLessThan(4 * Math.sqrt((0.25 * 0.75) / n));
  });

  it('uniform-time: discrete draws training sigmas uniformly; continuous draws sigma(t), t ~ U[tMin, tMax]', () => {
    const s = createSchedule({ type: 'linear', T: 10 });
    const sig = uniformTimeNoise(s).sample(new Rng(3), n);
    const counts = new Array<number>(10).fill(0);
    for (const x of sig) {
      const i = s.discrete!.sigmas.indexOf(x);
      expect(i).toBeGreaterThanOrEqual(0);
      counts[i] = (counts[i] as number) + 1;
    }
    // chi-square with 9 degrees of freedom; 27.9 is its 0.999 quantile
    const chi2 = counts.reduce((a, c) => a + (c - n / 10) ** 2 / (n / 10), 0);
    expect(chi2).toBeLessThan(27.9);
    const cont = uniformTimeNoise(s, { discrete: false }).sample(new Rng(4), n);
    const ts = cont.map((x) => (s.t(x) - s.tMin) / (s.tMax - s.tMin));
    const mean = ts.reduce((a, b) => a + b, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(() => uniformTimeNoise(createSchedule({ type: 'edm' }), { discrete: true })).toThrow(/no training timesteps/);
  });

  it('createNoiseDistribution by id, with errors naming the valid ids', () => {
    const s = createSchedule({ type: 'geometric', sigmaMin: 0.1, sigmaMax: 10, T: 5 });
    const lu = createNoiseDistribution({ type: 'log-uniform' }, s).sample(new Rng(5), 100);
    expect(Math.min(...lu)).toBeGreaterThanOrEqual(0.1);
    expect(Math.max(...lu)).toBeLessThanOrEqual(10);
    expect(() => createNoiseDistribution({ type: 'uniform-time' })).toThrow(/needs a schedule/);
    expect(() => createNoiseDistribution({ type: 'beta' } as never)).toThrow(
      /unknown noise distribution 'beta'; choose one of: uniform-time, log-normal, log-uniform/,
    );
  });
});

describe('classical objectives are configurations of DSM', () => {
  it("DDPM's L_simple: eps-parametrization + uniform discrete timesteps + 'simple' = mean ||eps_hat - eps||^2", async () => {
    const T = 1000;
    const schedule = createSchedule({ type: 'linear', T });
    const objective = createObjective({ noise: { type: 'uniform-time' }, weighting: { type: 'simple' } }, schedule);
    const x0 = new Rng(10).normalTensor([16, 4, 3]);
    const D = makeDenoiser(toyNet, epsilonParametrization(schedule));
    const viaDsm = await expectNoTensorLeak(async () => {
      const loss = dsmLoss(D, x0, new Rng(11), objective);
      const v = (await loss.data())[0] as number;
      loss.dispose();
      return v;
    }, 'dsmLoss');
    // Ho et al. 2020, Algorithm 1 / eq. 14, written out directly with the same random draws.
    const rng = new Rng(11);
    const steps = Array.from({ length: 16 }, () => rng.int(T));
    const direct = tf.tidy(() => {
      const eps = rng.normalTensor([16, 4, 3]);
      const ab = steps.map((i) => schedule.discrete!.alphaBars[i] as number);
      const xt = tf.add(
        tf.mul(tf.tensor(ab.map(Math.sqrt), [16, 1, 1]), x0),
        tf.mul(tf.tensor(ab.map((a) => Math.sqrt(1 - a)), [16, 1, 1]), eps),
      );
      const epsHat = toyNet(xt, tf.tensor1d(steps));
      return tf.mean(tf.square(tf.sub(epsHat, eps))).dataSync()[0] as number;
    });
    expect(relErr(viaDsm, direct)).toBeLessThan(1e-5);
    x0.dispose();
  });

  it("NCSN: score-parametrization + uniform choice of L geometric levels + 'ncsn' weighting + 'sum' = Song & Ermon eq. 6", async () => {
    const L = 10;
    const schedule = createSchedule({ type: 'geometric', sigmaMin: 0.01, sigmaMax: 1, T: L });
    const objective: DSMObjective = {
      noise: uniformTimeNoise(schedule),
      weighting: ncsnWeighting(),
      reduction: 'sum',
    };
    const param = scoreParametrization({ schedule, noiseInput: 'timestep' });
    const x0 = new Rng(20).normalTensor([32, 5]);
    const viaDsm = await expectNoTensorLeak(async () => {
      const loss = dsmLoss(makeDenoiser(toyNet, param), x0, new Rng(21), objective);
      const v = (await loss.data())[0] as number;
      loss.dispose();
      return v;
    }, 'dsmLoss');
    // 1/L sum_i lambda(sigma_i) 1/2 E ||s(x~, sigma_i) + (x~ - x)/sigma_i^2||^2, lambda = sigma^2,
    // with the network predicting s = F/sigma, written out with the same draws.
    const rng = new Rng(21);
    const levels = Array.from({ length: 32 }, () => rng.int(L));
    const sig = levels.map((i) => schedule.discrete!.sigmas[i] as number);
    const direct = tf.tidy(() => {
      const eps = rng.normalTensor([32, 5]);
      const s = tf.tensor(sig, [32, 1]);
      const xt = tf.add(x0, tf.mul(s, eps));
      const score = tf.div(toyNet(xt, tf.tensor1d(levels)), s);
      const inner = tf.sum(tf.square(tf.add(score, tf.div(tf.sub(xt, x0), tf.square(s)))), 1);
      return tf.mean(tf.mul(tf.mul(inner, tf.tensor1d(sig.map((v) => v * v))), 0.5)).dataSync()[0] as number;
    });
    expect(relErr(viaDsm, direct)).toBeLessThan(1e-5);
    x0.dispose();
  });

  it("EDM's effective-target form equals the denoiser form for the same draws", async () => {
    const param = edmPreconditioning({ sigmaData: 0.5 });
    const objective = createObjective({ noise: { type: 'log-normal' }, weighting: { type: 'edm', sigmaData: 0.5 } });
    const x0 = tf.mul(new Rng(30).normalTensor([64, 2, 2, 1]), 0.5);
    const [a, b] = await expectNoTensorLeak(() => {
      const pa = dsmPerSampleLoss(makeDenoiser(toyNet, param), x0, new Rng(31), objective);
      const lb = dsmLossEffectiveTarget(toyNet, param, x0, new Rng(31), objective);
      const la = tf.mean(pa.perSample);
      const out = [la.dataSync()[0] as number, lb.dataSync()[0] as number];
      tf.dispose([pa.perSample, la, lb]);
      return out;
    }, 'effective target');
    expect(relErr(a as number, b as number)).toBeLessThan(1e-5);
    x0.dispose();
  });

  it('per-sample losses: one per row, weighted by lambda(sigma_i); the scalar is their mean', async () => {
    const D: Denoiser = (x) => tf.mul(x, 0.5);
    const objective: DSMObjective = { noise: logNormalNoise(), weighting: minSnrWeighting(5) };
    const x0 = new Rng(40).normalTensor([8, 3]);
    await expectNoTensorLeak(() => {
      const { perSample, sigmas } = dsmPerSampleLoss(D, x0, new Rng(41), objective);
      expect(perSample.shape).toEqual([8]);
      expect(sigmas).toHaveLength(8);
      const scalar = dsmLoss(D, x0, new Rng(41), objective);
      const ps = Array.from(perSample.dataSync());
      expect(scalar.dataSync()[0]).toBeCloseTo(ps.reduce((p, q) => p + q, 0) / 8, 5);
      // recompute row 0 by hand: D - x0 = 0.5 (x0 + sigma eps) - x0
      const rng = new Rng(41);
      const sig0 = logNormalNoise().sample(rng, 8)[0] as number;
      const eps = rng.normalArray(24);
      const x0v = x0.dataSync();
      let sq = 0;
      for (let j = 0; j < 3; j++) sq += (0.5 * ((x0v[j] as number) + sig0 * (eps[j] as number)) - (x0v[j] as number)) ** 2;
      expect(relErr(ps[0] as number, (Math.min(1 / sig0 ** 2, 5) * sq) / 3)).toBeLessThan(1e-5);
      tf.dispose([perSample, scalar]);
    }, 'per-sample');
    x0.dispose();
  });
});

describe('the DSM minimizer for Gaussian data is the analytic Gaussian denoiser', () => {
  it('Adam on per-sigma linear denoisers D(x; sigma_k) = A_k x + b_k converges to mu + Sigma (Sigma + sigma^2 I)^-1 (x - mu)', async () => {
    const mu = [1, -0.5];
    const cov = [
      [1.0, 0.6],
      [0.6, 0.5],
    ];
    const data = new GaussianMixture([{ weight: 1, mean: mu, cov: { kind: 'full', matrix: cov } }]);
    const schedule = createSchedule({ type: 'geometric', sigmaMin: 0.2, sigmaMax: 2, T: 3 });
    const levels = schedule.discrete!.sigmas;
    const K = levels.length;
    const A = tf.variable(tf.stack(Array.from({ length: K }, () => tf.eye(2))), true, 'A');
    const b = tf.variable(tf.zeros([K, 2]), true, 'b');
    const linear: Denoiser = (x, sigma) =>
      tf.tidy(() => {
        const idx = tf.tensor1d(
          Array.from(sigma.dataSync(), (s) => Math.round(schedule.discrete!.timestep(s))),
          'int32',
        );
        const Ak = tf.gather(A, idx); // [B, 2, 2]
        const y = tf.reshape(tf.matMul(tf.reshape(x, [-1, 1, 2]), Ak, false, true), [-1, 2]);
        return tf.add(y, tf.gather(b, idx));
      });
    // Any positive weighting has the same per-sigma minimizer; use L_simple's.
    const objective: DSMObjective = { noise: uniformTimeNoise(schedule), weighting: simpleWeighting() };
    const rng = new Rng(50);
    await expectNoTensorLeak(() => {
      for (const [lr, steps] of [
        [0.05, 300],
        [0.01, 200],
        [0.002, 200],
      ] as const) {
        const opt = tf.train.adam(lr);
        for (let i = 0; i < steps; i++) {
          const x0 = data.sample(512, rng);
          opt.minimize(() => dsmLoss(linear, x0, rng, objective), false);
          x0.dispose();
        }
        opt.dispose();
      }
    }, 'training loop');

    // Compare with the closed form, and with the samplers' analytic denoiser on test points.
    const Av = A.arraySync() as number[][][];
    const bv = b.arraySync() as number[][];
    const exact = gaussianDenoiser({ mean: mu, cov: { kind: 'full', matrix: cov } });
    let worst = 0;
    levels.forEach((s, k) => {
      // Sigma (Sigma + s^2 I)^-1 for 2x2
      const [a, c, d] = [cov[0]![0]! + s * s, cov[0]![1]!, cov[1]![1]! + s * s];
      const det = a * d - c * c;
      const inv = [
        [d / det, -c / det],
        [-c / det, a / det],
      ];
      const M = [0, 1].map((i) => [0, 1].map((j) => cov[i]![0]! * inv[0]![j]! + cov[i]![1]! * inv[1]![j]!));
      const bExact = [0, 1].map((i) => mu[i]! - (M[i]![0]! * mu[0]! + M[i]![1]! * mu[1]!));
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 2; j++) worst = Math.max(worst, Math.abs(Av[k]![i]![j]! - M[i]![j]!));
        worst = Math.max(worst, Math.abs(bv[k]![i]! - bExact[i]!));
      }
      const pts = tf.tensor2d([
        [0, 0],
        [2, -1],
        [-1, 1],
      ]);
      const sig = tf.fill([3], s) as tf.Tensor1D;
      const learned = linear(pts, sig).dataSync();
      const truth = exact(pts, sig).dataSync();
      for (let i = 0; i < learned.length; i++) expect(Math.abs(learned[i]! - truth[i]!)).toBeLessThan(0.05);
      tf.dispose([pts, sig]);
    });
    // 700 Adam steps on 512 fresh samples each, last 200 at lr 0.002: the iterate's stochastic
    // error is ~1e-2 (0.014 observed with this seed); 0.03 leaves room, and is far below the
    // distance from the initial identity map (|A - I| ~ 0.1-0.8).
    expect(worst).toBeLessThan(0.03);
    tf.dispose([A, b]);
    data.dispose();
  });
});
