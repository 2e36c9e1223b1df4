import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDifflab, parseRunConfig, readYamlFile, Rng, trainRun, useBackend, type RunConfig } from '../src/index.js';
import { evaluateSamples } from '../src/core/metrics/evaluate.js';
import { extractFeatures, selectRows } from '../src/core/metrics/extract.js';
import { frechetDistance, gaussianStats } from '../src/core/metrics/frechet.js';
import type { FeatureSet } from '../src/core/metrics/types.js';
import {
  centredWindows,
  DEFAULT_LOG_MEL,
  DIGIT_CLASSIFIER_WEIGHTS,
  LogMelFrontEnd,
  loadDigitClassifier,
  melFilterbank,
  noiseWindows,
  openFsdd,
  shuffledWindows,
  windowRms,
  type DigitClassifierExtractor,
} from '../src/plugins/audio/classifier/index.js';
import { audioPlugin, resample, stftDb, type AudioDataConfig, type AudioDataSource, type AudioModelConfig } from '../src/plugins/audio/index.js';
import { expectNoTensorLeak, maxRelError } from './helpers/tensors.js';

const FSDD = '../shared/datasets/fsdd/recordings';
const haveFsdd = existsSync(FSDD);
if (!haveFsdd) console.warn(`skipping the FSDD accuracy and floor tests of the digit classifier: ${FSDD} is absent (difflab datasets fetch fsdd)`);

beforeAll(async () => {
  await useBackend('wasm');
});

/** Host reference of the front end: stftDb's magnitudes (its frame t+1 is the front end's frame t: stftDb centres frames), mel-filtered, in dB. */
function hostLogMel(x: Float32Array): { db: Float64Array; frames: number } {
  const c = DEFAULT_LOG_MEL;
  const s = stftDb(x, { nFft: c.nFft, hop: c.hop });
  const fb = melFilterbank(c);
  const frames = Math.ceil(x.length / c.hop) - c.nFft / c.hop + 1;
  const db = new Float64Array(frames * c.nMels);
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < c.nMels; m++) {
      let p = 0;
      for (let f = 0; f < s.bins; f++) p += fb[f * c.nMels + m]! * 10 ** (s.db[(t + 1) * s.bins + f]! / 10);
      db[t * c.nMels + m] = 10 * Math.log10(Math.max(p, 10 ** (c.floorDb / 10)));
    }
  }
  return { db, frames };
}

describe('log-mel front end (tf ops)', () => {
  it('equals a host STFT + mel filterbank on a known signal; a full-scale sine reads ~0 dB, silence the floor', async () => {
    const rng = new Rng(3);
    const n = 2048;
    // A chirp plus a little noise: energy in every band.
    const x = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * (100 * i + (1800 * i * i) / (2 * n)) / 8000) + 0.01 * rng.normal());
    const fe = new LogMelFrontEnd();
    try {
      const got = await expectNoTensorLeak(async () => {
        const t = tf.tidy(() => fe.apply(tf.tensor3d(x, [1, n, 1])));
        const d = await t.data();
        const shape = t.shape;
        t.dispose();
        return { d, shape };
      }, 'front end');
      const want = hostLogMel(x);
      expect(got.shape).toEqual([1, want.frames, DEFAULT_LOG_MEL.nMels]);
      let worst = 0;
      for (let i = 0; i < want.db.length; i++) worst = Math.max(worst, Math.abs(got.d[i]! - want.db[i]!));
      // float32 matMuls vs a float64 FFT: well under a hundredth of a dB.
      expect(worst).toBeLessThan(5e-3);

      const sine = Float32Array.from({ length: n }, (_, i) => Math.sin((2 * Math.PI * 1000 * i) / 8000));
      const [sineDb, silentDb] = tf.tidy(() => [fe.apply(tf.tensor2d(sine, [1, n])), fe.apply(tf.zeros([1, n, 1]))]).map((t) => {
        const v = t.dataSync();
        t.dispose();
        return v;
      });
      const peak = Math.max(...Array.from(sineDb!));
      expect(Math.abs(peak)).toBeLessThan(1);
      expect(Array.from(silentDb!).every((v) => Math.abs(v - DEFAULT_LOG_MEL.floorDb) < 1e-3)).toBe(true);
    } finally {
      fe.dispose();
    }
  });

  it('refuses configs whose mel filters would see no DFT bin, and too-short waveforms', () => {
    expect(() => new LogMelFrontEnd({ ...DEFAULT_LOG_MEL, nMels: 128 })).toThrow(/covers no DFT bin/);
    expect(() => new LogMelFrontEnd({ ...DEFAULT_LOG_MEL, hop: 100 })).toThrow(/hop must divide nFft/);
    const { extractor } = loadDigitClassifier();
    try {
      expect(() => extractor.features(tf.zeros([1, 1000, 1]))).toThrow(/too short \(at least 1025/);
    } finally {
      extractor.dispose();
    }
  });
});

