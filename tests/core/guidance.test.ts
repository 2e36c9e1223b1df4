import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture, type MixtureComponentSpec } from '../../src/core/analytic.js';
import { useBackend } from '../../src/core/backend/select.js';
import { classifierFreeGuidance } from '../../src/core/guidance.js';
import { Rng } from '../../src/core/random.js';
import { getSampler } from '../../src/core/samplers/index.js';
import { karrasSigmas } from '../../src/core/schedules/discretize.js';
import type { Conditioning, Denoiser } from '../../src/core/types.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const NULL = -1;

/** Class 0: one component; class 1: two components (weights 0.3 : 0.2 within the class). */
const SPECS: MixtureComponentSpec[] = [
  { weight: 0.5, mean: [-2, 0], cov: { kind: 'full', matrix: [[0.3, 0.1], [0.1, 0.2]] }, label: 0 },
  { weight: 0.3, mean: [2, 1], cov: { kind: 'full', matrix: [[0.2, -0.05], [-0.05, 0.4]] }, label: 1 },
  { weight: 0.2, mean: [0.5, -2], cov: { kind: 'diagonal', variances: [0.25, 0.1] }, label: 1 },
];

function setup() {
  const mix = new GaussianMixture(SPECS);
  const inner = mix.denoiser({ nullLabel: NULL });
  const calls: { batch: number; labels: number[] }[] = [];
  const counted: Denoiser = (x, sigma, cond) => {
    calls.push({ batch: x.shape[0] as number, labels: Array.from(cond?.labels?.dataSync() ?? []) });
    return inner(x, sigma, cond);
  };
  return { mix, inner, counted, calls };
}

function values(t: tf.Tensor): Float32Array {
  const v = t.dataSync().slice() as Float32Array;
  t.dispose();
  return v;
}

