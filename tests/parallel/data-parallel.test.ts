import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { DataParallelTrainer, LocalTrainer, type HostBatch, type OptimizerSpec, type StepOptions, type Trainer } from '../../src/core/parallel/index.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';
import type { MlpOptions } from './fixtures/mlp.js';

const MODULE = fileURLToPath(new URL('./fixtures/mlp.ts', import.meta.url));
const MLP: MlpOptions = { seed: 7, inputs: 6, hidden: 16, outputs: 3 };
const ADAM: OptimizerSpec = { kind: 'adam', learningRate: 0.01 };

function batches(n: number, rows: number, seed = 123): HostBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    x: { shape: [rows, MLP.inputs], dtype: 'float32' as const, data: rng.normalArray(rows * MLP.inputs) },
    y: { shape: [rows, MLP.outputs], dtype: 'float32' as const, data: rng.normalArray(rows * MLP.outputs) },
  }));
}

async function train(t: Trainer, data: HostBatch[], opts: StepOptions[] = []): Promise<number[]> {
  const losses: number[] = [];
  for (const [i, b] of data.entries()) losses.push((await t.step(b, opts[i])).loss);
  return losses;
}

function flat(ws: { data: ArrayLike<number> }[]): Float32Array {
  return Float32Array.from(ws.flatMap((w) => Array.from(w.data)));
}

async function reference(data: HostBatch[], opt: OptimizerSpec = ADAM): Promise<{ losses: number[]; weights: Float32Array }> {
  const local = await LocalTrainer.create({ factory: { module: MODULE, exportName: 'createMlp', options: MLP }, optimizer: opt });
  try {
    const losses = await train(local, data);
    return { losses, weights: flat(await local.getWeights()) };
  } finally {
    await local.dispose();
  }
}

