import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { evaluateSamples, extractReference, formatEvaluation } from '../../../src/core/metrics/evaluate.js';
import { extractFeatures, selectRows } from '../../../src/core/metrics/extract.js';
import type { FeatureExtractor } from '../../../src/core/metrics/types.js';
import type { DataSource } from '../../../src/core/plugin.js';
import { Rng } from '../../../src/core/random.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

const D_IN = 6;

/** A fixed toy network: features tanh(x W) (8-d), logits features V (3 classes). */
function toyExtractor(withLogits = true): FeatureExtractor & { dispose(): void } {
  const rng = new Rng(42);
  const w = tf.tensor2d(rng.normalArray(D_IN * 8), [D_IN, 8]);
  const v = tf.tensor2d(rng.normalArray(8 * 3), [8, 3]);
  const features = (x: tf.Tensor): tf.Tensor2D => tf.tidy(() => tf.tanh(tf.matMul(x as tf.Tensor2D, w)) as tf.Tensor2D);
  return {
    id: 'toy',
    featureDim: 8,
    ...(withLogits ? { numClasses: 3, logits: (x: tf.Tensor): tf.Tensor2D => tf.tidy(() => tf.mul(tf.matMul(features(x), v), 3) as tf.Tensor2D) } : {}),
    features,
    dispose: () => tf.dispose([w, v]),
  };
}

function gaussianData(n: number, shift: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * D_IN }, () => shift + rng.normal());
}

