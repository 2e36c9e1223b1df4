import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import {
  SAMPLER_IDS,
  ancestralStep,
  countNfe,
  getSampler,
  linearMultistepCoeff,
  samplerInfo,
  stepsForNfe,
  type AnySamplerOptions,
  type StepInfo,
} from '../../src/core/samplers/index.js';
import { karrasSigmas } from '../../src/core/schedules/discretize.js';
import type { Conditioning, Denoiser } from '../../src/core/types.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

/** A 4-D mixture whose samples are image-shaped [2, 2, 1]. */
function imageMixture(): GaussianMixture {
  return new GaussianMixture(
    [
      { weight: 0.6, mean: [1, 0, -1, 0.5], cov: { kind: 'diagonal', variances: [0.2, 0.3, 0.1, 0.2] } },
      { weight: 0.4, mean: [-1, 1, 0, -0.5], cov: { kind: 'isotropic', variance: 0.15 } },
    ],
    { shape: [2, 2, 1] },
  );
}

/** Small, cheap knobs so every sampler runs in a few denoiser calls. */
const QUICK: Partial<Record<string, AnySamplerOptions>> = {
  ald: { stepSize: 1e-4, stepsPerLevel: 3 },
  pc: { correctorSteps: 2, snr: 0.1 },
};

function counting(den: Denoiser): { den: Denoiser; calls: () => number; conds: (Conditioning | undefined)[] } {
  let calls = 0;
  const conds: (Conditioning | undefined)[] = [];
  return {
    den: (x, sigma, cond) => {
      calls++;
      conds.push(cond);
      return den(x, sigma, cond);
    },
    calls: () => calls,
    conds,
  };
}

