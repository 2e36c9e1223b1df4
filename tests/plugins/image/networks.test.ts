import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { Rng } from '../../../src/core/random.js';
import { AdamW } from '../../../src/core/training/optim.js';
import {
  createImageNetwork,
  defaultParameterCounts,
  parseImageModelConfig,
  type ImageDenoiserNetwork,
  type ImageModelConfigInput,
} from '../../../src/plugins/image/networks/index.js';
import { groupNorm, silu } from '../../../src/core/nn/layers.js';
import { ParamStore } from '../../../src/core/nn/module.js';
import { AttentionBlock2d, Downsample, ResBlock, upsampleNearest2x } from '../../../src/plugins/image/networks/blocks.js';
import { expectWasmGradientsMatchCpu, perturbVariables } from '../../helpers/gradcheck.js';
import { expectNoTensorLeak, maxRelError } from '../../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const data = (t: tf.Tensor): Float32Array => t.dataSync() as Float32Array;

/** Tiny configs: every code path (attention, both down-samplings, odd sizes, Fourier, classes) at a size the cpu backend runs in seconds. */
const TINY_UNET = {
  arch: 'unet' as const,
  channels: 8,
  channel_mult: [1, 2],
  num_res_blocks: 1,
  attention_resolutions: [4],
  norm_groups: 2,
  num_heads: 2,
};
const TINY_RESNET = { arch: 'resnet' as const, channels: 8, num_blocks: 2, attention_blocks: [1], norm_groups: 2, num_heads: 2 };

function build(config: ImageModelConfigInput, shape: [number, number, number], seed = 0, numClasses?: number): ImageDenoiserNetwork {
  return createImageNetwork(config, { exampleShape: shape, numClasses, rng: new Rng(seed) });
}

/** Moves every variable off its (partly zero) initialization, deterministically, so all paths carry signal. */
function perturb(net: ImageDenoiserNetwork, seed: number, scale = 0.2): void {
  perturbVariables(net.variables, seed, scale);
}

function inputs(b: number, shape: [number, number, number], seed: number) {
  const rng = new Rng(seed);
  return {
    x: rng.normalTensor([b, ...shape]),
    c: tf.tensor1d(Array.from({ length: b }, () => rng.uniform() * 3 - 2)),
    w: rng.normalTensor([b, ...shape]),
  };
}

