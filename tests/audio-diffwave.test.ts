import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/core/backend/select.js';
import { edmPreconditioning, makeDenoiser } from '../src/core/parametrizations.js';
import { Rng } from '../src/core/random.js';
import { AdamW } from '../src/core/training/optim.js';
import { createAudioNetwork, parseAudioModelConfig, type AudioModelConfigInput, type DiffWave } from '../src/plugins/audio/index.js';
import { expectWasmGradientsMatchCpu, perturbVariables } from './helpers/gradcheck.js';
import { expectNoTensorLeak, maxRelError } from './helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const data = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;

/** Every code path (dilations 1, 2, 4, classes) at a size the cpu backend runs in seconds. */
const TINY: AudioModelConfigInput = { residual_channels: 6, layers: 4, dilation_cycle: 3, embedding_dim: 8, embedding_hidden: 12 };
const T = 40;

function build(config: AudioModelConfigInput, length = T, seed = 0, numClasses?: number): DiffWave {
  return createAudioNetwork(config, { exampleShape: [length, 1], rng: new Rng(seed), ...(numClasses !== undefined ? { numClasses } : {}) });
}

/** Moves every variable off its initialization (the output layer starts at zero), deterministically. */
function perturb(net: DiffWave, seed: number, scale = 0.2): void {
  perturbVariables(net.variables, seed, scale);
}

function inputs(b: number, length: number, seed: number) {
  const rng = new Rng(seed);
  return {
    x: rng.normalTensor([b, length, 1]),
    c: tf.tensor1d(Array.from({ length: b }, () => rng.uniform() * 3 - 2)) as tf.Tensor1D,
    w: rng.normalTensor([b, length, 1]),
  };
}

