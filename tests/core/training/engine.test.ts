import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createDifflab,
  generate,
  latestCheckpointDir,
  loadCheckpoint,
  loadModel,
  parseRunConfig,
  trainRun,
  useBackend,
  type RunConfig,
} from '../../../src/index.js';
import { toyPlugin, type ToyData } from '../../fixtures/toy-plugin/index.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

const registry = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;

function config(over: { train?: Record<string, unknown>; model?: Record<string, unknown>; diffusion?: Record<string, unknown> } = {}): RunConfig {
  return parseRunConfig(
    {
      modality: 'toy-points',
      seed: 3,
      data: { points: 96 },
      model: { hidden: 16, ...over.model },
      diffusion: over.diffusion ?? { schedule: { type: 'edm' }, parametrization: { type: 'edm' }, objective: { noise: { type: 'log-normal' }, weighting: { type: 'edm' } } },
      train: { steps: 12, batch_size: 16, lr: 0.01, workers: 1, log_every: 4, checkpoint_every: 5, warmup_steps: 3, ...over.train },
      sample: { sampler: 'heun', steps: 8 },
    },
    'test-config',
    registry,
  );
}

const quiet = () => {};
const tmp = () => mkdtempSync(join(tmpdir(), 'difflab-train-'));

async function lossesOf(cfg: RunConfig, outDir: string, extra: { maxSteps?: number; resume?: boolean } = {}): Promise<number[]> {
  const losses: number[] = [];
  await trainRun({ config: cfg, plugin: toyPlugin, outDir, log: quiet, onStep: (m) => losses.push(m.loss), ...extra });
  return losses;
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('training engine', () => {
  it('trains, logs metrics, writes checkpoints atomically and lowers the loss', async () => {
    const out = tmp();
    const losses = await expectNoTensorLeak(() => lossesOf(config({ train: { steps: 40, checkpoint_every: 10 } }), out), 'trainRun');
    expect(losses).toHaveLength(40);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(tail).toBeLessThan(head);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toHaveLength(10);
    expect(metrics[0]).toMatchObject({ step: 4 });
    expect(Object.keys(metrics[0])).toEqual(expect.arrayContaining(['loss', 'lr', 'grad_norm', 'it_per_sec', 'ema_decay']));
    // keep_checkpoints = 2: the two newest remain, no temporary folders.
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(['latest.json', 'step-00000030', 'step-00000040']);
    const ckpt = loadCheckpoint(latestCheckpointDir(out)!);
    expect(ckpt.meta.step).toBe(40);
    expect(ckpt.state.weights.map((w) => w.name)).toEqual(['w1', 'b1', 'w2', 'b2'].map((n) => expect.stringMatching(new RegExp(`^toy\\d+/${n}$`))));
    expect(ckpt.ema).toBeDefined();
    expect(ckpt.state.optimizer.length).toBeGreaterThan(0);
  });

  it('--resume reproduces the losses of an uninterrupted run exactly', async () => {
    const full = await lossesOf(config(), tmp());
    const out = tmp();
    const first = await lossesOf(config(), out, { maxSteps: 5 });
    const rest = await lossesOf(config(), out, { resume: true });
    expect(first).toEqual(full.slice(0, 5));
    expect(rest).toEqual(full.slice(5));
  });

  it('refuses to overwrite a run without --resume', async () => {
    const out = tmp();
    await lossesOf(config({ train: { steps: 5 } }), out);
    await expect(lossesOf(config(), out)).rejects.toThrow('already holds checkpoints; pass --resume');
  });

  it('stops on a NaN loss naming the step and the last good checkpoint', async () => {
    const out = tmp();
    const err = await lossesOf(config({ model: { nan_after_calls: 7 }, train: { checkpoint_every: 5 } }), out).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^loss became NaN at step 8; stopped\. The last good checkpoint is .*step-00000005$/);
    expect(loadCheckpoint(latestCheckpointDir(out)!).meta.step).toBe(5);
  });

  it('the sample hook gets the example info, and the writer its WriteContext', async () => {
    const out = tmp();
    const cfg = config({ train: { steps: 4, sample_every: 2 } });
    const written: string[] = [];
    await trainRun({
      config: cfg,
      plugin: toyPlugin,
      outDir: out,
      log: quiet,
      onSample: async (step, weights, info) => {
        expect(info).toEqual({ exampleShape: [2], numClasses: 2 });
        const model = loadModel(toyPlugin, cfg, info, weights);
        const r = generate(model, { n: 3, seed: 1, sample: { steps: 2 } });
        written.push(...(await toyPlugin.writeSamples!(r.x, join(out, `step-${step}.json`), { data: cfg.data as ToyData, info })));
        r.x.dispose();
        model.dispose();
      },
    });
    expect(written).toEqual([join(out, 'step-2.json'), join(out, 'step-4.json')]);
    const file = JSON.parse(readFileSync(written[1]!, 'utf8')) as { points: number[][]; centres: number[][]; exampleShape: number[]; numClasses: number };
    expect(file.points).toHaveLength(3);
    expect(file.centres).toEqual([[-2, 0], [2, 0]]);
    expect([file.exampleShape, file.numClasses]).toEqual([[2], 2]);
  });

  it('data-parallel workers give the losses of in-process training', async () => {
    const local = await lossesOf(config({ train: { steps: 6 } }), tmp());
    const parallel = await lossesOf(config({ train: { steps: 6, workers: 2 } }), tmp());
    expect(parallel).toHaveLength(6);
    parallel.forEach((l, i) => expect(l).toBeCloseTo(local[i]!, 4));
  });

  it('samples a trained run with any sampler, leak-free', async () => {
    const out = tmp();
    const cfg = config({ train: { steps: 400, lr: 0.01, checkpoint_every: 400 } });
    await lossesOf(cfg, out);
    const ckpt = loadCheckpoint(latestCheckpointDir(out)!);
    const model = loadModel(toyPlugin, cfg, { exampleShape: [2], numClasses: 2 }, ckpt.ema!);
    for (const sampler of ['heun', 'dpmpp-2m', 'euler-ancestral'] as const) {
      const xs = await expectNoTensorLeak(async () => {
        const r = generate(model, { n: 200, seed: 1, sample: { sampler, steps: 16 } });
        const d = await r.x.data();
        r.x.dispose();
        return d;
      }, sampler);
      // The data are two clusters at x = -2 and x = +2: most samples should land near one of them.
      let near = 0;
      for (let i = 0; i < 200; i++) if (Math.abs(Math.abs(xs[2 * i]!) - 2) < 1) near++;
      expect(near / 200).toBeGreaterThan(0.7);
    }
    model.dispose();
    expect(existsSync(join(out, 'run.json'))).toBe(true);
    expect(tf.getBackend()).toBe('wasm');
  });
});