describe('blocks', () => {
  it('upsampleNearest2x equals tf.image.resizeNearestNeighbor, gradient included', () => {
    const x = new Rng(1).normalTensor([2, 3, 4, 5]) as tf.Tensor4D;
    const w = new Rng(2).normalTensor([2, 6, 8, 5]);
    const ours = upsampleNearest2x(x);
    const ref = tf.image.resizeNearestNeighbor(x, [6, 8]);
    expect(Array.from(data(ours))).toEqual(Array.from(data(ref)));
    const g1 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(a as tf.Tensor4D), w)))(x);
    const g2 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [6, 8]), w)))(x);
    expect(maxRelError(data(g1), data(g2))).toBeLessThan(1e-6);
    tf.dispose([x, w, ours, ref, g1, g2]);
  });

  it('ResBlock, AttentionBlock2d and average-pool Downsample equal their definitions', () => {
    const store = new ParamStore('blocks_test');
    const scope = store.scope(new Rng(3));
    const rb = new ResBlock(scope.child('rb'), 4, 6, 5, 2, 0);
    const ab = new AttentionBlock2d(scope.child('ab'), 6, 2, 3);
    const ds = new Downsample(scope.child('ds'), 6, 'avgpool');
    const rng = new Rng(4);
    tf.tidy(() => {
      for (const v of store.variables) v.assign(tf.add(v, tf.mul(rng.normalTensor(v.shape), 0.3)));
    });
    const x = rng.normalTensor([2, 4, 4, 4]) as tf.Tensor4D;
    const emb = silu(rng.normalTensor([2, 5])) as tf.Tensor2D;
    const ctx = { training: false, rng: new Rng(0) };
    const conv = (h: tf.Tensor, c: { weight: tf.Tensor; bias: tf.Tensor | undefined }) =>
      tf.add(tf.conv2d(h as tf.Tensor4D, c.weight as tf.Tensor4D, 1, 'same'), c.bias!);
    // DDPM resnet_block, written out.
    let h = conv(silu(groupNorm(x, rb.norm1.gamma, rb.norm1.beta, 2)), rb.conv1);
    h = tf.add(h, tf.reshape(tf.add(tf.matMul(emb, rb.embProj.weight as tf.Tensor2D), rb.embProj.bias!), [2, 1, 1, 6]));
    h = conv(silu(groupNorm(h, rb.norm2.gamma, rb.norm2.beta, 2)), rb.conv2);
    const expected = tf.add(conv(x, rb.skip!), h);
    const y = rb.apply(x, emb, ctx);
    expect(maxRelError(data(y), data(expected))).toBeLessThan(1e-5);
    // Attention block: x + MHSA(GN(x)) over the 16 positions.
    const seq = tf.reshape(groupNorm(y, ab.norm.gamma, ab.norm.beta, 3), [2, 16, 6]);
    const att = tf.add(y, tf.reshape(ab.attn.apply(seq), [2, 4, 4, 6]));
    const z = ab.apply(y);
    expect(maxRelError(data(z), data(att))).toBeLessThan(1e-5);
    // 2x2 average pooling.
    const p = data(ds.apply(z));
    const zd = data(z);
    const at = (n: number, i: number, j: number, c: number) => zd[((n * 4 + i) * 4 + j) * 6 + c]!;
    expect(p[((1 * 2 + 1) * 2 + 0) * 6 + 5]).toBeCloseTo((at(1, 2, 0, 5) + at(1, 2, 1, 5) + at(1, 3, 0, 5) + at(1, 3, 1, 5)) / 4, 5);
    tf.dispose([x, emb, expected, y, seq, att, z]);
    store.dispose();
  });
});

describe('model config schema', () => {
  it('fills the defaults, defaults arch to unet, and is strict', () => {
    const u = parseImageModelConfig({});
    expect(u).toMatchObject({
      arch: 'unet',
      channels: 32,
      channel_mult: [1, 2, 2],
      num_res_blocks: 1,
      attention_resolutions: [7],
      noise_embedding: 'sinusoidal',
      dropout: 0,
      class_conditional: false,
      downsample: 'conv',
    });
    expect(parseImageModelConfig({ arch: 'resnet' })).toMatchObject({ arch: 'resnet', channels: 64, num_blocks: 10, attention_blocks: [] });
    expect(() => parseImageModelConfig({ chanels: 3 })).toThrow(/chanels: unknown key/);
    expect(() => parseImageModelConfig({ arch: 'resnet', channel_mult: [1] })).toThrow(/channel_mult: unknown key/);
    expect(() => parseImageModelConfig({ arch: 'vit' })).toThrow(/arch/);
    expect(() => parseImageModelConfig({ channels: 12, norm_groups: 8 })).toThrow(/norm_groups: 8 groups do not divide 12/);
    expect(() => parseImageModelConfig({ channels: 8, norm_groups: 8, num_heads: 3 })).toThrow(/num_heads/);
    expect(() => parseImageModelConfig({ dropout: 1 })).toThrow(/dropout/);
    expect(() => parseImageModelConfig({ arch: 'resnet', num_blocks: 2, attention_blocks: [2] })).toThrow(/block 2 does not exist/);
  });

  it('rejects configs that do not fit the data', () => {
    expect(() => build({ ...TINY_UNET, attention_resolutions: [3] }, [8, 8, 1])).toThrow(/lists 3, but the feature maps of a 8x8 input are 8, 4 high/);
    expect(() => build({ ...TINY_UNET, class_conditional: true }, [8, 8, 1])).toThrow(/class_conditional needs a data source with labels/);
    expect(() => build(TINY_UNET, [8, 8] as unknown as [number, number, number])).toThrow(/\[height, width, channels\]/);
    // Nothing stays registered after a failed build.
    expect(Object.keys(tf.engine().registeredVariables).filter((n) => n.startsWith('unet'))).toEqual([]);
  });
});

