import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../backend/select.js';
import { fromHost, hostBatch } from './host.js';
import { Replica, checkStepOptions, clipScale } from './replica.js';
import type {
  Batch,
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

export interface LocalTrainerOptions {
  readonly factory: FactorySpec;
  readonly optimizer: OptimizerSpec;
  /** Activates this backend first; default: whatever backend is active. */
  readonly backend?: BackendName;
}

/**
 * The same Trainer on the current thread: one replica, no workers. It is the
 * reference the data-parallel trainer is tested against, the one-core row of
 * the benchmark, and the right choice on backends that already use every
 * core (native TensorFlow).
 */
export class LocalTrainer implements Trainer {
  readonly worldSize = 1;
  private steps = 0;
  private disposed = false;

  private constructor(private readonly replica: Replica) {}

  static async create(options: LocalTrainerOptions): Promise<LocalTrainer> {
    if (options.backend) await useBackend(options.backend);
    return new LocalTrainer(await Replica.create(options.factory, options.optimizer));
  }

  get variables(): readonly { readonly name: string; readonly shape: readonly number[] }[] {
    return this.replica.describe();
  }

  get stepCount(): number {
    return this.steps;
  }

  private check(what: string): void {
    if (this.disposed) throw new Error(`LocalTrainer.${what}: the trainer was disposed`);
  }

  async step(batch: HostBatch, options: StepOptions = {}): Promise<StepResult> {
    this.check('step');
    checkStepOptions(options);
    const { rows, entries } = hostBatch(batch);
    const step = this.steps;
    const tensors: Batch = {};
    for (const [name, h] of entries) tensors[name] = fromHost(h);
    try {
      const t0 = performance.now();
      const { loss, grads } = this.replica.gradients(tensors, {
        step,
        rowOffset: 0,
        globalBatchSize: rows,
        rank: 0,
        worldSize: 1,
      });
      let lossValue: number;
      try {
        lossValue = (await loss.data())[0] as number;
        const t1 = performance.now();
        const normT = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))));
        const gradNorm = (await normT.data())[0] as number;
        normT.dispose();
        const scale = clipScale(gradNorm, options.clipGradNorm);
        if (scale !== 1) {
          const clipped = grads.map((g) => tf.mul(g, scale));
          tf.dispose(grads.splice(0, grads.length, ...clipped));
        }
        if (options.learningRate !== undefined) this.replica.setLearningRate(options.learningRate);
        this.replica.apply(grads);
        // Wait for the update so applyMs means something on asynchronous backends.
        await this.replica.variables[this.replica.variables.length - 1]?.data();
        const t2 = performance.now();
        this.steps = step + 1;
        return {
          step,
          loss: lossValue,
          shardLosses: [lossValue],
          shardRows: [rows],
          gradNorm,
          timings: [{ computeMs: t1 - t0, waitMs: 0, reduceMs: 0, applyMs: t2 - t1 }],
        };
      } finally {
        tf.dispose([loss, ...grads]);
      }
    } finally {
      tf.dispose(Object.values(tensors));
    }
  }

  async getWeights(): Promise<NamedHostTensor[]> {
    this.check('getWeights');
    return this.replica.getWeights();
  }

  async setWeights(weights: readonly HostTensor[]): Promise<void> {
    this.check('setWeights');
    this.replica.setWeights(weights);
  }

  async getState(): Promise<TrainerState> {
    this.check('getState');
    return { step: this.steps, weights: this.replica.getWeights(), optimizer: await this.replica.getOptimizerState() };
  }

  async setState(state: TrainerState): Promise<void> {
    this.check('setState');
    this.replica.setWeights(state.weights);
    await this.replica.setOptimizerState(state.optimizer);
    this.steps = state.step;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.replica.dispose();
  }
}
