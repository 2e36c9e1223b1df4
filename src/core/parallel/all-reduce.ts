/**
 * Gradient averaging between worker threads through one SharedArrayBuffer,
 * so gradients never travel by postMessage.
 *
 * Layout: a control block (Int32: barrier count, barrier generation, abort
 * flag), then one float32 slot of `paramCount` values per replica, then the
 * reduced vector. A step is: every replica writes its raw gradient into its
 * own slot; barrier; replica k sums chunk k of every slot (weighted by shard
 * size, in rank order, in float64) into the reduced vector (a reduce-scatter
 * that splits the summing work); barrier; every replica reads the whole
 * reduced vector. The sum order is fixed, so all replicas see bit-identical
 * gradients and stay bit-identical after the same optimizer update.
 */

const COUNT = 0;
const GEN = 1;
const ABORT = 2;
/** Control block size in bytes (a cache line, so slots start aligned). */
const CONTROL_BYTES = 64;

/** Raised in a replica whose peer failed (or whose trainer was disposed) mid-step. */
export class PeerAbortedError extends Error {
  constructor() {
    super('aborted: another replica failed during this step');
    this.name = 'PeerAbortedError';
  }
}

export function sharedBytes(worldSize: number, paramCount: number): number {
  return CONTROL_BYTES + 4 * paramCount * (worldSize + 1);
}

/** Sets the abort flag and wakes every replica waiting at a barrier (callable from any thread). */
export function abortShared(sab: SharedArrayBuffer): void {
  const ctl = new Int32Array(sab, 0, CONTROL_BYTES / 4);
  Atomics.store(ctl, ABORT, 1);
  Atomics.notify(ctl, GEN);
}

export class AllReduce {
  private readonly ctl: Int32Array;
  private readonly slots: Float32Array[];
  /** The reduced (weighted-sum) gradient, valid between the second barrier and the next step. */
  readonly reduced: Float32Array;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly worldSize: number,
    readonly paramCount: number,
    readonly rank: number,
  ) {
    if (sab.byteLength < sharedBytes(worldSize, paramCount)) {
      throw new Error(`shared buffer holds ${sab.byteLength} bytes, need ${sharedBytes(worldSize, paramCount)}`);
    }
    this.ctl = new Int32Array(sab, 0, CONTROL_BYTES / 4);
    this.slots = Array.from(
      { length: worldSize },
      (_, k) => new Float32Array(sab, CONTROL_BYTES + 4 * paramCount * k, paramCount),
    );
    this.reduced = new Float32Array(sab, CONTROL_BYTES + 4 * paramCount * worldSize, paramCount);
  }

  /** This replica's slot, to write its gradient into. */
  get slot(): Float32Array {
    return this.slots[this.rank] as Float32Array;
  }

  get aborted(): boolean {
    return Atomics.load(this.ctl, ABORT) !== 0;
  }

  abort(): void {
    abortShared(this.sab);
  }

  /**
   * Blocks until all replicas arrive (generation-counting barrier). Waits in
   * short slices so an abort raised without a notify still ends the wait.
   */
  barrier(): void {
    const ctl = this.ctl;
    if (Atomics.load(ctl, ABORT) !== 0) throw new PeerAbortedError();
    const gen = Atomics.load(ctl, GEN);
    if (Atomics.add(ctl, COUNT, 1) === this.worldSize - 1) {
      Atomics.store(ctl, COUNT, 0);
      Atomics.add(ctl, GEN, 1);
      Atomics.notify(ctl, GEN);
      return;
    }
    for (;;) {
      if (Atomics.load(ctl, ABORT) !== 0) throw new PeerAbortedError();
      if (Atomics.load(ctl, GEN) !== gen) return;
      Atomics.wait(ctl, GEN, gen, 200);
    }
  }

  /** Reduces this replica's chunk: reduced[i] = sum_k weights[k] * slot_k[i]. */
  reduceChunk(weights: readonly number[]): void {
    const chunk = Math.ceil(this.paramCount / this.worldSize);
    const start = Math.min(this.paramCount, chunk * this.rank);
    const end = Math.min(this.paramCount, start + chunk);
    const out = this.reduced;
    // Replicas with no rows (weight 0) are skipped: their slot may hold stale data.
    const active = this.slots.filter((_, k) => (weights[k] as number) !== 0);
    const w = weights.filter((x) => x !== 0);
    for (let i = start; i < end; i++) {
      let acc = 0;
      for (let k = 0; k < active.length; k++) acc += (w[k] as number) * ((active[k] as Float32Array)[i] as number);
      out[i] = acc;
    }
  }
}