describe('the committed digit classifier', () => {
  it('loads with its sidecar: same sha256, small, >= 95 % on the official FSDD test split, floors recorded; no leaks', async () => {
    await expectNoTensorLeak(() => {
      const { extractor, record } = loadDigitClassifier();
      try {
        expect(record).toBeDefined();
        expect(extractor.id).toMatch(/^difflab-fsdd-digit-cnn@[0-9a-f]{12}$/);
        expect(extractor.id.endsWith(record!.sha256.slice(0, 12))).toBe(true);
        expect(statSync(DIGIT_CLASSIFIER_WEIGHTS).size).toBe(record!.bytes);
        expect(record!.bytes).toBeLessThan(1_000_000);
        expect(extractor.numClasses).toBe(10);
        expect(extractor.featureDim).toBe(record!.config.features);
        expect(record!.testExamples).toBe(300);
        expect(record!.testAccuracy).toBeGreaterThanOrEqual(0.95);
        expect(record!.floors).toBeDefined();
        expect(record!.floors!.fd.testVsTrain * 10).toBeLessThan(record!.floors!.fd.noiseVsTrain);
        expect(record!.command).toMatch(/^npm run train:digit-classifier/);
      } finally {
        extractor.dispose();
      }
    }, 'load + dispose');
  });

  it('audioPlugin.featureExtractor gives it for [L, 1] clips and says why not for others', async () => {
    const raw = readYamlFile('configs/audio-fsdd.yaml') as { data: unknown };
    const data = audioPlugin.dataSchema.parse(raw.data);
    const ex = await audioPlugin.featureExtractor!({ exampleShape: [6000, 1], numClasses: 10, data });
    expect(ex.id).toMatch(/^difflab-fsdd-digit-cnn@/);
    (ex as DigitClassifierExtractor).dispose();
    await expect(audioPlugin.featureExtractor!({ exampleShape: [512, 1], data })).rejects.toThrow(/at least 1025 samples at 8000 Hz/);
    await expect(audioPlugin.featureExtractor!({ exampleShape: [6000, 2], data })).rejects.toThrow(/clips \[L, 1\]/);
    await expect(audioPlugin.featureExtractor!({ exampleShape: [6000, 1], data }, 'inception/model.json')).rejects.toThrow(/\.safetensors/);
    // At 4 kHz the clip is resampled to 8 kHz first: 600 samples become 1200, enough.
    const at4k = await audioPlugin.featureExtractor!({ exampleShape: [600, 1], data: { ...data, sample_rate: 4000 } });
    (at4k as DigitClassifierExtractor).dispose();
  });
});

