import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { MultiHeadSelfAttention } from '../../../src/core/nn/attention.js';
import { ParamStore, type Scope } from '../../../src/core/nn/module.js';
import { Rng } from '../../../src/core/random.js';
import { maxRelError } from '../../helpers/tensors.js';

let store: ParamStore;
let scope: Scope;
beforeAll(async () => {
  await useBackend('wasm');
  store = new ParamStore('attn_test');
  scope = store.scope(new Rng(11));
});
afterAll(() => store.dispose());

const data = (t: tf.Tensor): number[] => Array.from(t.dataSync());

/** Self-attention computed head by head with loops, from the layer's weights. */
function naiveAttention(x: number[], b: number, l: number, d: number, heads: number, attn: MultiHeadSelfAttention): number[] {
  const wqkv = data(attn.qkv.weight); // [d, 3d]
  const bqkv = data(attn.qkv.bias!);
  const wo = data(attn.out.weight);
  const bo = data(attn.out.bias!);
  const dh = d / heads;
  const out: number[] = [];
  for (let n = 0; n < b; n++) {
    // projections
    const proj = (pos: number, col: number): number => {
      let s = bqkv[col]!;
      for (let i = 0; i < d; i++) s += x[(n * l + pos) * d + i]! * wqkv[i * 3 * d + col]!;
      return s;
    };
    const merged: number[][] = Array.from({ length: l }, () => new Array<number>(d).fill(0));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < l; i++) {
        const scores: number[] = [];
        for (let j = 0; j < l; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += proj(i, h * dh + e) * proj(j, d + h * dh + e);
          scores.push(s / Math.sqrt(dh));
        }
        const mx = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - mx));
        const z = ex.reduce((a, c) => a + c, 0);
        for (let e = 0; e < dh; e++) {
          let acc = 0;
          for (let j = 0; j < l; j++) acc += (ex[j]! / z) * proj(j, 2 * d + h * dh + e);
          merged[i]![h * dh + e] = acc;
        }
      }
    }
    for (let i = 0; i < l; i++)
      for (let o = 0; o < d; o++) {
        let s = bo[o]!;
        for (let k = 0; k < d; k++) s += merged[i]![k]! * wo[k * d + o]!;
        out.push(s);
      }
  }
  return out;
}

describe('MultiHeadSelfAttention', () => {
  for (const heads of [1, 2, 4]) {
    it(`equals a naive per-head computation (${heads} head(s))`, () => {
      const attn = new MultiHeadSelfAttention(scope.child(`a${heads}`), 8, heads);
      const x = new Rng(heads).normalTensor([2, 5, 8]);
      const y = attn.apply(x);
      expect(y.shape).toEqual([2, 5, 8]);
      expect(maxRelError(data(y), naiveAttention(data(x), 2, 5, 8, heads, attn))).toBeLessThan(1e-5);
      x.dispose();
      y.dispose();
    });
  }

  it('zero-initialized output projection gives zeros; bad head counts are rejected', () => {
    const attn = new MultiHeadSelfAttention(scope.child('z'), 4, 2, { outInit: 'zeros' });
    const x = new Rng(0).normalTensor([1, 3, 4]);
    expect(data(attn.apply(x)).every((v) => v === 0)).toBe(true);
    expect(() => new MultiHeadSelfAttention(scope.child('bad'), 6, 4)).toThrow(/heads/);
    x.dispose();
  });
});
