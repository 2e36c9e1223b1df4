import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { abortShared, sharedBytes } from './all-reduce.js';
import { checkShapes, hostBatch, shardSizes, sliceRows } from './host.js';
import { startWorker } from './launch.js';
import type { InitResult, Reply, Request, StepReply, WireError, WorkerBackend } from './protocol.js';
import { checkStepOptions, isTypeScriptModule, resolveModuleSpecifier, validateOptimizer } from './replica.js';
import type {
  FactorySpec,
  HostBatch,
  HostTensor,
  NamedHostTensor,
  OptimizerSpec,
  StepOptions,
  StepResult,
  Trainer,
  TrainerState,
} from './types.js';

export interface DataParallelOptions {
  readonly factory: FactorySpec;
  readonly optimizer: OptimizerSpec;
  /** Replicas, one worker thread each; default os.availableParallelism(). */
  readonly workers?: number;
  /** Backend inside each worker; default 'wasm'. */
  readonly backend?: WorkerBackend;
  /** How long `dispose()` waits for a worker to free its replica before terminating it. */
  readonly closeTimeoutMs?: number;
}

/** A failure inside a worker, re-raised in the main thread. `cause` holds the worker's stack. */
export class WorkerError extends Error {
  constructor(
    message: string,
    readonly rank: number,
    readonly workerStack: string | undefined,
  ) {
    super(message, { cause: workerStack });
    this.name = 'WorkerError';
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  what: string;
}

class WorkerHandle {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Set once the thread is gone or crashed; every later request fails with it. */
  dead: Error | undefined;

  constructor(
    readonly worker: Worker,
    readonly rank: number,
    private readonly onCrash: (err: Error) => void,
  ) {
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      this.settleRef();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(wireToError(reply.error, rank, p.what));
    });
    worker.on('error', (err) => this.fail(new WorkerError(`worker ${rank} crashed: ${err.message}`, rank, err.stack)));
    worker.on('exit', (code) => this.fail(new WorkerError(`worker ${rank} exited (code ${code})`, rank, undefined)));
  }

  private fail(err: WorkerError): void {
    if (this.dead) return;
    this.dead = err;
    for (const p of this.pending.values()) p.reject(new WorkerError(`${err.message} during ${p.what}`, this.rank, err.workerStack));
    this.pending.clear();
    this.onCrash(err);
  }

  /** Keeps the process alive only while a request is in flight, so a forgotten trainer never hangs Node. */
  private settleRef(): void {
    if (this.pending.size === 0) this.worker.unref();
    else this.worker.ref();
  }

  request<T>(req: Request, what: string, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, what });
      this.settleRef();
      this.worker.postMessage({ id, ...req }, transfer);
    });
  }
}

function wireToError(e: WireError, rank: number, what: string): WorkerError {
  const err = new WorkerError(`worker ${rank} failed during ${what}: ${e.message}`, rank, e.stack);
  if (e.peerAborted) (err as WorkerError & { peerAborted?: boolean }).peerAborted = true;
  return err;
}

/** The root cause among replicas' failures: a replica's own error beats "a peer failed". */
function rootCause(errors: unknown[]): Error {
  const own = errors.find((e) => !(e as { peerAborted?: boolean }).peerAborted);
  return (own ?? errors[0]) as Error;
}

/**
 * Data-parallel training on worker threads: each step splits the global batch
 * into contiguous shards (one per worker, sizes differing by at most one
 * row), every worker computes its shard's gradient, the gradients are
 * averaged through shared memory weighted by shard size, and every worker
 * applies the same optimizer update, so the replicas stay bit-identical and
 * the result equals one process training on the whole batch (up to float
 * summation order).
 *
 * Replicated updates were chosen over "one owner updates, then broadcasts
 * weights": both move one parameter-sized vector per step through shared
 * memory, but broadcasting adds a third barrier and a weight copy into every
 * replica, while the replicated optimizer math is a few ms per step (see the
 * applyMs timing in StepResult).
 */
export class DataParallelTrainer implements Trainer {
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | undefined;
  private disposed = false;
  private steps = 0;
  private sab: SharedArrayBuffer | undefined;

  private constructor(
    private readonly handles: WorkerHandle[],
    readonly variables: readonly { readonly name: string; readonly shape: readonly number[] }[],
    readonly paramCount: number,
    private readonly closeTimeoutMs: number,
  ) {}

  get worldSize(): number {
    return this.handles.length;
  }

  get stepCount(): number {
    return this.steps;
  }

