import type { FactorySpec, HostTensor, NamedHostTensor, OptimizerSpec, StepTimings } from './types.js';

/** Backends a worker can run (the ones that need no native addon or GPU per thread). */
export type WorkerBackend = 'wasm' | 'cpu';

export type Request =
  | {
      readonly type: 'init';
      readonly rank: number;
      readonly worldSize: number;
      readonly backend: WorkerBackend;
      readonly factory: FactorySpec;
      readonly optimizer: OptimizerSpec;
    }
  | { readonly type: 'attach'; readonly sab: SharedArrayBuffer }
  | {
      readonly type: 'step';
      readonly step: number;
      readonly rowOffset: number;
      readonly shardRows: readonly number[];
      readonly shard: readonly [string, HostTensor][];
      readonly learningRate?: number;
      readonly clipGradNorm?: number;
    }
  | { readonly type: 'getWeights' }
  | { readonly type: 'setWeights'; readonly weights: readonly HostTensor[] }
  | { readonly type: 'getOptimizerState' }
  | { readonly type: 'setOptimizerState'; readonly state: readonly NamedHostTensor[] }
  | { readonly type: 'close' };

export interface InitResult {
  readonly variables: { name: string; shape: number[] }[];
  readonly paramCount: number;
  readonly backend: string;
}

export interface StepReply {
  readonly loss: number;
  readonly gradNorm: number;
  readonly timings: StepTimings;
}

export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  /** Set when this replica only stopped because a peer failed. */
  readonly peerAborted: boolean;
}

export type Envelope<T> = { readonly id: number } & T;
export type Reply = Envelope<{ ok: true; result: unknown } | { ok: false; error: WireError }>;