function source(data: Float32Array): DataSource {
  const n = data.length / D_IN;
  return {
    exampleShape: [D_IN],
    size: n,
    batch(indices) {
      const out = new Float32Array(indices.length * D_IN);
      indices.forEach((r, i) => out.set(data.subarray(r * D_IN, (r + 1) * D_IN), i * D_IN));
      return { x: tf.tensor2d(out, [indices.length, D_IN]) };
    },
  };
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('evaluateSamples: every metric beside its real-vs-real floor', () => {
  const real = gaussianData(3000, 0, 1);
  const heldOut = gaussianData(2000, 0, 2);
  const kid = { subsets: 20, subsetSize: 300 };

  it('good samples score near the floor, shifted samples far above it; inputs of every kind; no tensor leaks', async () => {
    const ex = toyExtractor();
    const reference = { real: { source: source(real) }, heldOut: { source: source(heldOut) } };
    const goodData = gaussianData(600, 0, 3);
    const good = tf.tensor2d(goodData, [600, D_IN]);
    const badData = gaussianData(600, 0.8, 4);
    // A stream: tensors handed over batch by batch, disposed by the extractor.
    const bad = { size: 600, read: (start: number, count: number) => tf.tensor2d(badData.subarray(start * D_IN, (start + count) * D_IN), [count, D_IN]) };
    const [rGood, rBad] = await expectNoTensorLeak(
      async () => [await evaluateSamples(ex, good, reference, { kid, batchSize: 128 }), await evaluateSamples(ex, bad, reference, { kid, batchSize: 128 })],
      'evaluateSamples',
    );
    for (const r of [rGood, rBad]) {
      expect(r.extractor).toBe('toy');
      expect(r.counts).toEqual({ samples: 600, real: 3000, floor: 600 });
      expect(r.is && r.mis && r.am).toBeTruthy();
      expect(r.kid.subsets).toBe(20);
      expect(r.kid.subsetSize).toBe(300);
    }
    // Same distribution: FD and KID of the samples are of the size of the floor.
    expect(rGood.fd.floor).toBeGreaterThan(0);
    expect(rGood.fd.value).toBeLessThan(4 * rGood.fd.floor);
    expect(Math.abs(rGood.kid.value)).toBeLessThan(3 * rGood.kid.std! + 1e-6);
    expect(Math.abs(rGood.kid.floor)).toBeLessThan(3 * rGood.kid.floorStd! + 1e-6);
    expect(rGood.is!.value).toBeCloseTo(rGood.is!.floor, 0);
    // Shifted samples: far above the floor.
    expect(rBad.fd.value).toBeGreaterThan(10 * rBad.fd.floor);
    expect(rBad.kid.value).toBeGreaterThan(5 * rBad.kid.std!);
    expect(rBad.kid.value).toBeGreaterThan(10 * (Math.abs(rBad.kid.floor) + rBad.kid.floorStd!));
    // AM's class-balance term sees the shift (its entropy term need not: shifted inputs can be classified more confidently).
    expect(rBad.am!.marginalKl).toBeGreaterThan(5 * rGood.am!.marginalKl);
    // The floor depends only on the reference and the sample count: identical for both runs.
    expect(rBad.fd.floor).toBe(rGood.fd.floor);
    expect(formatEvaluation(rBad).join('\n')).toMatch(/FD +\S+ +\(floor \S+\)/);
    good.dispose();
    ex.dispose();
  });

  it('precomputed reference features give the same report; matchFloorSize: false uses all held-out data', async () => {
    const ex = toyExtractor();
    const reference = { real: tf.tensor2d(real, [3000, D_IN]), heldOut: tf.tensor2d(heldOut, [2000, D_IN]) };
    const samples = tf.tensor2d(gaussianData(400, 0.3, 5), [400, D_IN]);
    const direct = await evaluateSamples(ex, samples, reference, { kid });
    const features = await extractReference(ex, reference);
    const cached = await evaluateSamples(ex, samples, features, { kid });
    expect({ ...cached, seconds: 0 }).toEqual({ ...direct, seconds: 0 });
    const all = await evaluateSamples(ex, samples, features, { kid, matchFloorSize: false });
    expect(all.counts.floor).toBe(2000);
    expect(all.fd.value).toBe(direct.fd.value);
    // The FD bias shrinks with more examples: the 2000-example floor is below the 400-example one.
    expect(all.fd.floor).toBeLessThan(direct.fd.floor);
    tf.dispose([reference.real, reference.heldOut, samples]);
    ex.dispose();
  });

  it('a held-out set stored sorted by class and used whole still gives an honest IS floor (rows are shuffled before the splits)', async () => {
    const ex = toyExtractor();
    // Sort the held-out rows by the toy classifier's predicted class, as a data set stored class by class would be.
    const held = tf.tensor2d(heldOut, [2000, D_IN]);
    const pred = await tf.tidy(() => tf.argMax(ex.logits!(held), 1)).data();
    const order = Array.from({ length: 2000 }, (_, i) => i).sort((a, b) => (pred[a] as number) - (pred[b] as number) || a - b);
    const sorted = Float32Array.from(order.flatMap((r) => Array.from(heldOut.subarray(r * D_IN, (r + 1) * D_IN))));
    const samples = tf.tensor2d(gaussianData(2000, 0, 7), [2000, D_IN]);
    const [realT, sortedT] = [tf.tensor2d(real, [3000, D_IN]), tf.tensor2d(sorted, [2000, D_IN])];
    const onSorted = await evaluateSamples(ex, samples, { real: realT, heldOut: sortedT }, { kid });
    const onShuffled = await evaluateSamples(ex, samples, { real: realT, heldOut: held }, { kid });
    expect(onSorted.counts.floor).toBe(2000);
    // In file order each of the 10 splits would hold one class and score IS ~1; shuffled, the floor matches the unsorted set's.
    expect(onSorted.is!.floor).toBeGreaterThan(1.5);
    expect(Math.abs(onSorted.is!.floor - onShuffled.is!.floor)).toBeLessThan(0.1 * onShuffled.is!.floor);
    expect(onSorted.fd.floor).toBeCloseTo(onShuffled.fd.floor, 6);
    tf.dispose([held, samples, realT, sortedT]);
    ex.dispose();
  });

  it('classAccuracy: the classifier verdict on samples against the classes asked for, beside its accuracy on labelled held-out data', async () => {
    const ex = toyExtractor();
    const smallKid = { subsets: 10, subsetSize: 100 };
    const argmax = async (data: Float32Array, n: number) => {
      const t = tf.tensor2d(data, [n, D_IN]);
      const pred = await tf.tidy(() => tf.argMax(ex.logits!(t), 1)).data();
      t.dispose();
      return Int32Array.from(pred);
    };
    const heldData = gaussianData(400, 0, 11);
    const heldLabels = await argmax(heldData, 400);
    // The held-out labels: the toy classifier's own verdict, except every 4th row (so its accuracy is 0.75).
    const noisy = heldLabels.map((y, i) => (i % 4 === 0 ? (y + 1) % 3 : y));
    const labelled: DataSource = {
      ...source(heldData),
      numClasses: 3,
      batch(indices) {
        const out = new Float32Array(indices.length * D_IN);
        indices.forEach((r, i) => out.set(heldData.subarray(r * D_IN, (r + 1) * D_IN), i * D_IN));
        return { x: tf.tensor2d(out, [indices.length, D_IN]), labels: tf.tensor1d(indices.map((r) => noisy[r]!), 'int32') };
      },
    };
    const sampleData = gaussianData(200, 0, 12);
    const asked = await argmax(sampleData, 200);
    const samples = tf.tensor2d(sampleData, [200, D_IN]);
    const realT = tf.tensor2d(real, [3000, D_IN]);
    const ref = { real: realT, heldOut: { source: labelled } };
    const hit = await evaluateSamples(ex, samples, ref, { kid: smallKid, sampleLabels: asked, matchFloorSize: false });
    expect(hit.classAccuracy!.value).toBe(1);
    expect(hit.classAccuracy!.floor).toBeCloseTo(0.75, 12);
    const wrong = await evaluateSamples(ex, samples, ref, { kid: smallKid, sampleLabels: asked.map((y) => (y + 1) % 3) });
    expect(wrong.classAccuracy!.value).toBe(0);
    expect(formatEvaluation(hit).some((l) => l.startsWith('acc '))).toBe(true);
    // No labels on the held-out data: no floor to compare with, so a clear error.
    await expect(evaluateSamples(ex, samples, { real: realT, heldOut: realT }, { kid: smallKid, sampleLabels: asked })).rejects.toThrow(/held-out reference has no labels/);
    const plain = await evaluateSamples(ex, samples, ref, { kid: smallKid });
    expect(plain.classAccuracy).toBeUndefined();
    tf.dispose([samples, realT]);
    ex.dispose();
  });

  it('a feature-only extractor reports FD and KID but no classifier scores', async () => {
    const ex = toyExtractor(false);
    const r = await evaluateSamples(ex, tf.tensor2d(gaussianData(100, 0, 6), [100, D_IN]), {
      real: tf.tensor2d(real.subarray(0, 500 * D_IN), [500, D_IN]),
      heldOut: tf.tensor2d(heldOut.subarray(0, 300 * D_IN), [300, D_IN]),
    }, { kid: { subsets: 5 } });
    expect(r.is).toBeUndefined();
    expect(r.mis).toBeUndefined();
    expect(r.am).toBeUndefined();
    expect(Number.isFinite(r.fd.value) && Number.isFinite(r.kid.floor)).toBe(true);
    ex.dispose();
  });
});

describe('extractFeatures', () => {
  it('returns host features and log-probabilities equal to one full-batch pass, whatever the batch size', async () => {
    const ex = toyExtractor();
    const data = gaussianData(37, 0, 7);
    const x = tf.tensor2d(data, [37, D_IN]);
    const a = await expectNoTensorLeak(() => extractFeatures(ex, x, { batchSize: 5 }), 'extractFeatures');
    const full = tf.tidy(() => ex.features(x));
    const fd = await full.data();
    full.dispose();
    expect(a.n).toBe(37);
    Array.from(fd).forEach((v, i) => expect(a.features[i]).toBeCloseTo(v, 6));
    // log-probabilities: rows exponentiate to 1.
    for (let i = 0; i < 37; i++) {
      const s = [0, 1, 2].reduce((p, k) => p + Math.exp(a.logProbs![i * 3 + k]!), 0);
      expect(s).toBeCloseTo(1, 12);
    }
    // A data source restricted to indices; FeatureSet passthrough; row selection.
    const b = await extractFeatures(ex, { source: source(data), indices: [3, 1] });
    expect(Array.from(b.features)).toEqual(Array.from(selectRows(a, [3, 1]).features));
    expect(await extractFeatures(ex, a)).toBe(a);
    await expect(extractFeatures(ex, { ...a, featureDim: 9 })).rejects.toThrow(/dimension 9/);
    await expect(extractFeatures(ex, { size: 4, read: () => tf.zeros([3, D_IN]) })).rejects.toThrow(/returned 3 examples/);
    x.dispose();
    ex.dispose();
  });
});
