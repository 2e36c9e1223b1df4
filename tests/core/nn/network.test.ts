import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { FourierFeatures } from '../../../src/core/nn/embeddings.js';
import { Linear } from '../../../src/core/nn/layers.js';
import { conditioningClasses, Network } from '../../../src/core/nn/network.js';
import { Rng } from '../../../src/core/random.js';

beforeAll(async () => {
  await useBackend('wasm');
});

class Tiny extends Network {
  readonly fc: Linear;
  readonly emb: FourierFeatures;
  constructor(seed: number, fail = false) {
    super('tiny');
    try {
      const root = this.scope(new Rng(seed));
      this.fc = new Linear(root.child('fc'), 3, 2);
      this.emb = new FourierFeatures(root.child('emb'), 4);
      if (fail) throw new Error('boom');
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }
}

describe('Network', () => {
  it('exposes its store: variables, buffers, named paths, parameter count, training mode, dispose', () => {
    const before = tf.memory().numTensors;
    const net = new Tiny(1);
    expect(net.store.root).toBe('tiny');
    expect(net.variables).toEqual(net.store.variables);
    expect(net.variables.map((v) => v.name)).toEqual(['tiny/fc.weight', 'tiny/fc.bias']);
    expect(net.buffers).toEqual(net.store.buffers);
    expect(net.named().map((e) => e.path)).toEqual(['fc.weight', 'fc.bias', 'emb.freqs']);
    expect(net.parameterCount()).toBe(3 * 2 + 2);
    expect(net.training).toBe(true);
    net.setTraining(false);
    expect(net.training).toBe(false);
    net.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // The root name is free again once disposed, also after a failed construction.
    expect(() => new Tiny(1, true)).toThrow(/boom/);
    const again = new Tiny(2);
    expect(again.store.root).toBe('tiny');
    again.dispose();
  });

  it('conditioningClasses: undefined unless conditional, else a positive integer or the given error', () => {
    expect(conditioningClasses(false, undefined, 'no')).toBeUndefined();
    expect(conditioningClasses(false, 10, 'no')).toBeUndefined();
    expect(conditioningClasses(true, 10, 'no')).toBe(10);
    expect(() => conditioningClasses(true, undefined, 'net: needs labels')).toThrow(/^net: needs labels$/);
    expect(() => conditioningClasses(true, 0, 'x')).toThrow('x');
    expect(() => conditioningClasses(true, 2.5, 'x')).toThrow('x');
  });
});