describe.skipIf(!haveFsdd)('digit classifier on real FSDD clips', () => {
  let extractor: DigitClassifierExtractor;
  let test: AudioDataSource;
  let train: AudioDataSource;
  let testF: FeatureSet;
  let recordedAccuracy: number;
  const L = 6000;

  beforeAll(async () => {
    const loaded = loadDigitClassifier();
    extractor = loaded.extractor;
    recordedAccuracy = loaded.record!.testAccuracy;
    [test, train] = [await openFsdd(FSDD, 'test', L), await openFsdd(FSDD, 'train', L)];
    testF = await expectNoTensorLeak(() => extractFeatures(extractor, centredWindows(test, L)), 'test-set features');
  });

  afterAll(() => {
    extractor?.dispose();
  });

  it('classifies all 300 official test clips at >= 95 %, as its sidecar records', () => {
    const c = 10;
    let correct = 0;
    for (let i = 0; i < testF.n; i++) {
      let best = 0;
      for (let k = 1; k < c; k++) if (testF.logProbs![i * c + k]! > testF.logProbs![i * c + best]!) best = k;
      if (best === test.labelIds![i]) correct++;
    }
    const acc = correct / testF.n;
    expect(testF.n).toBe(300);
    expect(acc).toBeGreaterThanOrEqual(0.95);
    // The sidecar's number was computed the same way on the same backend: at most one clip of float noise apart.
    expect(Math.abs(acc - recordedAccuracy)).toBeLessThanOrEqual(1 / 300 + 1e-12);
  });

  it('metrics on known inputs: test vs itself is FD 0 with sane IS/mIS/AM floors; test vs train is small next to noise and shuffled audio', async () => {
    // IS averages over *consecutive* splits, and FSDD's clips come sorted by digit: in file order
    // each of the 10 splits holds one digit and IS collapses to ~1. Score them in a random order.
    const sorted = await evaluateSamples(extractor, testF, { real: testF, heldOut: testF }, { kid: { subsets: 2 } });
    expect(sorted.is!.value).toBeLessThan(1.5);
    const mixed = selectRows(testF, new Rng(1).shuffle([...Array(testF.n).keys()]));
    // The test set scored as "samples" against itself: FD is 0, and so is the floor (the same rows, in a seeded order).
    const self = await expectNoTensorLeak(() => evaluateSamples(extractor, mixed, { real: mixed, heldOut: mixed }, { kid: { subsets: 10 } }), 'evaluateSamples');
    const trS = gaussianStats(testF.features, testF.n, testF.featureDim);
    let trace = 0;
    for (let j = 0; j < testF.featureDim; j++) trace += trS.cov[j * testF.featureDim + j]!;
    expect(Math.abs(self.fd.value)).toBeLessThan(1e-6 * trace);
    expect(Math.abs(self.fd.floor)).toBeLessThan(1e-6 * trace);
    // IS of 10 splits of 30 clips of 10 balanced digits: close to 10 when the classifier is confident and right.
    expect(self.is!.floor).toBeGreaterThan(6);
    expect(self.is!.floor).toBeLessThanOrEqual(10);
    expect(self.mis!.floor).toBeGreaterThan(self.is!.floor);
    // AM against its own marginal is the mean entropy: small for a confident classifier.
    expect(self.am!.marginalKl).toBeCloseTo(0, 10);
    expect(self.am!.floor).toBeLessThan(0.3);

    // Real vs real (a seeded 450-clip subset of the train split) against audio that is not speech.
    const trainIdx = new Rng(11).shuffle([...Array(train.size).keys()]).slice(0, 450);
    const trainF = await extractFeatures(extractor, centredWindows(train, L, trainIdx));
    const noiseF = await extractFeatures(extractor, noiseWindows(100, L, windowRms(test, L), 5));
    const shuffledF = await extractFeatures(extractor, shuffledWindows(test, L, 6));
    const d = testF.featureDim;
    const trainStats = gaussianStats(trainF.features, trainF.n, d);
    const fd = (f: FeatureSet) => frechetDistance(gaussianStats(f.features, f.n, d), trainStats).value;
    // A random 100 (the first 100 in file order would be digits 0-3 only).
    // With 100 clips in 128-d, FD carries a large small-sample bias (Chong & Forsyth 2020): the real
    // floor is ~135 here (21.8 at 300 vs 2,700, see the sidecar), non-speech ~20x that.
    const real = fd(selectRows(testF, new Rng(2).shuffle([...Array(testF.n).keys()]).slice(0, 100)));
    expect(real).toBeGreaterThan(0);
    expect(fd(noiseF)).toBeGreaterThan(10 * real);
    expect(fd(selectRows(shuffledF, [...Array(100).keys()]))).toBeGreaterThan(10 * real);
    // heldOut has more clips than the samples: the floor uses a random subset of 100 (random order, so IS is fair).
    const vsNoise = await evaluateSamples(extractor, noiseF, { real: trainF, heldOut: testF }, { kid: { subsets: 10 } });
    expect(vsNoise.fd.value).toBeGreaterThan(10 * vsNoise.fd.floor);
    expect(vsNoise.kid.value).toBeGreaterThan(vsNoise.kid.floor + 5 * (vsNoise.kid.floorStd ?? 0));
    expect(vsNoise.is!.value).toBeLessThan(3);
    // 10 splits of 10 clips: a split holds ~6.5 distinct digits on average, so real IS is ~5-6 here.
    expect(vsNoise.is!.floor).toBeGreaterThan(4);
    expect(vsNoise.am!.value).toBeGreaterThan(5 * vsNoise.am!.floor);
  });

  it('the same features on wasm and cpu; a 16 kHz copy scored with inputRate 16000 matches the 8 kHz clip', async () => {
    const idx = [0, 37, 101, 150, 222, 299];
    const clips = centredWindows(test, L, idx) as { read(s: number, c: number): tf.Tensor };
    const x = clips.read(0, idx.length);
    const host = (await x.data()) as Float32Array;
    x.dispose();
    const featuresOn = async (backend: 'wasm' | 'cpu', input: Float32Array, len: number, inputRate?: number) => {
      await useBackend(backend);
      const { extractor: e } = loadDigitClassifier(DIGIT_CLASSIFIER_WEIGHTS, inputRate ? { inputRate } : {});
      try {
        return await expectNoTensorLeak(async () => {
          const xt = tf.tensor3d(input, [idx.length, len, 1]);
          const f = e.features(xt);
          const v = (await f.data()) as Float32Array;
          tf.dispose([xt, f]);
          return v;
        }, `features on ${backend}`);
      } finally {
        e.dispose();
      }
    };
    const wasm = await featuresOn('wasm', host, L);
    const cpu = await featuresOn('cpu', host, L);
    expect(maxRelError(wasm, cpu)).toBeLessThan(1e-5);
    const up = new Float32Array(idx.length * 2 * L);
    for (let i = 0; i < idx.length; i++) up.set(resample(host.subarray(i * L, (i + 1) * L), 8000, 16000), i * 2 * L);
    const via16k = await featuresOn('wasm', up, 2 * L, 16000);
    expect(maxRelError(via16k, wasm)).toBeLessThan(0.02);
  });
});

