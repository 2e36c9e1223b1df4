import { describe, expect, it } from 'vitest';
import { AllReduce, PeerAbortedError, sharedBytes } from '../../src/core/parallel/all-reduce.js';
import { shardSizes } from '../../src/core/parallel/host.js';

describe('shardSizes', () => {
  it('splits contiguously, larger shards first, covering every row', () => {
    expect(shardSizes(32, 2)).toEqual([16, 16]);
    expect(shardSizes(7, 3)).toEqual([3, 2, 2]);
    expect(shardSizes(2, 3)).toEqual([1, 1, 0]);
  });
});

describe('AllReduce', () => {
  it('reduce-scatter: each rank sums its chunk of every slot, weighted, into one shared vector', () => {
    const p = 5;
    const sab = new SharedArrayBuffer(sharedBytes(3, p));
    const ranks = [0, 1, 2].map((r) => new AllReduce(sab, 3, p, r));
    ranks.forEach((ar, r) => ar.slot.set([1, 2, 3, 4, 5].map((v) => v * (r + 1))));
    const w = [0.5, 0.25, 0.25];
    for (const ar of ranks) ar.reduceChunk(w);
    // sum_k w_k (k+1) = 0.5 + 0.5 + 0.75 = 1.75
    expect(Array.from(ranks[1]?.reduced ?? [])).toEqual([1, 2, 3, 4, 5].map((v) => v * 1.75));
  });

  it('skips zero-weight replicas, whose slots may hold stale values', () => {
    const sab = new SharedArrayBuffer(sharedBytes(2, 3));
    const [a, b] = [0, 1].map((r) => new AllReduce(sab, 2, 3, r)) as [AllReduce, AllReduce];
    a.slot.set([1, 2, 3]);
    b.slot.set([NaN, NaN, NaN]);
    a.reduceChunk([1, 0]);
    b.reduceChunk([1, 0]);
    expect(Array.from(a.reduced)).toEqual([1, 2, 3]);
  });

  it('a single replica passes its barrier; an aborted one throws instead of waiting', () => {
    const solo = new AllReduce(new SharedArrayBuffer(sharedBytes(1, 1)), 1, 1, 0);
    solo.barrier();
    solo.barrier();
    const pair = new AllReduce(new SharedArrayBuffer(sharedBytes(2, 1)), 2, 1, 0);
    pair.abort();
    expect(() => pair.barrier()).toThrow(PeerAbortedError);
  });
});
