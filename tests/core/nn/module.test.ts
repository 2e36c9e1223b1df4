import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { kaimingUniform } from '../../../src/core/nn/init.js';
import { Linear } from '../../../src/core/nn/layers.js';
import { FourierFeatures } from '../../../src/core/nn/embeddings.js';
import { ParamStore, relativeName } from '../../../src/core/nn/module.js';
import { Rng } from '../../../src/core/random.js';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('ParamStore / Scope', () => {
  it('names variables by stable paths under a unique root, in creation order', () => {
    const a = new ParamStore('net');
    const sa = a.scope(new Rng(1));
    new Linear(sa.child('enc').child(0), 3, 4);
    new FourierFeatures(sa.child('emb'), 4);
    new Linear(sa.child('head'), 4, 2, { bias: false });
    expect(a.root).toBe('net');
    expect(a.variables.map((v) => v.name)).toEqual(['net/enc.0.weight', 'net/enc.0.bias', 'net/head.weight']);
    expect(a.buffers.map((v) => relativeName(v))).toEqual(['emb.freqs']);
    expect(a.buffers[0]!.trainable).toBe(false);
    expect(a.named().map((e) => e.path)).toEqual(['enc.0.weight', 'enc.0.bias', 'head.weight', 'emb.freqs']);
    expect(a.parameterCount()).toBe(3 * 4 + 4 + 4 * 2);

    // A second live network of the same name gets a suffix but the same paths.
    const b = new ParamStore('net');
    new Linear(b.scope(new Rng(1)).child('enc').child(0), 3, 4);
    expect(b.root).toBe('net_1');
    expect(b.named().map((e) => e.path)).toEqual(['enc.0.weight', 'enc.0.bias']);
    expect(relativeName(b.variables[0]!)).toBe('enc.0.weight');

    a.dispose();
    b.dispose();
    expect(a.variables.every((v) => v.isDisposed)).toBe(true);
    // Once disposed, the name is free again.
    const c = new ParamStore('net');
    expect(c.root).toBe('net');
    c.dispose();
  });

  it('rejects duplicate paths and bad names, and frees every tensor on dispose', () => {
    const before = tf.memory().numTensors;
    const s = new ParamStore('dup');
    const scope = s.scope(new Rng(0));
    scope.param('w', tf.zeros([2]));
    expect(() => scope.param('w', tf.zeros([2]))).toThrow(/two variables at path 'w'/);
    expect(() => scope.child('a.b')).toThrow(/letters, digits/);
    expect(() => scope.param('a/b', tf.zeros([1]))).toThrow(/letters, digits/);
    expect(() => new ParamStore('x/y')).toThrow(/letters, digits/);
    s.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the same seed gives the same weights; initializers have PyTorch bounds', async () => {
    const w1 = kaimingUniform(new Rng(7), [400, 50], 400);
    const w2 = kaimingUniform(new Rng(7), [400, 50], 400);
    const d1 = await w1.data();
    const d2 = await w2.data();
    expect(Array.from(d1)).toEqual(Array.from(d2));
    // kaiming_uniform(a = sqrt 5): bound = 1/sqrt(fan_in) = 0.05, std = bound/sqrt(3).
    let max = 0;
    let ss = 0;
    for (const v of d1) {
      max = Math.max(max, Math.abs(v));
      ss += v * v;
    }
    expect(max).toBeLessThanOrEqual(0.05);
    expect(max).toBeGreaterThan(0.0499);
    expect(Math.sqrt(ss / d1.length)).toBeCloseTo(0.05 / Math.sqrt(3), 3);
    tf.dispose([w1, w2]);
  });
});