describe('difflab eval on a tiny audio run', () => {
  it('reports FD, KID, IS, mIS and AM beside their floors with the digit classifier', async () => {
    const registry = createDifflab().plugins;
    const raw = readYamlFile('configs/audio-fsdd-demo.yaml') as Record<string, Record<string, unknown>>;
    raw['data'] = { ...raw['data'], length: 1536, limit: 16 };
    raw['model'] = { arch: 'diffwave', residual_channels: 8, layers: 2, dilation_cycle: 2, embedding_dim: 16, embedding_hidden: 16, class_conditional: true };
    raw['train'] = { ...raw['train'], steps: 2, batch_size: 4, workers: 1, log_every: 1, checkpoint_every: 2, sample_every: 0 };
    const cfg = parseRunConfig(raw, 'configs/audio-fsdd-demo.yaml (tiny)', registry) as RunConfig<AudioDataConfig, AudioModelConfig>;
    const out = mkdtempSync(join(tmpdir(), 'difflab-audio-eval-'));
    // As `difflab train` does: the config file is recorded, so `eval` resolves the relative data path against its folder.
    await trainRun({ config: cfg, plugin: audioPlugin, outDir: out, configFile: resolve('configs/audio-fsdd-demo.yaml'), log: () => {} });
    const json = join(out, 'eval.json');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'eval', out, '--n', '6', '--batch', '3', '--steps', '2', '--balanced', '--json', json], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.status, r.stderr).toBe(0);
    for (const re of [/^FD +\S+ +\(floor \S+\)$/m, /^KID +\S+ ± \S+ +\(floor /m, /^IS +\S+ ± \S+ +\(real data /m, /^mIS +\S+/m, /^AM +\S+ +\(real data \S+\)$/m, /^acc +\S+ +\(real data \S+; /m, /10 classes equally/]) {
      expect(r.stdout).toMatch(re);
    }
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      extractor: string;
      counts: { samples: number; real: number; floor: number };
      fd: { value: number; floor: number };
      is: { floor: number };
      am: { value: number; floor: number };
      balanced: boolean;
      classAccuracy: { value: number; floor: number };
    };
    // --balanced: samples 0..5 asked for digits 0..5; the accuracy and its floor are fractions.
    expect(report.balanced).toBe(true);
    for (const v of [report.classAccuracy.value, report.classAccuracy.floor]) expect(v >= 0 && v <= 1).toBe(true);
    const { extractor } = loadDigitClassifier();
    expect(report.extractor).toBe(extractor.id);
    extractor.dispose();
    expect(report.counts).toEqual({ samples: 6, real: 16, floor: 6 });
    expect([report.fd.value, report.fd.floor, report.is.floor, report.am.value, report.am.floor].every(Number.isFinite)).toBe(true);
    // Two training steps make noise, not digits: further from the real clips than held-out real clips are.
    expect(report.fd.value).toBeGreaterThan(report.fd.floor);
  });
});