function dp(workers: number, extra: Partial<MlpOptions> = {}, opt: OptimizerSpec = ADAM): Promise<DataParallelTrainer> {
  return DataParallelTrainer.create({
    factory: { module: MODULE, exportName: 'createMlp', options: { ...MLP, ...extra } },
    optimizer: opt,
    workers,
  });
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-4): void {
  expect(maxRelError(a, b)).toBeLessThan(tol);
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('DataParallelTrainer (2 workers) vs in-process training', () => {
  let trainer: DataParallelTrainer;
  beforeAll(async () => {
    trainer = await dp(2);
  });
  afterAll(async () => {
    await trainer.dispose();
  });

  it('gives the same losses and weights for an even batch, and the replicas stay identical', async () => {
    const data = batches(5, 10);
    const ref = await reference(data);
    const initial = flat(await trainer.getWeights());
    const got = await expectNoTensorLeak(async () => {
      const losses = await train(trainer, data);
      return { losses, weights: flat(await trainer.getWeights()) };
    }, 'data-parallel steps');
    expect(trainer.worldSize).toBe(2);
    expectClose(got.losses, ref.losses);
    expectClose(got.weights, ref.weights);
    // The updates really were applied (equal-but-frozen would also match the reference).
    expect(maxRelError(got.weights, initial)).toBeGreaterThan(1e-3);
    // Same rows in both shards: bit-identical replicas give bit-identical shard losses.
    const rng = new Rng(5);
    const half = { x: rng.normalArray(3 * MLP.inputs), y: rng.normalArray(3 * MLP.outputs) };
    const twice = (a: Float32Array): Float32Array => Float32Array.from([...a, ...a]);
    const r = await trainer.step({
      x: { shape: [6, MLP.inputs], dtype: 'float32', data: twice(half.x) },
      y: { shape: [6, MLP.outputs], dtype: 'float32', data: twice(half.y) },
    });
    expect(r.shardRows).toEqual([3, 3]);
    expect(r.shardLosses[0]).toBe(r.shardLosses[1]);
  });

  it('resumes from a state taken in-process and matches uninterrupted training', async () => {
    const data = batches(4, 9, 99);
    const ref = await reference(data);
    const local = await LocalTrainer.create({ factory: { module: MODULE, exportName: 'createMlp', options: MLP }, optimizer: ADAM });
    await train(local, data.slice(0, 2));
    const state = await local.getState();
    await local.dispose();
    expect(state.step).toBe(2);
    expect(state.optimizer.length).toBe(1 + 2 * 4); // Adam: iterations + m and v per variable

    await trainer.setState(state);
    expect(trainer.stepCount).toBe(2);
    const losses = await train(trainer, data.slice(2));
    expectClose(losses, ref.losses.slice(2));
    expectClose(flat(await trainer.getWeights()), ref.weights);
    // And weights put in come back out unchanged.
    const w = await trainer.getWeights();
    await trainer.setWeights(state.weights);
    expect(maxRelError(flat(await trainer.getWeights()), flat(state.weights))).toBe(0);
    await expect(trainer.setWeights(w.slice(1))).rejects.toThrow(/expected 4 tensors/);
  });
});

describe('uneven and small batches', () => {
  it('weights shards by row count (7 rows over 2 workers; 2 rows over 3 workers)', async () => {
    const data = batches(3, 7, 11);
    const ref = await reference(data, { kind: 'momentum', learningRate: 0.05, momentum: 0.9 });
    const t = await dp(2, {}, { kind: 'momentum', learningRate: 0.05, momentum: 0.9 });
    try {
      const first = await t.step(data[0] as HostBatch);
      expect(first.shardRows).toEqual([4, 3]);
      const losses = [first.loss, ...(await train(t, data.slice(1)))];
      expectClose(losses, ref.losses);
      expectClose(flat(await t.getWeights()), ref.weights);
    } finally {
      await t.dispose();
    }

    const tiny = batches(2, 2, 12);
    const tinyRef = await reference(tiny);
    const t3 = await dp(3);
    try {
      const r = await t3.step(tiny[0] as HostBatch);
      expect(r.shardRows).toEqual([1, 1, 0]);
      const losses = [r.loss, ...(await train(t3, tiny.slice(1)))];
      expectClose(losses, tinyRef.losses);
      expectClose(flat(await t3.getWeights()), tinyRef.weights);
    } finally {
      await t3.dispose();
    }
  });
});

describe('step options', () => {
  it('AdamW with a learning-rate schedule and gradient clipping matches in-process training', async () => {
    const adamw: OptimizerSpec = { kind: 'adamw', learningRate: 0.02, weightDecay: 0.1 };
    const data = batches(4, 6, 21);
    const opts: StepOptions[] = [
      { learningRate: 0.02, clipGradNorm: 0.3 },
      { learningRate: 0.01, clipGradNorm: 0.3 },
      { learningRate: 0.005 },
      {},
    ];
    const local = await LocalTrainer.create({ factory: { module: MODULE, exportName: 'createMlp', options: MLP }, optimizer: adamw });
    const ref: { loss: number; gradNorm: number }[] = [];
    for (const [i, b] of data.entries()) ref.push(await local.step(b, opts[i]));
    const refWeights = flat(await local.getWeights());
    await local.dispose();
    // The clip threshold is below the actual norm, so clipping really happened.
    expect(ref[0]?.gradNorm).toBeGreaterThan(0.3);

    const t = await dp(2, {}, adamw);
    try {
      const got: { loss: number; gradNorm: number }[] = [];
      for (const [i, b] of data.entries()) got.push(await t.step(b, opts[i]));
      expectClose(got.map((r) => r.loss), ref.map((r) => r.loss));
      expectClose(got.map((r) => r.gradNorm), ref.map((r) => r.gradNorm));
      expectClose(flat(await t.getWeights()), refWeights);
      await expect(t.step(data[0] as HostBatch, { learningRate: -1 })).rejects.toThrow(/learningRate/);
    } finally {
      await t.dispose();
    }
  });
});

describe('failures', () => {
  it('surfaces an error thrown in a worker, then refuses further use', async () => {
    const t = await dp(2, { throwAt: { step: 1, rank: 1 } });
    try {
      const data = batches(2, 4);
      await t.step(data[0] as HostBatch);
      const err = await t.step(data[1] as HostBatch).then(
        () => undefined,
        (e: unknown) => e as Error & { rank?: number },
      );
      expect(err?.message).toMatch(/worker 1 failed during step 1: deliberate failure at step 1 on rank 1/);
      expect(err?.rank).toBe(1);
      await expect(t.step(data[0] as HostBatch)).rejects.toThrow(/unusable after a worker failure/);
    } finally {
      await t.dispose();
    }
  });

  it('surfaces a worker that exits mid-step instead of hanging its peer', async () => {
    const t = await dp(2, { exitAt: { step: 0, rank: 0 } });
    try {
      await expect(t.step(batches(1, 4)[0] as HostBatch)).rejects.toThrow(/worker 0 exited \(code 3\)/);
    } finally {
      await t.dispose();
    }
  });

  it('reports factory problems at create time', async () => {
    await expect(
      DataParallelTrainer.create({ factory: { module: MODULE, exportName: 'nope' }, optimizer: ADAM, workers: 2 }),
    ).rejects.toThrow(/has no function export 'nope' \(it exports: createBroken, createMlp\)/);
    await expect(
      DataParallelTrainer.create({ factory: { module: MODULE, exportName: 'createBroken' }, optimizer: ADAM, workers: 2 }),
    ).rejects.toThrow(/worker \d failed during init.*factory exploded while building/);
    await expect(
      DataParallelTrainer.create({ factory: { module: './no/such/module.ts' }, optimizer: ADAM, workers: 1 }),
    ).rejects.toThrow(/cannot import model factory module/);
  });

  it('rejects a batch whose entries disagree on the batch size, without breaking the trainer', async () => {
    const t = await dp(2);
    try {
      const b = batches(1, 4)[0] as HostBatch;
      const bad = { ...b, y: { shape: [3, MLP.outputs], dtype: 'float32' as const, data: new Float32Array(3 * MLP.outputs) } };
      await expect(t.step(bad)).rejects.toThrow(/disagree on the batch size/);
      await expect(t.step(b)).resolves.toMatchObject({ step: 0 });
    } finally {
      await t.dispose();
    }
  });
});

describe('main-thread tensors', () => {
  it('a whole data-parallel lifecycle leaks no tensors in the main thread, and accepts tf.Tensor batches', async () => {
    await expectNoTensorLeak(async () => {
      const t = await dp(2);
      const rng = new Rng(3);
      const x = rng.normalTensor([4, MLP.inputs]);
      const y = rng.normalTensor([4, MLP.outputs]);
      const r = await t.step({ x, y });
      expect(Number.isFinite(r.loss)).toBe(true);
      await t.getState();
      await t.dispose();
      tf.dispose([x, y]);
    }, 'DataParallelTrainer lifecycle');
  });

  it('in-process steps leak nothing either', async () => {
    const local = await LocalTrainer.create({ factory: { module: MODULE, exportName: 'createMlp', options: MLP }, optimizer: ADAM });
    try {
      // The first step creates the optimizer's slot variables (state, not a leak).
      const data = batches(4, 5);
      await train(local, data.slice(0, 1));
      await expectNoTensorLeak(() => train(local, data.slice(1)), 'LocalTrainer steps');
      await expectNoTensorLeak(() => local.getState(), 'LocalTrainer.getState');
    } finally {
      await local.dispose();
    }
  });
});
