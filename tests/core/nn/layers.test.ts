import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { addBias, Conv1d, Conv2d, dense, dropout, Embedding, GroupNorm, groupNorm, LayerNorm, Linear, silu } from '../../../src/core/nn/layers.js';
import { ParamStore, type Scope } from '../../../src/core/nn/module.js';
import { Rng } from '../../../src/core/random.js';
import { maxRelError } from '../../helpers/tensors.js';

let store: ParamStore;
let scope: Scope;
beforeAll(async () => {
  await useBackend('wasm');
  store = new ParamStore('layers_test');
  scope = store.scope(new Rng(3));
});
afterAll(() => store.dispose());

const data = (t: tf.Tensor): number[] => Array.from(t.dataSync());

/** Plain-JS NHWC convolution with per-side padding: the reference. */
function naiveConv2d(
  x: number[], [b, h, w, ci]: number[],
  k: number[], [kh, kw, , co]: number[],
  [sh, sw]: number[], [dh, dw]: number[], [pt, pl]: number[], [oh, ow]: number[],
): number[] {
  const out = new Array<number>(b! * oh! * ow! * co!).fill(0);
  for (let n = 0; n < b!; n++)
    for (let i = 0; i < oh!; i++)
      for (let j = 0; j < ow!; j++)
        for (let o = 0; o < co!; o++) {
          let s = 0;
          for (let a = 0; a < kh!; a++)
            for (let c = 0; c < kw!; c++) {
              const y = i * sh! + a * dh! - pt!;
              const xx = j * sw! + c * dw! - pl!;
              if (y < 0 || y >= h! || xx < 0 || xx >= w!) continue;
              for (let q = 0; q < ci!; q++) s += x[((n * h! + y) * w! + xx) * ci! + q]! * k[((a * kw! + c) * ci! + q) * co! + o]!;
            }
          out[((n * oh! + i) * ow! + j) * co! + o] = s;
        }
  return out;
}

describe('Linear', () => {
  it('computes x W + b on any leading shape', () => {
    const lin = new Linear(scope.child('lin'), 3, 2);
    const x = tf.tensor3d([[[1, 2, 3]], [[-1, 0, 0.5]]]); // [2, 1, 3]
    const w = data(lin.weight);
    const b = data(lin.bias!);
    const y = lin.apply(x);
    expect(y.shape).toEqual([2, 1, 2]);
    const xs = data(x);
    const expected: number[] = [];
    for (let r = 0; r < 2; r++)
      for (let o = 0; o < 2; o++) expected.push(b[o]! + [0, 1, 2].reduce((s, i) => s + xs[r * 3 + i]! * w[i * 2 + o]!, 0));
    expect(maxRelError(data(y), expected)).toBeLessThan(1e-6);
    // Zero init is exactly zero.
    const z = new Linear(scope.child('lin0'), 3, 2, { init: 'zeros' });
    expect(data(z.apply(x)).every((v) => v === 0)).toBe(true);
    tf.dispose([x, y]);
  });
});

describe('dense and addBias (hand-written gradients)', () => {
  it('equal tfjs autodiff of matMul + add', () => {
    const rng = new Rng(21);
    const x = rng.normalTensor([6, 4]) as tf.Tensor2D;
    const w = rng.normalTensor([4, 3]) as tf.Tensor2D;
    const b = rng.normalTensor([3]) as tf.Tensor1D;
    const dy = rng.normalTensor([6, 3]);
    const f = (y: tf.Tensor) => tf.sum(tf.mul(y, dy));
    const ours = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => f(dense(a as tf.Tensor2D, c as tf.Tensor2D, d as tf.Tensor1D)))([x, w, b]);
    const ref = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => f(tf.add(tf.matMul(a as tf.Tensor2D, c as tf.Tensor2D), d)))([x, w, b]);
    for (let i = 0; i < 3; i++) expect(maxRelError(data(ours[i]!), data(ref[i]!))).toBeLessThan(1e-6);
    const noBias = tf.grads((a: tf.Tensor, c: tf.Tensor) => f(dense(a as tf.Tensor2D, c as tf.Tensor2D)))([x, w]);
    expect(maxRelError(data(noBias[1]!), data(ref[1]!))).toBeLessThan(1e-6);
    expect(maxRelError(data(dense(x, w, b)), data(tf.add(tf.matMul(x, w), b)))).toBeLessThan(1e-6);

    const x4 = rng.normalTensor([2, 3, 5, 3]);
    const dy4 = rng.normalTensor([2, 3, 5, 3]);
    const g1 = tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(addBias(a, c), dy4)))([x4, b]);
    const g2 = tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(tf.add(a, c), dy4)))([x4, b]);
    for (let i = 0; i < 2; i++) expect(maxRelError(data(g1[i]!), data(g2[i]!))).toBeLessThan(1e-6);
    tf.dispose([x, w, b, dy, x4, dy4, ...ours, ...ref, ...noBias, ...g1, ...g2]);
  });
});