  static async create(options: DataParallelOptions): Promise<DataParallelTrainer> {
    const n = options.workers ?? availableParallelism();
    if (!Number.isInteger(n) || n < 1) throw new Error(`workers must be a positive integer, got ${n}`);
    validateOptimizer(options.optimizer);
    const backend = options.backend ?? 'wasm';
    // Resolve here so relative paths mean the caller's cwd, and the JSON round trip rejects non-JSON options early.
    const factory: FactorySpec = {
      module: resolveModuleSpecifier(options.factory.module),
      exportName: options.factory.exportName ?? 'default',
      options: options.factory.options === undefined ? undefined : JSON.parse(JSON.stringify(options.factory.options)),
    };
    const ts = isTypeScriptModule(factory.module);
    let trainer: DataParallelTrainer | undefined;
    const handles: WorkerHandle[] = [];
    const onCrash = (err: Error): void => {
      trainer?.markBroken(err);
    };
    try {
      for (let rank = 0; rank < n; rank++) {
        handles.push(new WorkerHandle(startWorker(ts, { name: `difflab-replica-${rank}` }), rank, onCrash));
      }
      const inits = await settleAll(
        handles.map((h) =>
          h.request<InitResult>(
            { type: 'init', rank: h.rank, worldSize: n, backend, factory, optimizer: options.optimizer },
            'init (building the model)',
          ),
        ),
      );
      const first = inits[0] as InitResult;
      inits.forEach((r, k) => {
        const same =
          r.variables.length === first.variables.length &&
          r.variables.every((v, i) => sameShape(v.shape, (first.variables[i] as { shape: number[] }).shape));
        if (!same) {
          throw new Error(
            `replica ${k} built a different model than replica 0; the factory must build the same architecture from the same options`,
          );
        }
      });
      trainer = new DataParallelTrainer(handles, first.variables, first.paramCount, options.closeTimeoutMs ?? 5000);
      const sab = new SharedArrayBuffer(sharedBytes(n, first.paramCount));
      trainer.sab = sab;
      await settleAll(handles.map((h) => h.request({ type: 'attach', sab }, 'attach')));
      // Start from replica 0's weights so factories with unseeded init still give identical replicas.
      if (n > 1) {
        const weights = await (handles[0] as WorkerHandle).request<NamedHostTensor[]>({ type: 'getWeights' }, 'getWeights');
        await settleAll(handles.slice(1).map((h) => h.request({ type: 'setWeights', weights }, 'initial weight sync')));
      }
      return trainer;
    } catch (err) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw err;
    }
  }

  private markBroken(err: Error): void {
    if (this.disposed) return;
    this.broken ??= err;
    // A replica that died mid-step would leave its peers blocked at a barrier.
    if (this.sab) abortShared(this.sab);
  }

  /** Serializes public calls: the workers handle one request at a time and steps must not interleave. */
  private run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(
      () => {
        if (this.disposed) throw new Error(`DataParallelTrainer.${what}: the trainer was disposed`);
        if (this.broken) {
          throw new Error(
            `DataParallelTrainer.${what}: the trainer is unusable after a worker failure (${this.broken.message}); ` +
              'dispose it and create a new one (resume with setState)',
            { cause: this.broken },
          );
        }
        return fn();
      },
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async all<T>(what: string, make: (h: WorkerHandle) => Promise<T>): Promise<T[]> {
    try {
      return await settleAll(this.handles.map(make));
    } catch (err) {
      this.markBroken(err as Error);
      throw err;
    }
  }

  step(batch: HostBatch, options: StepOptions = {}): Promise<StepResult> {
    return this.run('step', async () => {
      checkStepOptions(options);
      const { rows, entries } = hostBatch(batch);
      const sizes = shardSizes(rows, this.worldSize);
      const step = this.steps;
      let offset = 0;
      const offsets = sizes.map((s) => {
        const o = offset;
        offset += s;
        return o;
      });
      const replies = await this.all('step', (h) => {
        const o = offsets[h.rank] as number;
        const count = sizes[h.rank] as number;
        const shard = entries.map(([name, t]) => [name, sliceRows(t, o, count)] as [string, HostTensor]);
        return h.request<StepReply>(
          {
            type: 'step',
            step,
            rowOffset: o,
            shardRows: sizes,
            shard,
            learningRate: options.learningRate,
            clipGradNorm: options.clipGradNorm,
          },
          `step ${step}`,
          shard.map(([, t]) => t.data.buffer as ArrayBuffer),
        );
      });
      // Weighted in float64, in rank order: the global-batch mean.
      const loss = replies.reduce((acc, r, k) => acc + ((sizes[k] as number) / rows) * r.loss, 0);
      this.steps = step + 1;
      return {
        step,
        loss,
        shardLosses: replies.map((r) => r.loss),
        shardRows: sizes,
        gradNorm: (replies[0] as StepReply).gradNorm,
        timings: replies.map((r) => r.timings),
      };
    });
  }

  getWeights(): Promise<NamedHostTensor[]> {
    return this.run('getWeights', () =>
      (this.handles[0] as WorkerHandle).request<NamedHostTensor[]>({ type: 'getWeights' }, 'getWeights'),
    );
  }

  setWeights(weights: readonly HostTensor[]): Promise<void> {
    return this.run('setWeights', async () => {
      // Checked here so a bad input is a plain error, not a broken trainer.
      checkShapes('setWeights', this.variables, weights);
      await this.all('setWeights', (h) => h.request({ type: 'setWeights', weights }, 'setWeights'));
    });
  }

  getState(): Promise<TrainerState> {
    return this.run('getState', async () => {
      const h0 = this.handles[0] as WorkerHandle;
      const weights = await h0.request<NamedHostTensor[]>({ type: 'getWeights' }, 'getState');
      const optimizer = await h0.request<NamedHostTensor[]>({ type: 'getOptimizerState' }, 'getState');
      return { step: this.steps, weights, optimizer };
    });
  }

  setState(state: TrainerState): Promise<void> {
    return this.run('setState', async () => {
      checkShapes('setState', this.variables, state.weights);
      await this.all('setState', (h) => h.request({ type: 'setWeights', weights: state.weights }, 'setState'));
      await this.all('setState', (h) =>
        h.request({ type: 'setOptimizerState', state: state.optimizer }, 'setState (optimizer)'),
      );
      this.steps = state.step;
    });
  }

  /** Frees every replica and terminates the worker threads. Safe to call more than once, and after a failure. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.queue;
    this.disposed = true;
    if (this.sab) abortShared(this.sab);
    await Promise.all(
      this.handles.map(async (h) => {
        if (!h.dead) {
          const closed = h.request({ type: 'close' }, 'close').catch(() => undefined);
          await Promise.race([closed, new Promise((r) => setTimeout(r, this.closeTimeoutMs).unref())]);
        }
        await h.worker.terminate();
      }),
    );
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Like Promise.all, but waits for every promise before rejecting, with the root-cause error. */
async function settleAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
  if (failed.length > 0) throw rootCause(failed);
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
