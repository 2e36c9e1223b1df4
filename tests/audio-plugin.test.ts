import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createDifflab,
  generate,
  latestCheckpointDir,
  loadCheckpoint,
  loadModel,
  loadRunConfig,
  parseRunConfig,
  readYamlFile,
  Rng,
  trainRun,
  useBackend,
  type RunConfig,
} from '../src/index.js';
import { audioPlugin, readWavFile, type AudioDataConfig, type AudioModelConfig } from '../src/plugins/audio/index.js';
import { expectNoTensorLeak } from './helpers/tensors.js';

const registry = createDifflab().plugins;
const SLICE = '../datasets/fsdd-slice/recordings';
const FSDD = '../shared/datasets/fsdd/recordings';

beforeAll(async () => {
  await useBackend('wasm');
});

const tmp = () => mkdtempSync(join(tmpdir(), 'difflab-audio-plugin-'));
const quiet = () => {};

/** The demo config, shrunk to a network and clip length that train in seconds (same data, split and diffusion). */
function tinyDemo(over: { train?: Record<string, unknown> } = {}): RunConfig<AudioDataConfig, AudioModelConfig> {
  const raw = readYamlFile('configs/audio-fsdd-demo.yaml') as Record<string, Record<string, unknown>>;
  raw['data'] = { ...raw['data'], sample_rate: 4000, length: 512, limit: 24 };
  raw['model'] = { arch: 'diffwave', residual_channels: 8, layers: 3, dilation_cycle: 3, embedding_dim: 16, embedding_hidden: 16, class_conditional: true };
  raw['train'] = { ...raw['train'], steps: 4, batch_size: 4, workers: 1, log_every: 2, checkpoint_every: 2, sample_every: 0, ...over.train };
  return parseRunConfig(raw, 'configs/audio-fsdd-demo.yaml (tiny)', registry) as RunConfig<AudioDataConfig, AudioModelConfig>;
}