describe('Conv2d', () => {
  const cases = [
    { name: '3x3 same', opts: { kernel: 3 }, pads: null },
    { name: '3x3 stride 2, pad 1 (PyTorch-style down-sampling)', opts: { kernel: 3, stride: 2, padding: 1 }, pads: [1, 1] },
    { name: '3x3 dilation 2, explicit pads', opts: { kernel: 3, dilation: 2, padding: [[2, 1], [0, 2]] as const }, pads: [2, 0] },
    { name: '1x1 valid', opts: { kernel: 1, padding: 'valid' as const }, pads: [0, 0] },
  ];
  cases.forEach((c, idx) => {
    it(`matches a direct loop: ${c.name}`, () => {
      const conv = new Conv2d(scope.child(`conv${idx}`), 2, 3, c.opts);
      const xShape = [2, 7, 6, 2];
      const x = new Rng(idx).normalTensor(xShape);
      const y = conv.apply(x);
      const [kh, kw] = conv.kernel;
      const [dh, dw] = conv.dilation;
      // 'same' with stride 1: pad (k_eff - 1) / 2 before.
      const pads = c.pads ?? [Math.floor(((kh - 1) * dh) / 2), Math.floor(((kw - 1) * dw) / 2)];
      const ref = naiveConv2d(data(x), xShape, data(conv.weight), conv.weight.shape, conv.stride, conv.dilation, pads, y.shape.slice(1, 3));
      const bias = data(conv.bias!);
      const expected = ref.map((v, i) => v + bias[i % 3]!);
      expect(maxRelError(data(y), expected)).toBeLessThan(1e-5);
      if (c.name.startsWith('3x3 stride 2')) expect(y.shape).toEqual([2, 4, 3, 3]); // floor((7+2-3)/2)+1, floor((6+2-3)/2)+1
      tf.dispose([x, y]);
    });
  });
});

describe('Conv1d', () => {
  it('dilated same and causal convolutions match a direct loop', () => {
    for (const [i, padding] of (['same', 'causal'] as const).entries()) {
      const conv = new Conv1d(scope.child(`c1d${i}`), 2, 3, { kernel: 3, dilation: 2, padding });
      const x = new Rng(10 + i).normalTensor([2, 9, 2]);
      const y = conv.apply(x);
      expect(y.shape).toEqual([2, 9, 3]);
      const left = padding === 'same' ? 2 : 4;
      const ref = naiveConv2d(data(x), [2, 1, 9, 2], data(conv.weight), [1, 3, 2, 3], [1, 1], [1, 2], [0, left], [1, 9]);
      const bias = data(conv.bias!);
      expect(maxRelError(data(y), ref.map((v, j) => v + bias[j % 3]!))).toBeLessThan(1e-5);
      if (padding === 'causal') {
        // Output t depends on inputs <= t only: changing the last step changes only the last output.
        const x2 = tf.concat([tf.slice(x, [0, 0, 0], [2, 8, 2]), tf.ones([2, 1, 2])], 1);
        const y2 = conv.apply(x2);
        const d1 = data(y);
        const d2 = data(y2);
        for (let j = 0; j < d1.length; j++) if (Math.floor(j / 3) % 9 !== 8) expect(d2[j]).toBeCloseTo(d1[j]!, 6);
        tf.dispose([x2, y2]);
      }
      tf.dispose([x, y]);
    }
  });
});

