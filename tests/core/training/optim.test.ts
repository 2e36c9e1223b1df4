import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { AdamW, clipByGlobalNorm, emaDecayAt, emaUpdateHost, learningRateAt } from '../../../src/core/training/optim.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('learning-rate schedules', () => {
  const base = { lr: 1e-3, warmupSteps: 10, totalSteps: 110 };
  it('warms up linearly, then decays as named', () => {
    expect(learningRateAt({ ...base, decay: 'constant' }, 0)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt({ ...base, decay: 'constant' }, 4)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt({ ...base, decay: 'constant' }, 50)).toBe(1e-3);
    expect(learningRateAt({ ...base, decay: 'cosine' }, 10)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt({ ...base, decay: 'cosine' }, 60)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt({ ...base, decay: 'cosine', minLrRatio: 0.1 }, 110)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt({ ...base, decay: 'linear' }, 85)).toBeCloseTo(0.25e-3, 12);
    expect(learningRateAt({ ...base, decay: 'inverse-sqrt' }, 39)).toBeCloseTo(0.5e-3, 12);
  });
});

describe('AdamW', () => {
  it('matches torch.optim.AdamW step for step, with a changing learning rate', async () => {
    // Reference: torch 2.13.0, AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05) on
    // loss = sum(w^3) + sum(w * [[1,2],[3,4]]), lr per step 0.1, 0.05, 0.2, from w = [[0.5,-1],[2,0.25]].
    const expected = [
      [0.39750000834465027, -1.0950000286102295, 1.8899999856948853, 0.14875000715255737],
      [0.3469107747077942, -1.1423299312591553, 1.8354413509368896, 0.09842176735401154],
      [0.1463189274072647, -1.3315789699554443, 1.618342399597168, -0.10226898640394211],
    ];
    const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 0.25]]), true, 'adamw-test/w');
    const c = tf.tensor2d([[1, 2], [3, 4]]);
    const opt = new AdamW(0.1, 0.05);
    const lrs = [0.1, 0.05, 0.2];
    for (let step = 0; step < 3; step++) {
      opt.setLearningRate(lrs[step]!);
      opt.minimize(() => tf.add(tf.sum(tf.pow(w, 3)), tf.sum(tf.mul(w, c))) as tf.Scalar);
      const got = await w.data();
      for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(expected[step]![i]!, 5);
    }
    opt.dispose();
    tf.dispose([w, c]);
  });
});

describe('gradient clipping', () => {
  it('rescales to the max norm only when the global norm exceeds it', async () => {
    const g = [tf.tensor1d([3, 0]), tf.tensor2d([[0, 4]])]; // global norm 5
    await expectNoTensorLeak(async () => {
      const clipped = clipByGlobalNorm(g, 1);
      expect(clipped.norm).toBeCloseTo(5, 6);
      expect([...(await clipped.grads[0]!.data())]).toEqual([expect.closeTo(0.6, 5), 0]);
      expect([...(await clipped.grads[1]!.data())]).toEqual([0, expect.closeTo(0.8, 5)]);
      tf.dispose(clipped.grads);
      const kept = clipByGlobalNorm(g, 10);
      expect([...(await kept.grads[0]!.data())]).toEqual([3, 0]);
      tf.dispose(kept.grads);
    });
    tf.dispose(g);
  });
});

describe('EMA', () => {
  it("follows k-diffusion's EMAWarmup", () => {
    const spec = { kind: 'warmup' as const, invGamma: 1, power: 2 / 3, maxValue: 0.9999 };
    expect(emaDecayAt(spec, 0, 32)).toBe(0);
    expect(emaDecayAt(spec, 7, 32)).toBeCloseTo(1 - 8 ** (-2 / 3), 12); // 0.75
    expect(emaDecayAt(spec, 10 ** 9, 32)).toBe(0.9999);
    expect(emaDecayAt({ ...spec, startAt: 5 }, 3, 32)).toBe(0);
  });

  it("follows EDM's half-life with ramp-up", () => {
    const spec = { kind: 'halflife' as const, halflifeExamples: 500_000, rampupRatio: 0.05 };
    // After 1000 steps of 32 examples, the half-life is min(500k, 0.05 * 32000) = 1600 examples.
    expect(emaDecayAt(spec, 999, 32)).toBeCloseTo(0.5 ** (32 / 1600), 12);
    expect(emaDecayAt({ ...spec, rampupRatio: null }, 0, 32)).toBeCloseTo(0.5 ** (32 / 500_000), 12);
  });

  it('updates host weights toward the current ones', () => {
    const ema = new Float32Array([0, 10]);
    emaUpdateHost(ema, new Float32Array([1, 0]), 0.75);
    expect([...ema]).toEqual([0.25, 7.5]);
  });
});
