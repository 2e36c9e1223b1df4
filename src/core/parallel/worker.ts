/**
 * Worker-thread entry of the data-parallel trainer: holds one replica and
 * answers the main thread's requests in order. A step blocks this thread at
 * two barriers (see all-reduce.ts); nothing else runs here, so blocking is
 * what we want.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort } from 'node:worker_threads';
import { useBackend } from '../backend/select.js';
import { AllReduce, PeerAbortedError } from './all-reduce.js';
import { fromHost } from './host.js';
import type { InitResult, Reply, Request, StepReply, WireError } from './protocol.js';
import { Replica, clipScale } from './replica.js';
import type { Batch } from './types.js';

const port = parentPort;
if (!port) throw new Error('src/core/parallel/worker is a worker_threads entry; start it through DataParallelTrainer');

let replica: Replica | undefined;
let reduce: AllReduce | undefined;
let rank = 0;
let worldSize = 1;
/** Float offsets of each variable inside the flat gradient vector. */
let offsets: number[] = [];

function ready(): Replica {
  if (!replica) throw new Error('worker used before init');
  return replica;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.type) {
    case 'init': {
      rank = req.rank;
      worldSize = req.worldSize;
      await useBackend(req.backend);
      replica = await Replica.create(req.factory, req.optimizer);
      let o = 0;
      offsets = replica.variables.map((v) => {
        const at = o;
        o += v.size;
        return at;
      });
      const result: InitResult = { variables: replica.describe(), paramCount: o, backend: tf.getBackend() };
      return result;
    }
    case 'attach':
      reduce = new AllReduce(req.sab, worldSize, ready().paramCount, rank);
      return null;
    case 'step':
      return step(req);
    case 'getWeights':
      return ready().getWeights();
    case 'setWeights':
      ready().setWeights(req.weights);
      return null;
    case 'getOptimizerState':
      return ready().getOptimizerState();
    case 'setOptimizerState':
      await ready().setOptimizerState(req.state);
      return null;
    case 'close':
      replica?.dispose();
      replica = undefined;
      return null;
  }
}

function step(req: Extract<Request, { type: 'step' }>): StepReply {
  const r = ready();
  if (!reduce) throw new Error('worker stepped before attach');
  const ar = reduce;
  const rows = req.shardRows[rank] as number;
  const globalRows = req.shardRows.reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  let loss = 0;
  try {
    if (rows > 0) {
      const batch: Batch = {};
      for (const [name, h] of req.shard) batch[name] = fromHost(h);
      try {
        const { loss: l, grads } = r.gradients(batch, {
          step: req.step,
          rowOffset: req.rowOffset,
          globalBatchSize: globalRows,
          rank,
          worldSize,
        });
        loss = l.dataSync()[0] as number;
        const slot = ar.slot;
        grads.forEach((g, i) => slot.set(g.dataSync(), offsets[i]));
        tf.dispose([l, ...grads]);
      } finally {
        tf.dispose(Object.values(batch));
      }
    }
    const t1 = performance.now();
    ar.barrier();
    const t2 = performance.now();
    ar.reduceChunk(req.shardRows.map((n) => n / globalRows));
    ar.barrier();
    const t3 = performance.now();
    // Every replica computes the same norm from the same vector, in the same order.
    const red = ar.reduced;
    let sq = 0;
    for (let i = 0; i < red.length; i++) sq += (red[i] as number) * (red[i] as number);
    const gradNorm = Math.sqrt(sq);
    const scale = clipScale(gradNorm, req.clipGradNorm);
    if (req.learningRate !== undefined) r.setLearningRate(req.learningRate);
    // Copies out of shared memory: the cpu backend would otherwise alias the buffer.
    const grads = r.variables.map((v, i) => {
      const g = red.slice(offsets[i], (offsets[i] as number) + v.size);
      if (scale !== 1) for (let j = 0; j < g.length; j++) g[j] = (g[j] as number) * scale;
      return tf.tensor(g, v.shape, 'float32');
    });
    try {
      r.apply(grads);
    } finally {
      tf.dispose(grads);
    }
    const t4 = performance.now();
    return { loss, gradNorm, timings: { computeMs: t1 - t0, waitMs: t2 - t1, reduceMs: t3 - t2, applyMs: t4 - t3 } };
  } catch (err) {
    // Wake peers blocked at a barrier so the whole step fails instead of hanging.
    ar.abort();
    throw err;
  }
}

function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, stack: e.stack, peerAborted: e instanceof PeerAbortedError };
}

/** Buffers of host tensors in a result, moved rather than copied to the main thread. */
function transferables(result: unknown): ArrayBuffer[] {
  if (!Array.isArray(result)) return [];
  return result.flatMap((t: { data?: unknown }) =>
    ArrayBuffer.isView(t?.data) && t.data.buffer instanceof ArrayBuffer ? [t.data.buffer] : [],
  );
}

// Requests are handled strictly one at a time, in arrival order.
let chain: Promise<void> = Promise.resolve();
port.on('message', (msg: { id: number } & Request) => {
  chain = chain.then(async () => {
    let reply: Reply;
    try {
      reply = { id: msg.id, ok: true, result: await handle(msg) };
    } catch (err) {
      reply = { id: msg.id, ok: false, error: toWire(err) };
    }
    port.postMessage(reply, reply.ok ? transferables(reply.result) : []);
    if (msg.type === 'close') port.close();
  });
});