describe('Conv1d gradients on wasm (difflab dilation-aware kernels) equal cpu', () => {
  it('dilations 1, 2, 4; same and causal padding', async () => {
    const run = async (backend: 'wasm' | 'cpu') => {
      await useBackend(backend);
      const st = new ParamStore('c1d_grad');
      const sc = st.scope(new Rng(30));
      const layers = [1, 2, 4].flatMap((d) => (['same', 'causal'] as const).map((p) => new Conv1d(sc.child(`d${d}${p}`), 3, 3, { kernel: 3, dilation: d, padding: p })));
      const rng = new Rng(31);
      const x = rng.normalTensor([2, 16, 3]);
      const w = rng.normalTensor([2, 16, 3]);
      const { value, grads } = tf.variableGrads(() => {
        let h: tf.Tensor = x;
        for (const l of layers) h = tf.tanh(l.apply(h));
        return tf.sum(tf.mul(h, w)) as tf.Scalar;
      }, st.variables);
      const out = st.variables.map((v) => Float32Array.from(data(grads[v.name]!)));
      tf.dispose([x, w, value, ...Object.values(grads)]);
      st.dispose();
      return out;
    };
    const a = await run('wasm');
    const b = await run('cpu');
    await useBackend('wasm');
    a.forEach((g, i) => expect(maxRelError(g, b[i]!)).toBeLessThan(1e-4));
    expect(a.every((g) => g.some((v) => v !== 0))).toBe(true);
  });
});

/** GroupNorm written the obvious way, differentiated by tfjs autodiff. */
function referenceGroupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number): tf.Tensor {
  const b = x.shape[0]!;
  const c = x.shape[x.rank - 1]!;
  const r = tf.reshape(x, [b, -1, groups, c / groups]);
  const { mean, variance } = tf.moments(r, [1, 3], true);
  const y = tf.reshape(tf.div(tf.sub(r, mean), tf.sqrt(tf.add(variance, eps))), x.shape);
  return tf.add(tf.mul(y, gamma), beta);
}

describe('GroupNorm', () => {
  it('normalizes each (example, group) to mean 0 and variance 1', () => {
    const gn = new GroupNorm(scope.child('gn_stats'), 2, 6);
    const x = tf.add(tf.mul(new Rng(4).normalTensor([3, 4, 5, 6]), 3), 2);
    const y = gn.apply(x);
    const v = data(y);
    for (let n = 0; n < 3; n++)
      for (let g = 0; g < 2; g++) {
        const vals: number[] = [];
        for (let p = 0; p < 20; p++) for (let k = 0; k < 3; k++) vals.push(v[(n * 20 + p) * 6 + g * 3 + k]!);
        const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
        const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length;
        expect(Math.abs(mean)).toBeLessThan(1e-5);
        expect(variance).toBeCloseTo(1 - 1e-5 / 9, 3); // var/(var+eps) with var ~ 9
      }
    tf.dispose([x, y]);
  });

  it('output and hand-derived gradients equal autodiff of the textbook formula', () => {
    for (const [groups, shape] of [[2, [2, 3, 4, 6]], [4, [3, 5, 4]], [3, [2, 2, 2, 3]]] as const) {
      const c = shape[shape.length - 1]!;
      const gn = new GroupNorm(scope.child(`gn_${groups}_${shape.length}`), groups, c);
      const rng = new Rng(groups);
      gn.gamma.assign(tf.add(rng.normalTensor([c]), 1));
      gn.beta.assign(rng.normalTensor([c]));
      const x = tf.add(rng.normalTensor([...shape]), 0.5);
      const w = rng.normalTensor([...shape]); // a random linear loss
      const loss = (f: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
        tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), w)))([x, gn.gamma, gn.beta]);
      const ours = loss((a, g, b) => groupNorm(a, g, b, groups));
      const ref = loss((a, g, b) => referenceGroupNorm(a, g, b, groups, 1e-5));
      for (let i = 0; i < 3; i++) expect(maxRelError(data(ours[i]!), data(ref[i]!))).toBeLessThan(1e-4);
      expect(maxRelError(data(gn.apply(x)), data(referenceGroupNorm(x, gn.gamma, gn.beta, groups, 1e-5)))).toBeLessThan(1e-5);
      tf.dispose([x, w, ...ours, ...ref]);
    }
  });
});

