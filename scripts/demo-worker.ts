/**
 * A sampling worker of `npm run demo` (scripts/demo.ts): the wasm backend
 * runs one thread per process, so the demo samples its digits in one worker
 * thread per core. Each worker rebuilds the model from the run's checkpoint
 * (its state.json holds the full config) and runs its share of the tasks;
 * every task has its own seed, so the samples do not depend on how the tasks
 * are split between workers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { join } from 'node:path';
import { createDifflab, generate, loadCheckpoint, loadModel, parseRunConfig, selectBackend } from '../src/index.js';

export interface SampleTask {
  readonly key: string;
  readonly n: number;
  readonly seed: number;
  readonly classId?: number;
}

export interface SampleJob {
  readonly ckptDir: string;
  readonly backend: string;
  readonly steps?: number;
  readonly tasks: readonly SampleTask[];
}

export type WorkerMessage =
  | { readonly type: 'step'; readonly key: string; readonly i: number; readonly total: number; readonly sigma: number }
  | { readonly type: 'done'; readonly key: string; readonly data: Float32Array; readonly shape: number[]; readonly nfe: number; readonly sampler: string }
  | { readonly type: 'error'; readonly message: string };

const port = parentPort;
if (port) {
  const job = workerData as SampleJob;
  try {
    await selectBackend(job.backend);
    const difflab = createDifflab();
    const ckpt = loadCheckpoint(job.ckptDir);
    const config = parseRunConfig(ckpt.meta.config, join(job.ckptDir, 'state.json'), difflab.plugins);
    const plugin = difflab.plugins.get(config.modality);
    const info = { exampleShape: ckpt.meta.exampleShape, ...(ckpt.meta.numClasses !== undefined ? { numClasses: ckpt.meta.numClasses } : {}) };
    const model = loadModel(plugin, config, info, ckpt.ema ?? ckpt.state.weights);
    try {
      for (const t of job.tasks) {
        const r = generate(model, {
          n: t.n,
          seed: t.seed,
          ...(t.classId !== undefined ? { classId: t.classId } : {}),
          ...(job.steps !== undefined ? { sample: { steps: job.steps } } : {}),
          onStep: (i) => port.postMessage({ type: 'step', key: t.key, i: i.i, total: i.total, sigma: i.sigma } satisfies WorkerMessage),
        });
        const data = Float32Array.from(await r.x.data());
        const shape = [...r.x.shape];
        r.x.dispose();
        port.postMessage({ type: 'done', key: t.key, data, shape, nfe: r.nfe, sampler: r.sampler } satisfies WorkerMessage, [data.buffer]);
      }
    } finally {
      model.dispose();
    }
  } catch (err) {
    port.postMessage({ type: 'error', message: (err instanceof Error ? err.message : String(err)).split('\n')[0]! } satisfies WorkerMessage);
  }
}