describe('default sizes', () => {
  it('the default U-Net and ResNet have comparable parameter counts (within 20 %)', () => {
    const { unet, resnet } = defaultParameterCounts([28, 28, 1]);
    expect(unet).toBeGreaterThan(300_000);
    expect(unet).toBeLessThan(1_500_000);
    expect(Math.abs(resnet - unet) / unet).toBeLessThan(0.2);
  });
});

describe('U-Net and ResNet denoisers', () => {
  const archs = [
    ['unet', TINY_UNET],
    ['resnet', TINY_RESNET],
  ] as const;

  for (const [name, cfg] of archs) {
    it(`${name}: output has the input's shape for 28x28x1 and 32x32x3`, () => {
      for (const [shape, attn] of [
        [[28, 28, 1], [7]],
        [[32, 32, 3], [8]],
      ] as const) {
        const config = name === 'unet' ? { ...cfg, channel_mult: [1, 2, 2], attention_resolutions: [...attn] } : cfg;
        const net = build(config, [...shape]);
        const { x, c } = inputs(2, [...shape], 1);
        const y = net.apply(x, c as tf.Tensor1D);
        expect(y.shape).toEqual([2, ...shape]);
        // Zero-initialized output conv: the untrained network outputs exactly 0.
        expect(data(y).every((v) => v === 0)).toBe(true);
        tf.dispose([x, c, y]);
        net.dispose();
      }
    });

    it(`${name}: class labels change the output; the null class (id = numClasses) is the default`, () => {
      const net = build({ ...cfg, class_conditional: true }, [8, 8, 1], 2, 3);
      perturb(net, 3);
      const { x, c } = inputs(2, [8, 8, 1], 4);
      const out = (labels?: number[]) => {
        const l = labels ? tf.tensor1d(labels, 'int32') : undefined;
        const y = net.apply(x, c as tf.Tensor1D, l ? { labels: l as tf.Tensor1D } : undefined);
        const d = Float32Array.from(data(y));
        tf.dispose([y, ...(l ? [l] : [])]);
        return d;
      };
      const a = out([0, 1]);
      const b = out([2, 2]);
      const nul = out([3, 3]);
      const none = out();
      expect(maxRelError(a, b)).toBeGreaterThan(1e-3);
      expect(maxRelError(a, nul)).toBeGreaterThan(1e-3);
      expect(Array.from(none)).toEqual(Array.from(nul));
      expect(net.numClasses).toBe(3);
      expect(net.named().some((e) => e.path === 'label_emb.weight' && e.variable.shape[0] === 4)).toBe(true);
      tf.dispose([x, c]);
      net.dispose();
    });

    it(`${name}: after a few Adam steps from the real init, every variable gets a non-zero gradient; no tensors leak`, async () => {
      const net = build({ ...cfg, class_conditional: true, noise_embedding: 'fourier' }, [8, 8, 1], 5, 2);
      const { x, c, w } = inputs(3, [8, 8, 1], 6);
      const labels = tf.tensor1d([0, 1, 2], 'int32');
      const opt = new AdamW(1e-2);
      const loss = () => tf.mean(tf.square(tf.sub(net.apply(x, c as tf.Tensor1D, { labels: labels as tf.Tensor1D }), w))) as tf.Scalar;
      const step = () => {
        const l = opt.minimize(loss, true, [...net.variables]);
        l?.dispose();
      };
      step(); // creates the optimizer's slots
      await expectNoTensorLeak(() => {
        step();
        step();
      }, 'Adam steps');
      const { value, grads } = tf.variableGrads(loss, [...net.variables]);
      const dead = net.variables.filter((v) => {
        const g = grads[v.name];
        return !g || data(tf.max(tf.abs(g))).every((m) => m === 0);
      });
      expect(dead.map((v) => v.name)).toEqual([]);
      expect(net.buffers.map((v) => v.name)).toEqual([`${name}/noise_emb.fourier.freqs`]);
      tf.dispose([value, ...Object.values(grads), x, c, w, labels]);
      opt.dispose();
      net.dispose();
    });
  }

  it('U-Net with average pooling on an odd, non-square input (7x6 -> 4x3 and back)', () => {
    const net = build({ ...TINY_UNET, downsample: 'avgpool', attention_resolutions: [] }, [7, 6, 2]);
    perturb(net, 8);
    const { x, c } = inputs(2, [7, 6, 2], 9);
    const y = net.apply(x, c as tf.Tensor1D);
    expect(y.shape).toEqual([2, 7, 6, 2]);
    expect(data(y).every(Number.isFinite)).toBe(true);
    tf.dispose([x, c, y]);
    net.dispose();
  });

  it('dropout is active in training mode only, and reproducible from the seed', () => {
    const make = () => {
      const net = build({ ...TINY_RESNET, dropout: 0.5 }, [8, 8, 1], 10);
      perturb(net, 11);
      return net;
    };
    const { x, c } = inputs(2, [8, 8, 1], 12);
    const run = (net: ImageDenoiserNetwork) => tf.tidy(() => Float32Array.from(data(net.apply(x, c as tf.Tensor1D))));
    const n1 = make();
    const n2 = make();
    expect(n1.training).toBe(true);
    const a = run(n1);
    const b = run(n1);
    expect(maxRelError(a, b)).toBeGreaterThan(1e-3); // fresh masks per call
    expect(Array.from(run(n2))).toEqual(Array.from(a)); // same seed, same masks
    n1.setTraining(false);
    expect(Array.from(run(n1))).toEqual(Array.from(run(n1)));
    tf.dispose([x, c]);
    n1.dispose();
    n2.dispose();
  });

  it('rejects inputs of the wrong shape', () => {
    const net = build(TINY_RESNET, [8, 8, 1]);
    const { x, c } = inputs(2, [8, 8, 1], 1);
    const x2 = tf.zeros([2, 8, 8, 3]);
    expect(() => net.apply(x2, c as tf.Tensor1D)).toThrow(/expected x of shape \[B, 8, 8, 1\]/);
    expect(() => net.apply(x, tf.zeros([3]) as tf.Tensor1D)).toThrow(/c_noise of shape \[2\]/);
    tf.dispose([x, c, x2]);
    net.dispose();
  });
});

describe('wasm and cpu agree', () => {
  const configs: [string, ImageModelConfigInput, [number, number, number]][] = [
    ['unet', { ...TINY_UNET, class_conditional: true }, [8, 8, 2]],
    ['unet (avgpool, odd size, fourier)', { ...TINY_UNET, downsample: 'avgpool', attention_resolutions: [4], noise_embedding: 'fourier', class_conditional: true }, [7, 6, 1]],
    ['resnet', { ...TINY_RESNET, class_conditional: true }, [8, 8, 2]],
  ];
  for (const [name, cfg, shape] of configs) {
    it(`${name}: identical outputs and gradients (relative error < 1e-4)`, async () => {
      await expectWasmGradientsMatchCpu(() => {
        const net = build(cfg, shape, 13, 3);
        perturb(net, 14);
        const { x, c, w } = inputs(2, shape, 15);
        const labels = tf.tensor1d([1, 3], 'int32') as tf.Tensor1D;
        return {
          variables: net.variables,
          forward: () => net.apply(x, c as tf.Tensor1D, { labels }),
          weight: w,
          dispose: () => {
            tf.dispose([x, c, w, labels]);
            net.dispose();
          },
        };
      });
    });
  }
});