describe('GroupNorm (continued)', () => {
  it('is exact for inputs whose mean is far larger than their spread', () => {
    const gn = new GroupNorm(scope.child('gn_offset'), 1, 2);
    const x = tf.add(tf.mul(new Rng(9).normalTensor([1, 50, 2]), 0.01), 1000);
    const ref = referenceGroupNorm(tf.sub(x, 1000), gn.gamma, gn.beta, 1, 1e-5);
    expect(maxRelError(data(gn.apply(x)), data(ref))).toBeLessThan(2e-2);
    tf.dispose([x, ref]);
  });
});

describe('LayerNorm', () => {
  it('normalizes the last axis, then scales and shifts', () => {
    const ln = new LayerNorm(scope.child('ln'), 4);
    ln.gamma!.assign(tf.tensor1d([1, 2, 3, 4]));
    ln.beta!.assign(tf.tensor1d([0, 1, 0, -1]));
    const x = tf.tensor2d([[1, 2, 3, 4], [-2, 0, 2, 8]]);
    const y = data(ln.apply(x));
    const xs = [[1, 2, 3, 4], [-2, 0, 2, 8]];
    xs.forEach((row, r) => {
      const mean = row.reduce((a, b) => a + b, 0) / 4;
      const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
      row.forEach((val, i) => {
        const expected = ((val - mean) / Math.sqrt(v + 1e-5)) * [1, 2, 3, 4][i]! + [0, 1, 0, -1][i]!;
        expect(y[r * 4 + i]).toBeCloseTo(expected, 5);
      });
    });
    const plain = new LayerNorm(scope.child('ln_plain'), 4, { affine: false });
    const z = data(plain.apply(x));
    for (let r = 0; r < 2; r++) {
      const row = z.slice(r * 4, r * 4 + 4);
      expect(row.reduce((a, b) => a + b, 0) / 4).toBeCloseTo(0, 6);
      expect(row.reduce((a, b) => a + b * b, 0) / 4).toBeCloseTo(1, 4);
    }
    x.dispose();
  });
});

describe('silu, Embedding, dropout', () => {
  it('silu(x) = x sigmoid(x)', () => {
    const y = data(silu(tf.tensor1d([-2, 0, 1, 3])));
    [-2, 0, 1, 3].forEach((v, i) => expect(y[i]).toBeCloseTo(v / (1 + Math.exp(-v)), 6));
  });

  it('Embedding gathers rows, and only the used rows get gradients', () => {
    const emb = new Embedding(scope.child('emb'), 4, 3);
    const ids = tf.tensor1d([3, 0, 3], 'int32');
    const table = data(emb.table);
    const y = data(emb.apply(ids));
    expect(y).toEqual([...table.slice(9, 12), ...table.slice(0, 3), ...table.slice(9, 12)]);
    const { grads, value } = tf.variableGrads(() => tf.sum(emb.apply(ids)) as tf.Scalar, [emb.table]);
    expect(data(grads[emb.table.name]!)).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2]);
    // float ids are cast
    expect(data(emb.apply(tf.tensor1d([1])))).toEqual(table.slice(3, 6));
    tf.dispose([ids, value, ...Object.values(grads)]);
  });

  it('dropout keeps E[x], is reproducible from the Rng and is the identity at rate 0', () => {
    const x = tf.ones([20000]);
    expect(dropout(x, 0, new Rng(1))).toBe(x);
    const a = data(dropout(x, 0.25, new Rng(5)));
    const b = data(dropout(x, 0.25, new Rng(5)));
    expect(a).toEqual(b);
    const zeros = a.filter((v) => v === 0).length;
    expect(zeros / a.length).toBeGreaterThan(0.23);
    expect(zeros / a.length).toBeLessThan(0.27);
    expect(a.filter((v) => v !== 0).every((v) => Math.abs(v - 4 / 3) < 1e-6)).toBe(true);
    expect(() => dropout(x, 1, new Rng(0))).toThrow(/rate/);
    x.dispose();
  });
});