describe('sampler registry', () => {
  it('lists the samplers and rejects an unknown id, naming every valid one', () => {
    expect([...SAMPLER_IDS]).toEqual(['euler', 'euler-ancestral', 'heun', 'lms', 'dpmpp-2m', 'dpmpp-2m-sde', 'ddpm', 'ddim', 'ald', 'pc']);
    for (const call of [() => getSampler('dpm++'), () => samplerInfo('dpm++'), () => countNfe('dpm++', [1, 0]), () => stepsForNfe('dpm++', 10)]) {
      let message = '';
      try {
        call();
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain("unknown sampler 'dpm++'");
      for (const id of SAMPLER_IDS) expect(message).toContain(id);
    }
  });

  it('stepsForNfe inverts the NFE count of each sampler', () => {
    expect(stepsForNfe('euler', 7)).toBe(7);
    expect(stepsForNfe('dpmpp-2m', 20)).toBe(20);
    expect(stepsForNfe('heun', 10)).toBe(5); // 2n - 1 = 9 <= 10 < 11
    expect(stepsForNfe('heun', 9)).toBe(5);
    expect(stepsForNfe('pc', 15, { correctorSteps: 1 })).toBe(8); // n + (n - 1) = 15
    expect(stepsForNfe('pc', 20, { correctorSteps: 3 })).toBe(5); // n + 3 (n - 1) = 17 <= 20 < 21
    expect(stepsForNfe('ald', 51, { stepsPerLevel: 5 })).toBe(10); // 10 * 5 + 1
    expect(stepsForNfe('ald', 50, { stepsPerLevel: 5, finalDenoise: false })).toBe(10);
    expect(() => stepsForNfe('ald', 50)).toThrow(/one step already takes 101 denoiser calls/);
    for (const id of SAMPLER_IDS) {
      const opts = QUICK[id] ?? {};
      for (const budget of [12, 30]) {
        const n = stepsForNfe(id, budget, opts);
        expect(countNfe(id, karrasSigmas(n, 0.01, 10), opts)).toBeLessThanOrEqual(budget);
        expect(countNfe(id, karrasSigmas(n + 1, 0.01, 10), opts)).toBeGreaterThan(budget);
      }
    }
  });
});

describe('every sampler', () => {
  for (const id of SAMPLER_IDS) {
    it(`${id}: leak-free, keeps the input, calls the denoiser exactly countNfe times, reports every step`, async () => {
      const mix = imageMixture();
      const { den, calls, conds } = counting(mix.denoiser());
      const sigmas = karrasSigmas(6, 0.02, 10);
      const x0 = tf.tidy(() => tf.mul(new Rng(1).normalTensor([8, 2, 2, 1]), sigmas[0] as number));
      const cond: Conditioning = { note: tf.scalar(1) };
      const opts: AnySamplerOptions = { ...(QUICK[id] ?? {}), rng: new Rng(2), cond };
      const steps: Omit<StepInfo, 'x' | 'denoised'>[] = [];
      const out = await expectNoTensorLeak(() => {
        const x = getSampler(id)(den, x0, sigmas, opts, (info) => {
          expect(info.x.shape).toEqual([8, 2, 2, 1]);
          expect(info.denoised.shape).toEqual([8, 2, 2, 1]);
          steps.push({ i: info.i, total: info.total, sigma: info.sigma, sigmaHat: info.sigmaHat, sigmaNext: info.sigmaNext });
        });
        expect(x.shape).toEqual([8, 2, 2, 1]);
        const data = x.dataSync().slice();
        x.dispose();
        return data;
      }, id);
      expect(out.every(Number.isFinite)).toBe(true);
      expect(x0.isDisposed).toBe(false);
      expect(calls()).toBe(countNfe(id, sigmas, opts));
      expect(conds.every((c) => c === cond)).toBe(true);
      expect(steps.length).toBe(6);
      steps.forEach((s, i) => {
        expect(s).toMatchObject({ i, total: 6, sigma: sigmas[i], sigmaNext: sigmas[i + 1] });
        expect(s.sigmaHat).toBeGreaterThanOrEqual(s.sigma);
      });
      tf.dispose([x0, cond.note as tf.Tensor]);
      mix.dispose();
    });
  }

  it('zero steps return a copy of x; bad sigmas and a missing rng are errors naming the sampler', () => {
    const mix = imageMixture();
    const x0 = tf.ones([2, 2, 2, 1]);
    for (const id of SAMPLER_IDS) {
      // [3] is zero steps for every sampler but ALD, for which it is one noise level (T Langevin steps + denoising).
      const y = getSampler(id)(mix.denoiser(), x0, id === 'ald' ? [0] : [3], { rng: new Rng(0) });
      expect(y).not.toBe(x0);
      expect(Array.from(y.dataSync())).toEqual(Array.from(x0.dataSync()));
      y.dispose();
      expect(() => getSampler(id)(mix.denoiser(), x0, [1, 2, 0], { rng: new Rng(0) })).toThrow(
        new RegExp(`^${id}: sigmas must be strictly descending`),
      );
      expect(() => getSampler(id)(mix.denoiser(), x0, [1, -1])).toThrow(/not a finite number >= 0/);
    }
    for (const id of ['euler-ancestral', 'ddpm', 'dpmpp-2m-sde', 'ald', 'pc'] as const) {
      const before = tf.memory().numTensors;
      expect(() => getSampler(id)(mix.denoiser(), x0, [2, 1, 0], QUICK[id] ?? {})).toThrow(
        new RegExp(`^${id}: options.rng is required`),
      );
      expect(tf.memory().numTensors).toBe(before); // the failed run freed what it made
    }
    expect(countNfe('ald', [3], { stepsPerLevel: 4 })).toBe(5);
    expect(countNfe('ald', [3, 0], { stepsPerLevel: 4 })).toBe(5);
    expect(() => getSampler('heun')(mix.denoiser(), x0, [2, 1, 0], { sChurn: 1 })).toThrow(/heun: options.rng is required \(sChurn > 0\)/);
    expect(() => getSampler('ddim')(mix.denoiser(), x0, [2, 1, 0], { eta: 0.5 })).toThrow(/ddim: options.rng is required/);
    tf.dispose(x0);
    mix.dispose();
  });
});

describe('sampler identities', () => {
  const sigmas = karrasSigmas(12, 0.01, 20);

  function run(id: string, opts: AnySamplerOptions, seed = 9): Float32Array {
    const mix = imageMixture();
    const x0 = tf.tidy(() => tf.mul(new Rng(4).normalTensor([64, 2, 2, 1]), sigmas[0] as number));
    const y = getSampler(id)(mix.denoiser(), x0, sigmas, { ...opts, rng: new Rng(seed) });
    const data = y.dataSync() as Float32Array;
    tf.dispose([x0, y]);
    mix.dispose();
    return data;
  }

  it('DDIM with eta = 0 is the Euler step (Karras et al. 2022, Sec. 3 / Song et al. 2021 eq. 12)', () => {
    expect(maxRelError(run('ddim', { eta: 0 }), run('euler', {}))).toBeLessThan(1e-5);
  });

  it('DDPM ancestral = DDIM with eta = 1 = Euler ancestral (eta = 1), noise for noise', () => {
    const a = run('ddpm', {});
    expect(maxRelError(run('ddim', { eta: 1 }), a)).toBeLessThan(1e-5);
    expect(maxRelError(run('euler-ancestral', { eta: 1 }), a)).toBeLessThan(1e-5);
    // and they are stochastic: another seed gives another result
    expect(maxRelError(run('ddpm', {}, 10), a)).toBeGreaterThan(1e-2);
  });

  it("DDPM with variance 'beta' differs from the posterior variance but only in the noise scale", () => {
    const post = run('ddpm', {});
    const beta = run('ddpm', { variance: 'beta' });
    expect(maxRelError(beta, post)).toBeGreaterThan(1e-3);
  });

  it('DDIM with 0 < eta < 1 matches Euler ancestral with the same eta', () => {
    expect(maxRelError(run('ddim', { eta: 0.5 }), run('euler-ancestral', { eta: 0.5 }))).toBeLessThan(1e-5);
  });

  it('DPM-Solver++(2M) SDE with eta = 0 (midpoint) is DPM-Solver++(2M)', () => {
    expect(maxRelError(run('dpmpp-2m-sde', { eta: 0 }), run('dpmpp-2m', {}))).toBeLessThan(1e-5);
    expect(maxRelError(run('dpmpp-2m-sde', { eta: 0, solverType: 'heun' }), run('dpmpp-2m', {}))).toBeGreaterThan(1e-5);
  });

  it('Euler ancestral with eta = 0 is Euler; LMS of order 1 is Euler', () => {
    expect(maxRelError(run('euler-ancestral', { eta: 0 }), run('euler', {}))).toBeLessThan(1e-5);
    expect(maxRelError(run('lms', { order: 1 }), run('euler', {}))).toBeLessThan(1e-5);
  });

  it('churn outside [S_tmin, S_tmax] draws noise but leaves Euler and Heun deterministic', () => {
    const off = { sChurn: 40, sTmin: 100, sTmax: 200 };
    expect(maxRelError(run('heun', off), run('heun', {}))).toBe(0);
    expect(maxRelError(run('euler', off), run('euler', {}))).toBe(0);
    expect(maxRelError(run('heun', { sChurn: 40 }), run('heun', {}))).toBeGreaterThan(1e-3);
  });

  it('get_ancestral_step: sigma_down^2 + sigma_up^2 = sigma_next^2 and sigma_up is the DDPM posterior std', () => {
    const { sigmaDown, sigmaUp } = ancestralStep(3, 1.5);
    expect(sigmaDown ** 2 + sigmaUp ** 2).toBeCloseTo(1.5 ** 2, 12);
    expect(sigmaUp).toBeCloseTo(Math.sqrt((1.5 ** 2 * (9 - 1.5 ** 2)) / 9), 12);
    expect(ancestralStep(3, 1.5, 0)).toEqual({ sigmaDown: 1.5, sigmaUp: 0 });
    expect(ancestralStep(3, 1.5, 10).sigmaUp).toBe(1.5); // capped at sigma_next
  });

  it('LMS coefficients integrate every polynomial of degree < order exactly', () => {
    const t = [10, 6, 3.5, 2, 1.1, 0];
    for (let order = 1; order <= 4; order++) {
      const i = 4;
      const c = Array.from({ length: order }, (_, j) => linearMultistepCoeff(order, t, i, j));
      for (let deg = 0; deg < order; deg++) {
        const p = (x: number) => x ** deg;
        const exact = ((t[i + 1] as number) ** (deg + 1) - (t[i] as number) ** (deg + 1)) / (deg + 1);
        const quad = c.reduce((acc, cj, j) => acc + cj * p(t[i - j] as number), 0);
        expect(quad).toBeCloseTo(exact, 10);
      }
    }
    expect(() => linearMultistepCoeff(3, t, 1, 0)).toThrow(/Order 3 too high for step 1/);
  });
});