describe('DiffWave network', () => {
  it('maps [B, T, 1] to [B, T, 1], for any T (fully convolutional)', () => {
    const net = build(TINY);
    perturb(net, 1);
    for (const len of [T, 17]) {
      const { x, c } = inputs(3, len, 2);
      const y = net.apply(x, c);
      expect(y.shape).toEqual([3, len, 1]);
      expect(data(y).every(Number.isFinite)).toBe(true);
      tf.dispose([x, c, y]);
    }
    expect(net.layers.map((l) => l.dilation)).toEqual([1, 2, 4, 1]);
    expect(net.receptiveField).toBe(1 + 2 * (1 + 2 + 4 + 1));
    net.dispose();
  });

  it('has the parameter count of its definition, with stable checkpoint paths', () => {
    const C = 6;
    const H = 12;
    const E = 8;
    const N = 4;
    const K = 3;
    const classes = 5;
    const expected =
      (1 * C + C) + // input projection
      (E * H + H + H * H + H) + // noise embedding MLP
      (classes + 1) * H + // class embedding with the null class
      N * (H * C + C + K * C * 2 * C + 2 * C + C * 2 * C + 2 * C) + // per layer: noise projection, dilated conv, output projection
      (C * C + C) + // skip projection
      (C * 1 + 1); // output projection
    const net = build({ ...TINY, class_conditional: true }, T, 0, classes);
    expect(net.parameterCount()).toBe(expected);
    const paths = net.named().map((e) => e.path);
    expect(paths.slice(0, 3)).toEqual(['input_projection.weight', 'input_projection.bias', 'noise_emb.mlp.0.weight']);
    expect(paths).toContain('layers.3.dilated_conv.weight');
    expect(paths.at(-1)).toBe('output_projection.bias');
    expect(net.named().find((e) => e.path === 'layers.0.dilated_conv.weight')!.variable.shape).toEqual([K, C, 2 * C]);
    expect(net.buffers).toEqual([]);
    net.dispose();
    // The defaults: DiffWave's 20-layer stack of 64 channels with a 128 -> 512 -> 512 embedding MLP.
    const d = parseAudioModelConfig({});
    expect(d).toMatchObject({ arch: 'diffwave', residual_channels: 64, layers: 20, dilation_cycle: 10, kernel_size: 3, embedding_dim: 128, embedding_hidden: 512 });
  });

  it('starts at F = 0 (zero output layer), so the EDM denoiser is D(x) = c_skip x at init', () => {
    const net = build({ ...TINY, class_conditional: true }, T, 3, 4);
    const { x } = inputs(2, T, 4);
    const sigma = tf.tensor1d([0.3, 7]) as tf.Tensor1D;
    const labels = tf.tensor1d([1, 4], 'int32') as tf.Tensor1D;
    const f = net.apply(x, tf.tensor1d([0.1, -0.5]) as tf.Tensor1D, { labels });
    expect(Array.from(data(f)).every((v) => v === 0)).toBe(true);
    const D = makeDenoiser((xi, c, cond) => net.apply(xi, c, cond), edmPreconditioning({ sigmaData: 0.2 }));
    const d = data(D(x, sigma, { labels }));
    const xs = data(x);
    for (let i = 0; i < xs.length; i++) {
      const s = i < T ? 0.3 : 7;
      expect(d[i]).toBeCloseTo((0.04 / (s * s + 0.04)) * xs[i]!, 6);
    }
    tf.dispose([x, sigma, labels, f]);
    net.dispose();
  });

  it('the noise level and the class change the output; no labels means the null class', () => {
    const net = build({ ...TINY, class_conditional: true }, T, 5, 3);
    perturb(net, 6);
    const { x, c } = inputs(2, T, 7);
    const out = (labels?: number[], cn = c) =>
      tf.tidy(() => {
        const l = labels ? (tf.tensor1d(labels, 'int32') as tf.Tensor1D) : undefined;
        return Float32Array.from(data(net.apply(x, cn, l ? { labels: l } : undefined)));
      });
    const a = out([0, 1]);
    expect(maxRelError(a, out([2, 2]))).toBeGreaterThan(1e-3);
    expect(maxRelError(a, out([3, 3]))).toBeGreaterThan(1e-3);
    expect(Array.from(out())).toEqual(Array.from(out([3, 3])));
    const c2 = tf.tensor1d([1.5, -1.5]) as tf.Tensor1D;
    expect(maxRelError(a, out([0, 1], c2))).toBeGreaterThan(1e-3);
    expect(net.nullClass).toBe(3);
    expect(() => build({ ...TINY, class_conditional: true })).toThrow('diffwave: class_conditional needs a data source with labels');
    tf.dispose([x, c, c2]);
    net.dispose();
  });

  it('after a few AdamW steps every variable gets a non-zero gradient; no tensors leak', async () => {
    const net = build({ ...TINY, class_conditional: true, noise_embedding: 'fourier' }, T, 8, 2);
    const { x, c, w } = inputs(3, T, 9);
    const labels = tf.tensor1d([0, 1, 2], 'int32') as tf.Tensor1D;
    const opt = new AdamW(1e-2);
    const loss = () => tf.mean(tf.square(tf.sub(net.apply(x, c, { labels }), w))) as tf.Scalar;
    const step = () => opt.minimize(loss, true, [...net.variables])?.dispose();
    step(); // creates the optimizer's slots
    await expectNoTensorLeak(() => {
      step();
      step();
    }, 'AdamW steps');
    const { value, grads } = tf.variableGrads(loss, [...net.variables]);
    const dead = net.variables.filter((v) => data(tf.max(tf.abs(grads[v.name]!))).every((m) => m === 0));
    expect(dead.map((v) => v.name)).toEqual([]);
    expect(net.buffers.map((v) => v.name)).toEqual([`${net.store.root}/noise_emb.fourier.freqs`]);
    tf.dispose([value, ...Object.values(grads), x, c, w, labels]);
    opt.dispose();
    net.dispose();
  });

  it('rejects inputs and configs of the wrong shape with one-line errors', () => {
    const net = build(TINY);
    const { x, c } = inputs(2, T, 1);
    const x2 = tf.zeros([2, T, 2]);
    expect(() => net.apply(x2, c)).toThrow('diffwave: expected x of shape [B, T, 1], got [2, 40, 2]');
    expect(() => net.apply(x, tf.zeros([3]) as tf.Tensor1D)).toThrow('diffwave: expected c_noise of shape [2], got [3]');
    expect(() => build(TINY, 0)).toThrow(/example shape must be \[length, 1\]/);
    expect(() => createAudioNetwork(TINY, { exampleShape: [28, 28, 1], rng: new Rng(0) })).toThrow('diffwave: example shape must be [length, 1] (mono waveforms), got [28, 28, 1]');
    expect(() => parseAudioModelConfig({ kernel_size: 4 })).toThrow('model: kernel_size: must be odd, got 4');
    expect(() => parseAudioModelConfig({ arch: 'wavenet' })).toThrow("model: arch: arch must be 'diffwave'");
    expect(() => parseAudioModelConfig({ residual_chanels: 8 })).toThrow('model: residual_chanels: unknown key');
    tf.dispose([x, c, x2]);
    net.dispose();
  });
});

describe('wasm and cpu agree', () => {
  it('identical outputs and gradients of every variable (relative error < 1e-4), dilated convs included', async () => {
    const cfg = { ...TINY, class_conditional: true, dilation_cycle: 4, layers: 5, kernel_size: 3 };
    const { wasm } = await expectWasmGradientsMatchCpu(() => {
      const net = build(cfg, T, 13, 3);
      perturb(net, 14);
      const { x, c, w } = inputs(2, T, 15);
      const labels = tf.tensor1d([1, 3], 'int32') as tf.Tensor1D;
      return {
        variables: net.variables,
        forward: () => net.apply(x, c, { labels }),
        weight: w,
        dispose: () => {
          tf.dispose([x, c, w, labels]);
          net.dispose();
        },
      };
    });
    expect(wasm.grads.some((g) => g.name.endsWith('layers.3.dilated_conv.weight'))).toBe(true); // dilation 8
  });
});