describe('classifier-free guidance', () => {
  const b = 32;
  let x: tf.Tensor;
  let sigma: tf.Tensor1D;
  let labels: tf.Tensor1D;
  let nullCond: Conditioning;

  beforeAll(() => {
    const rng = new Rng(3);
    x = tf.tidy(() => tf.mul(rng.normalTensor([b, 2]), 2));
    sigma = tf.tensor1d(Array.from({ length: b }, (_, i) => 0.1 * 1.15 ** i));
    labels = tf.tensor1d(Array.from({ length: b }, (_, i) => i % 2));
    nullCond = { labels: tf.tensor1d([NULL]) };
  });

  it('w = 1 is the conditional denoiser exactly, from one batched call of size 2B', async () => {
    const { mix, inner, counted, calls } = setup();
    const guided = classifierFreeGuidance(counted, 1, nullCond);
    const [g, c] = await expectNoTensorLeak(() => [values(guided(x, sigma, { labels })), values(inner(x, sigma, { labels }))]);
    expect(maxRelError(g as Float32Array, c as Float32Array)).toBeLessThan(1e-6);
    expect(calls.length).toBe(1);
    expect(calls[0]?.batch).toBe(2 * b);
    expect(calls[0]?.labels).toEqual([...Array.from({ length: b }, (_, i) => i % 2), ...Array<number>(b).fill(NULL)]);
    mix.dispose();
  });

  it('w = 0 is the unconditional denoiser; general w is D_u + w (D_c - D_u)', async () => {
    const { mix, inner } = setup();
    await expectNoTensorLeak(() => {
      const uncond = values(mix.denoise(x, sigma));
      const nullLabels = tf.fill([b], NULL) as tf.Tensor1D;
      const uncondViaNull = values(inner(x, sigma, { labels: nullLabels }));
      nullLabels.dispose();
      expect(maxRelError(uncondViaNull, uncond)).toBeLessThan(1e-6);
      expect(maxRelError(values(classifierFreeGuidance(inner, 0, nullCond)(x, sigma, { labels })), uncond)).toBeLessThan(1e-6);
      // Without cond, the guided denoiser is unconditional.
      expect(maxRelError(values(classifierFreeGuidance(inner, 3, nullCond)(x, sigma)), uncond)).toBeLessThan(1e-6);
      const cond = values(inner(x, sigma, { labels }));
      const w = 3.5;
      const expected = uncond.map((u, i) => u + w * ((cond[i] as number) - u));
      expect(maxRelError(values(classifierFreeGuidance(inner, w, nullCond)(x, sigma, { labels })), expected)).toBeLessThan(1e-5);
      // The guidance actually does something here.
      expect(maxRelError(cond, uncond)).toBeGreaterThan(0.05);
    });
    mix.dispose();
  });

  it('accepts a full-batch nullCond and rejects mismatched keys and batches', () => {
    const { mix, inner } = setup();
    const full = { labels: tf.fill([b], NULL) as tf.Tensor1D };
    const a = values(classifierFreeGuidance(inner, 2, full)(x, sigma, { labels }));
    const c = values(classifierFreeGuidance(inner, 2, nullCond)(x, sigma, { labels }));
    expect(maxRelError(a, c)).toBe(0);
    expect(() => classifierFreeGuidance(inner, 2, nullCond)(x, sigma, { labels, extra: labels })).toThrow(
      /cond has keys \[extra, labels\] but nullCond has \[labels\]/,
    );
    expect(() => classifierFreeGuidance(inner, 2, { labels: tf.tensor1d([NULL, NULL]) })(x, sigma, { labels })).toThrow(
      /nullCond.labels has batch 2; use 1 \(broadcast\) or 32/,
    );
    expect(() => classifierFreeGuidance(inner, Number.NaN, nullCond)).toThrow(/finite/);
    expect(() => classifierFreeGuidance(inner, 1, {})).toThrow(/no tensors/);
    full.labels.dispose();
    mix.dispose();
  });

  it('composes with samplers: guided sampling at w = 1 draws the class-conditional distribution', async () => {
    const { mix, inner } = setup();
    const n = 1000;
    const sigmas = karrasSigmas(40, 0.002, 20);
    const classLabels = tf.fill([n], 1) as tf.Tensor1D;
    const x0 = tf.tidy(() => tf.mul(new Rng(8).normalTensor([n, 2]), sigmas[0] as number));
    for (const id of ['dpmpp-2m', 'euler-ancestral'] as const) {
      const guided = classifierFreeGuidance(inner, 1, nullCond);
      const counts = await expectNoTensorLeak(() => {
        const y = getSampler(id)(guided, x0, sigmas, { rng: new Rng(9), cond: { labels: classLabels } });
        const near = mix.nearestComponent(y);
        y.dispose();
        const c = [0, 0, 0];
        for (const k of near) c[k] = (c[k] as number) + 1;
        return c;
      }, id);
      // Class 1 = components 1 and 2 with weights 0.3 : 0.2, i.e. 0.6 : 0.4 within the class.
      expect(counts[0], id).toBeLessThan(0.01 * n);
      expect(Math.abs((counts[1] as number) / n - 0.6), id).toBeLessThan(0.05);
      expect(Math.abs((counts[2] as number) / n - 0.4), id).toBeLessThan(0.05);
    }
    // The same run equals sampling with the conditional denoiser itself (ODE sampler: exactly the same path).
    const viaGuidance = getSampler('dpmpp-2m')(classifierFreeGuidance(inner, 1, nullCond), x0, sigmas, { cond: { labels: classLabels } });
    const direct = getSampler('dpmpp-2m')(inner, x0, sigmas, { cond: { labels: classLabels } });
    expect(maxRelError(values(viaGuidance), values(direct))).toBeLessThan(1e-5);
    tf.dispose([classLabels, x0]);
    mix.dispose();
  });

  it('w > 1 concentrates samples: strong guidance pulls class-1 samples further from class 0', async () => {
    const { mix, inner } = setup();
    const n = 500;
    const sigmas = karrasSigmas(30, 0.002, 20);
    const classLabels = tf.fill([n], 1) as tf.Tensor1D;
    const x0 = tf.tidy(() => tf.mul(new Rng(10).normalTensor([n, 2]), sigmas[0] as number));
    const meanLogRatio = (w: number) =>
      tf.tidy(() => {
        const y = getSampler('heun')(classifierFreeGuidance(inner, w, nullCond), x0, sigmas, { cond: { labels: classLabels } });
        // Mean log p(x | class 1) - log p(x): grows as guidance sharpens toward class 1 (Ho & Salimans 2022, Sec. 3.2).
        return tf.mean(tf.sub(mix.logProb(y, 0, 1), mix.logProb(y))).dataSync()[0] as number;
      });
    const r1 = meanLogRatio(1);
    const r4 = meanLogRatio(4);
    expect(r1).toBeGreaterThan(0);
    expect(r4).toBeGreaterThan(r1);
    tf.dispose([classLabels, x0]);
    mix.dispose();
  });
});
