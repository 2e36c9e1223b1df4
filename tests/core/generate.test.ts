import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDifflab, dataLikelihood, gaussianDenoiser, parseRunConfig, useBackend, type LoadedModel } from '../../src/index.js';
import { toyPlugin } from '../fixtures/toy-plugin/index.js';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('dataLikelihood', () => {
  it('matches the exact Gaussian log-density, and discrete bits/dim add -log2(step)', async () => {
    const registry = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;
    const config = parseRunConfig({ modality: 'toy-points', diffusion: { schedule: { type: 'edm', sigma_min: 0.002, sigma_max: 400 } } }, 'x', registry);
    // Data N(0, I) in 2-D: the model below is the exact denoiser, so the PF-ODE likelihood is log N(x; 0, (1 + sigma_min^2) I).
    const model: LoadedModel = {
      net: undefined as never,
      denoiser: gaussianDenoiser({ mean: [0, 0], cov: { kind: 'isotropic', variance: 1 } }, { shape: [2] }),
      config,
      exampleShape: [2],
      dispose: () => {},
    };
    const x = tf.tensor2d([[0.5, -1], [1.5, 0.25]]);
    const r = await dataLikelihood(model, x, { steps: 48, probes: 1, seed: 0 });
    const v = 1 + 0.002 ** 2;
    [[0.5, -1], [1.5, 0.25]].forEach(([a, b], i) => {
      const logp = -0.5 * ((a! * a! + b! * b!) / v + 2 * Math.log(2 * Math.PI * v));
      expect(r.bitsPerDim[i]).toBeCloseTo(-logp / (2 * Math.LN2), 2);
    });
    expect(r.discreteBitsPerDim).toBeUndefined();
    const q = await dataLikelihood(model, x, { steps: 48, probes: 1, seed: 0, quantizationStep: 2 / 255 });
    q.discreteBitsPerDim!.forEach((d, i) => expect(d - q.bitsPerDim[i]!).toBeCloseTo(-Math.log2(2 / 255), 9));
    x.dispose();
  });
});
