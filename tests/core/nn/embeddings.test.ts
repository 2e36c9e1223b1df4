import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { FourierFeatures, Mlp, NoiseEmbedding, sinusoidalEmbedding } from '../../../src/core/nn/embeddings.js';
import { silu } from '../../../src/core/nn/layers.js';
import { ParamStore, type Scope } from '../../../src/core/nn/module.js';
import { Rng } from '../../../src/core/random.js';
import { maxRelError } from '../../helpers/tensors.js';

let store: ParamStore;
let scope: Scope;
beforeAll(async () => {
  await useBackend('wasm');
  store = new ParamStore('emb_test');
  scope = store.scope(new Rng(5));
});
afterAll(() => store.dispose());

const data = (t: tf.Tensor): number[] => Array.from(t.dataSync());

describe('sinusoidalEmbedding (DDPM get_timestep_embedding)', () => {
  it('has the known values', () => {
    const t = tf.tensor1d([0, 1, 3]);
    const e = sinusoidalEmbedding(t, 6); // half = 3, frequencies 1, 1e-2, 1e-4
    expect(e.shape).toEqual([3, 6]);
    const v = data(e);
    expect(v.slice(0, 6)).toEqual([0, 0, 0, 1, 1, 1]);
    const f = [1, 1e-2, 1e-4];
    [1, 3].forEach((tv, r) => {
      const row = v.slice((r + 1) * 6, (r + 2) * 6);
      f.forEach((fi, i) => {
        expect(row[i]).toBeCloseTo(Math.sin(tv * fi), 6);
        expect(row[i + 3]).toBeCloseTo(Math.cos(tv * fi), 6);
      });
    });
    // Odd widths get a zero column; 1000 with maxPeriod 10 uses frequencies 1 and 0.1.
    const odd = data(sinusoidalEmbedding(tf.tensor1d([1000]), 5, 10));
    expect(odd[0]).toBeCloseTo(Math.sin(1000), 4);
    expect(odd[1]).toBeCloseTo(Math.sin(100), 4);
    expect(odd[3]).toBeCloseTo(Math.cos(100), 4);
    expect(odd[4]).toBe(0);
    t.dispose();
  });
});

describe('FourierFeatures (NCSN++ GaussianFourierProjection)', () => {
  it('is [sin(2 pi t w), cos(2 pi t w)] with fixed N(0, scale^2) frequencies', () => {
    const ff = new FourierFeatures(scope.child('ff'), 512, 16);
    const w = data(ff.freqs);
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    expect(std).toBeGreaterThan(14);
    expect(std).toBeLessThan(18);
    expect(ff.freqs.trainable).toBe(false);
    const t = tf.tensor1d([0.3, -0.7]);
    const e = data(ff.apply(t));
    [0.3, -0.7].forEach((tv, r) => {
      for (const i of [0, 17, 255]) {
        expect(e[r * 512 + i]).toBeCloseTo(Math.sin(2 * Math.PI * tv * w[i]!), 3);
        expect(e[r * 512 + 256 + i]).toBeCloseTo(Math.cos(2 * Math.PI * tv * w[i]!), 3);
      }
    });
    expect(() => new FourierFeatures(scope.child('bad'), 5)).toThrow(/even/);
    t.dispose();
  });
});

describe('Mlp and NoiseEmbedding', () => {
  it('Mlp is Linear -> SiLU -> Linear', () => {
    const mlp = new Mlp(scope.child('mlp'), [3, 5, 2]);
    const x = new Rng(1).normalTensor([4, 3]);
    const [l0, l1] = mlp.layers as [NonNullable<(typeof mlp.layers)[0]>, NonNullable<(typeof mlp.layers)[0]>];
    const ref = tf.add(tf.matMul(silu(tf.add(tf.matMul(x, l0.weight), l0.bias!)), l1.weight), l1.bias!);
    expect(maxRelError(data(mlp.apply(x)), data(ref))).toBeLessThan(1e-6);
    expect(l0.weight.name).toBe(`${store.root}/mlp.0.weight`);
    tf.dispose([x, ref]);
  });

  it('embeds c_noise (scaled) and maps it through the MLP; Fourier and sinusoidal differ', () => {
    const sin = new NoiseEmbedding(scope.child('ne_sin'), { kind: 'sinusoidal', dim: 8, hidden: 16, inputScale: 1000 });
    const four = new NoiseEmbedding(scope.child('ne_four'), { kind: 'fourier', dim: 8, hidden: 16 });
    const c = tf.tensor1d([0.25, 0.5]);
    const e = sin.apply(c);
    expect(e.shape).toEqual([2, 16]);
    const ref = sin.mlp.apply(sinusoidalEmbedding(tf.tensor1d([250, 500]), 8));
    expect(maxRelError(data(e), data(ref))).toBeLessThan(1e-6);
    expect(four.apply(c).shape).toEqual([2, 16]);
    // Integer timesteps are accepted as they are.
    const steps = new NoiseEmbedding(scope.child('ne_int'), { kind: 'sinusoidal', dim: 8, hidden: 4 });
    const ti = tf.tensor1d([3, 999], 'int32');
    const tfl = tf.tensor1d([3, 999]);
    expect(data(steps.apply(ti))).toEqual(data(steps.apply(tfl)));
    tf.dispose([ti, tfl]);
    expect(four.features?.freqs.name).toBe(`${store.root}/ne_four.fourier.freqs`);
    c.dispose();
  });
});