describe('audio plugin', () => {
  it('is registered, and both shipped configs load with the real config loader', () => {
    expect(registry.ids()).toEqual(expect.arrayContaining(['audio', 'image']));
    expect(registry.get('audio')).toBe(audioPlugin);
    const full = loadRunConfig('configs/audio-fsdd.yaml', registry) as RunConfig<AudioDataConfig, AudioModelConfig>;
    expect(full.modality).toBe('audio');
    expect(full.data).toMatchObject({
      path: FSDD,
      sample_rate: 8000,
      length: 4800,
      pattern: '{digit}_{speaker}_{index}.wav',
      labels: { field: 'digit' },
      split: { by: 'index', test_range: [0, 4] },
    });
    expect(full.model).toMatchObject({ arch: 'diffwave', class_conditional: true });
    expect(full.train.cond_dropout).toBeGreaterThan(0);
    expect(full.diffusion.parametrization.type).toBe('edm');
    const demo = loadRunConfig('configs/audio-fsdd-demo.yaml', registry) as RunConfig<AudioDataConfig, AudioModelConfig>;
    expect(demo.data.path).toBe(SLICE);
    // The demo is the full run's network at half the rate on one speaker (docs/audio.md).
    expect(demo.model.layers).toBeLessThanOrEqual(full.model.layers);
    expect(demo.data.sample_rate).toBeLessThan(full.data.sample_rate);
    expect(demo.data.length).toBeLessThan(full.data.length);
  });

  it('a bad audio key is a one-line error naming the file and key path', () => {
    const raw = readYamlFile('configs/audio-fsdd-demo.yaml') as Record<string, Record<string, unknown>>;
    const bad = { ...raw, data: { ...raw['data'], channels: 'stereo' }, model: { ...raw['model'], layer: 3 } };
    const err = (() => {
      try {
        parseRunConfig(bad, 'demo.yaml', registry);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(err).toMatch(/^demo\.yaml: data\.channels: Invalid option/);
    expect(err.includes('\n')).toBe(false);
    expect(() => parseRunConfig({ ...raw, model: { ...raw['model'], layer: 3 } }, 'demo.yaml', registry)).toThrow('demo.yaml: model.layer: unknown key');
  });

  it('the demo slice: one speaker, 450 train and 50 test clips of 10 digits, with its license', async () => {
    const demo = loadRunConfig('configs/audio-fsdd-demo.yaml', registry) as RunConfig<AudioDataConfig, AudioModelConfig>;
    const ctx = (split: 'train' | 'test') => ({ split, baseDir: 'configs', rng: new Rng(0), log: quiet });
    const train = await audioPlugin.openData(demo.data, ctx('train'));
    const test = await audioPlugin.openData(demo.data, ctx('test'));
    expect([train.size, test.size, train.numClasses]).toEqual([450, 50, 10]);
    expect(train.exampleShape).toEqual([demo.data.length, 1]);
    expect(existsSync('datasets/fsdd-slice/LICENSE')).toBe(true);
  });

  it('trains a tiny demo in-process, checkpoints, samples a digit with guidance, writes WAV + spectrogram PNGs; no leaks', async () => {
    const cfg = tinyDemo();
    const out = tmp();
    const logs: string[] = [];
    const losses: number[] = [];
    await expectNoTensorLeak(
      () => trainRun({ config: cfg, plugin: audioPlugin, outDir: out, baseDir: 'configs', log: (l) => logs.push(l), onStep: (m) => losses.push(m.loss) }),
      'trainRun',
    );
    expect(losses).toHaveLength(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    // The slice is 8 kHz: resampled to 4 kHz, said once.
    expect(logs.filter((l) => l.includes('resampled'))).toEqual(['audio data: resampled 24 of 24 file(s) to 4000 Hz (from 8000 Hz) with a Kaiser-windowed sinc filter']);
    const ckpt = loadCheckpoint(latestCheckpointDir(out)!);
    expect(ckpt.meta.step).toBe(4);
    expect(ckpt.meta.exampleShape).toEqual([512, 1]);
    expect(ckpt.meta.numClasses).toBe(10);

    const model = loadModel(audioPlugin, cfg, { exampleShape: ckpt.meta.exampleShape, numClasses: 10 }, ckpt.ema!);
    const frames: { sigma: number; x: tf.Tensor; denoised: tf.Tensor }[] = [];
    const files = await expectNoTensorLeak(async () => {
      const r = generate(model, {
        n: 3,
        seed: 1,
        classId: 3,
        sample: { sampler: 'heun', steps: 3, guidance: 2 },
        onStep: (i) => frames.push({ sigma: i.sigma, x: tf.keep(i.x.slice([0], [1]).squeeze([0])), denoised: tf.keep(i.denoised.slice([0], [1]).squeeze([0])) }),
      });
      expect(r.x.shape).toEqual([3, 512, 1]);
      const ctx = { data: cfg.data, info: { exampleShape: ckpt.meta.exampleShape, numClasses: 10 } };
      const written = await audioPlugin.writeSamples!(r.x, join(out, 'samples', 'three.png'), ctx);
      const traj = await audioPlugin.writeTrajectory!(frames, join(out, 'trajectory.png'), ctx);
      r.x.dispose();
      tf.dispose(frames.flatMap((f) => [f.x, f.denoised]));
      return [...written, ...traj];
    }, 'sampling and writing');
    // Per-sample classes (difflab eval --balanced): sample i follows its own label, guided, and
    // with the same noise equals the sample of a single-class call.
    const mixed = await expectNoTensorLeak(async () => {
      const sample = { sampler: 'heun', steps: 3, guidance: 2 } as const;
      const a = generate(model, { n: 3, seed: 1, classIds: [0, 3, 7], sample });
      const b = generate(model, { n: 3, seed: 1, classId: 3, sample });
      const c = generate(model, { n: 3, seed: 1, classId: 7, sample });
      const [ra, rb, rc] = [a.x, b.x, c.x].map((t) => t.arraySync() as number[][][]);
      tf.dispose([a.x, b.x, c.x]);
      return { ra: ra!, rb: rb!, rc: rc! };
    }, 'per-sample classes');
    const maxDiff = (p: number[][], q: number[][]) => Math.max(...p.map((row, i) => Math.abs(row[0]! - q[i]![0]!)));
    const same = Math.max(maxDiff(mixed.ra[1]!, mixed.rb[1]!), maxDiff(mixed.ra[2]!, mixed.rc[2]!));
    expect(same).toBeLessThan(1e-6);
    // ...and the classes matter: the same noise under class 3 and class 7 differs (by ~1e-4 after 4 steps).
    expect(maxDiff(mixed.rb[2]!, mixed.rc[2]!)).toBeGreaterThan(1e-5);
    expect(() => generate(model, { n: 2, seed: 1, classIds: [0] })).toThrow(/1 classIds for n = 2/);
    expect(() => generate(model, { n: 1, seed: 1, classIds: [10] })).toThrow(/0\.\.9, got 10/);
    model.dispose();
    expect(files).toEqual([
      join(out, 'samples', 'three.png'),
      ...[0, 1, 2].map((i) => join(out, 'samples', `three-${i}.wav`)),
      join(out, 'trajectory.png'),
    ]);
    for (const wav of files.slice(1, 4)) {
      const w = readWavFile(wav);
      // Written at the rate of the run's data config (the WriteContext), not a default.
      expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([4000, 1, 512, 16]);
    }
    // 2 x 2 grid of 65-bin x 17-frame spectrograms (512 samples at 4 kHz: a 32 ms window of 128, hop 32) with 2-pixel borders.
    const grid = await sharp(files[0]!).metadata();
    expect([grid.width, grid.height]).toEqual([2 * 17 + 3 * 2, 2 * 65 + 3 * 2]);
    // Heun with 3 steps: 3 frames, two rows (noisy x, denoised).
    expect(frames).toHaveLength(3);
    const strip = await sharp(files[4]!).metadata();
    expect([strip.width, strip.height]).toEqual([3 * 17 + 4 * 2, 2 * 65 + 3 * 2]);
  });

  it('data-parallel workers import the plugin from its source and reproduce the in-process losses', async () => {
    const run = async (workers: number) => {
      const losses: number[] = [];
      const r = await trainRun({ config: tinyDemo({ train: { steps: 3, workers } }), plugin: audioPlugin, outDir: tmp(), baseDir: 'configs', log: quiet, onStep: (m) => losses.push(m.loss) });
      expect(r.workers).toBe(workers);
      return losses;
    };
    const local = await run(1);
    const parallel = await run(2);
    expect(parallel).toHaveLength(3);
    parallel.forEach((l, i) => expect(l).toBeCloseTo(local[i]!, 4));
  });
});
