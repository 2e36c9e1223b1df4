import type * as tf from '@tensorflow/tfjs';

/**
 * The contract between difflab's trainers and any model: a "model factory"
 * module exports a function that builds the trainable variables and a loss.
 * Trainers only ever see this, so an image U-Net, an audio DiffWave or a text
 * transformer trains in-process or data-parallel without change.
 *
 * The factory runs after the backend is active (inside each worker for the
 * data-parallel trainer). Its options must be JSON (they cross a thread).
 */
export interface TrainableModel {
  /** Every trainable variable, in a fixed order (weights are exchanged by position). */
  readonly variables: readonly tf.Variable[];
  /**
   * Mean loss over the rows of `batch` (a scalar). Must be a mean, not a sum:
   * trainers weight shards by row count, so a shard mean times its share of
   * the global batch reproduces the global mean. Randomness (noise, sigma)
   * should come in the batch, drawn by the data pipeline, or be derived from
   * `ctx.step` and `ctx.rowOffset + i`, so that it does not depend on how the
   * batch was split.
   */
  loss(batch: Batch, ctx: StepContext): tf.Scalar;
  /** Frees anything besides `variables` (which the trainer disposes). */
  dispose?(): void;
}

export type ModelFactory<O = unknown> = (options: O) => TrainableModel | Promise<TrainableModel>;

/** Named tensors sharing dimension 0 (the batch dimension). */
export type Batch = Record<string, tf.Tensor>;

export interface StepContext {
  /** 0-based index of the step being computed. */
  readonly step: number;
  /** Index of this shard's first row in the global batch. */
  readonly rowOffset: number;
  /** Rows in the global batch. */
  readonly globalBatchSize: number;
  readonly rank: number;
  readonly worldSize: number;
}

/** Where to find a factory: imported by every worker, so it must be a module, not a closure. */
export interface FactorySpec {
  /**
   * A module specifier: a file path (absolute, or relative to process.cwd()),
   * a file: URL, or a package specifier. `.ts` modules work when `tsx` is
   * installed (workers register its loader).
   */
  readonly module: string;
  /** The export to call; default `default`. */
  readonly exportName?: string;
  /** JSON passed to the factory. */
  readonly options?: unknown;
}

export type OptimizerSpec =
  | { readonly kind: 'sgd'; readonly learningRate: number }
  | { readonly kind: 'momentum'; readonly learningRate: number; readonly momentum: number; readonly nesterov?: boolean }
  | {
      readonly kind: 'adam';
      readonly learningRate: number;
      readonly beta1?: number;
      readonly beta2?: number;
      readonly epsilon?: number;
    }
  | {
      /** Decoupled weight decay as torch.optim.AdamW (difflab's AdamW in core/training/optim). */
      readonly kind: 'adamw';
      readonly learningRate: number;
      readonly weightDecay?: number;
      readonly beta1?: number;
      readonly beta2?: number;
      readonly epsilon?: number;
    }
  | {
      readonly kind: 'rmsprop';
      readonly learningRate: number;
      readonly decay?: number;
      readonly momentum?: number;
      readonly epsilon?: number;
    };

export type HostDType = 'float32' | 'int32';

/** A tensor as plain host data (what crosses threads and goes into checkpoints). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly dtype: HostDType;
  readonly data: Float32Array | Int32Array;
}

export interface NamedHostTensor extends HostTensor {
  readonly name: string;
}

/** A batch given to a trainer: host data or tensors (tensors are read, never disposed). */
export type HostBatch = Record<string, HostTensor | tf.Tensor>;

/** Everything needed to resume training exactly. */
export interface TrainerState {
  /** Steps taken so far. */
  readonly step: number;
  /** Model variables, in the factory's order. */
  readonly weights: NamedHostTensor[];
  /** Optimizer slots (tfjs order: iterations, then per-variable slots); empty before the first step. */
  readonly optimizer: NamedHostTensor[];
}

/** Per-step knobs, identical for every replica. */
export interface StepOptions {
  /** Learning rate for this and later steps (for schedules); default: keep the current one. */
  readonly learningRate?: number;
  /** Clip the averaged gradient to this global L2 norm (as torch.nn.utils.clip_grad_norm_). */
  readonly clipGradNorm?: number;
}

export interface StepTimings {
  /** Forward + backward on this replica's shard. */
  readonly computeMs: number;
  /** Waiting for the slowest replica (load imbalance; 0 in-process). */
  readonly waitMs: number;
  /** Gradient all-reduce (0 in-process). */
  readonly reduceMs: number;
  /** Optimizer update. */
  readonly applyMs: number;
}

export interface StepResult {
  /** 0-based index of the step just taken. */
  readonly step: number;
  /** Global-batch mean loss (shard losses weighted by row count). */
  readonly loss: number;
  /** Per replica, in rank order. */
  readonly shardLosses: readonly number[];
  readonly shardRows: readonly number[];
  /** Global L2 norm of the averaged gradient, before clipping. */
  readonly gradNorm: number;
  /** Per replica, in rank order. */
  readonly timings: readonly StepTimings[];
}

/** What both trainers (in-process and data-parallel) offer. */
export interface Trainer {
  /** How many replicas compute each step. */
  readonly worldSize: number;
  /** Variable names and shapes, in the factory's order. */
  readonly variables: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Steps taken so far. */
  readonly stepCount: number;
  /** One optimizer step on the global batch. */
  step(batch: HostBatch, options?: StepOptions): Promise<StepResult>;
  getWeights(): Promise<NamedHostTensor[]>;
  /** Replaces the weights (by position; shapes must match). Optimizer state is kept. */
  setWeights(weights: readonly HostTensor[]): Promise<void>;
  getState(): Promise<TrainerState>;
  setState(state: TrainerState): Promise<void>;
  /** Frees everything; for the data-parallel trainer, terminates the workers. Idempotent. */
  dispose(): Promise<void>;
}
