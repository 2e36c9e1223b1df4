import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../random.js';
import { defaultBias, kaimingUniform, normalInit, type LayerInit } from './init.js';
import type { Scope } from './module.js';

/**
 * Modality-agnostic layers. Everything is channels-last: images [B,H,W,C],
 * waveforms [B,T,C], token sequences [B,L,E]. Weights are laid out so the
 * forward pass is a plain `matMul` / `conv2d` (no transposes), which is what
 * the wasm backend runs fast (see /work/shared/ENGINE-FACTS.md).
 *
 * Layers never dispose their inputs; callers run them inside tf.tidy.
 */

/**
 * y = x W (+ b) for x [N, in], W [in, out], b [out], with a hand-written
 * gradient: dx = dy W^T and dW = x^T dy are computed as plain matMuls of
 * explicitly transposed operands, and db = 1^T dy as a matMul with a row of
 * ones. tfjs's own MatMul gradient uses matMul's transposeA / transposeB
 * flags, which the wasm backend runs ~8x slower than a transpose plus a
 * plain matMul (measured: [1568,64]x[1568,192] with transposeA 24 ms,
 * transpose + matMul 2.2 ms).
 */
export function dense(x: tf.Tensor2D, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  const [n, inF] = x.shape;
  const [wIn, outF] = weight.shape;
  if (inF !== wIn) throw new Error(`dense: x has ${inF} features, weight expects ${wIn}`);
  if (bias && bias.size !== outF) throw new Error(`dense: bias has ${bias.size} values, expected ${outF}`);
  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, wi, bi] = args.slice(0, -1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D | undefined];
    const y = tf.matMul(xi, wi);
    save([xi, wi]);
    return {
      value: bi ? tf.add(y, bi) : y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dy2 = dy as tf.Tensor2D;
        const grads = [tf.matMul(dy2, tf.transpose(ws) as tf.Tensor2D), tf.matMul(tf.transpose(xs) as tf.Tensor2D, dy2)];
        if (bi) grads.push(tf.reshape(tf.matMul(tf.ones([1, n]) as tf.Tensor2D, dy2), [outF]));
        return grads;
      },
    };
  });
  return (bias ? fn(x, weight, bias) : fn(x, weight)) as tf.Tensor2D;
}

/**
 * x + b for x [..., C] and b [C], whose gradient for b (a sum over every
 * position) is one matMul with a row of ones: the wasm backend reduces over
 * leading axes by transposing the whole tensor first (measured ~5x slower).
 */
export function addBias(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const c = bias.size;
  if (x.shape[x.rank - 1] !== c) throw new Error(`addBias: input [${x.shape}] does not end in ${c} channels`);
  const n = x.size / c;
  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, bi] = args as [tf.Tensor, tf.Tensor];
    return {
      value: tf.add(xi, bi),
      gradFunc: (dy: tf.Tensor) => [dy, tf.reshape(tf.matMul(tf.ones([1, n]) as tf.Tensor2D, tf.reshape(dy, [n, c]) as tf.Tensor2D), bias.shape)],
    };
  });
  return fn(x, bias);
}

/** A fully connected layer y = x W + b, W [in, out] (PyTorch's weight transposed). */
export class Linear {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;

  constructor(
    scope: Scope,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; init?: LayerInit } = {},
  ) {
    positiveInt('Linear inFeatures', inFeatures);
    positiveInt('Linear outFeatures', outFeatures);
    const zero = options.init === 'zeros';
    const shape = [inFeatures, outFeatures];
    this.weight = scope.param('weight', zero ? tf.zeros(shape) : kaimingUniform(scope.rng, shape, inFeatures));
    this.bias =
      options.bias === false
        ? undefined
        : scope.param('bias', zero ? tf.zeros([outFeatures]) : defaultBias(scope.rng, [outFeatures], inFeatures));
  }

  /** x [..., in] -> [..., out]. */
  apply(x: tf.Tensor): tf.Tensor {
    const last = x.shape[x.rank - 1];
    if (last !== this.inFeatures) {
      throw new Error(`Linear: input has ${last} features, expected ${this.inFeatures} (shape [${x.shape}])`);
    }
    const flat = x.rank === 2 ? (x as tf.Tensor2D) : (tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D);
    const y = dense(flat, this.weight as tf.Tensor2D, this.bias as tf.Tensor1D | undefined);
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
  }
}

/** Padding of a 2-D convolution: tfjs's 'same'/'valid', a symmetric amount, or [[top, bottom], [left, right]]. */
export type Padding2d = 'same' | 'valid' | number | readonly [readonly [number, number], readonly [number, number]];

function tfPadding(p: Padding2d): 'same' | 'valid' | number | tf.backend_util.ExplicitPadding {
  if (typeof p === 'string' || typeof p === 'number') return p;
  return [
    [0, 0],
    [p[0][0], p[0][1]],
    [p[1][0], p[1][1]],
    [0, 0],
  ];
}

export interface Conv2dOptions {
  /** Kernel size (square when a number). */
  readonly kernel?: number | readonly [number, number];
  readonly stride?: number | readonly [number, number];
  readonly dilation?: number | readonly [number, number];
  /** Default 'same'. A number pads that many rows/cols on every side (PyTorch's `padding=`). */
  readonly padding?: Padding2d;
  readonly bias?: boolean;
  readonly init?: LayerInit;
}

function pair(v: number | readonly [number, number], name: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  positiveInt(name, p[0]);
  positiveInt(name, p[1]);
  return p;
}

/** A 2-D convolution on NHWC input; weight HWIO [kh, kw, in, out]. */
export class Conv2d {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly padding: Padding2d;

  constructor(
    scope: Scope,
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions = {},
  ) {
    positiveInt('Conv2d inChannels', inChannels);
    positiveInt('Conv2d outChannels', outChannels);
    this.kernel = pair(options.kernel ?? 3, 'Conv2d kernel');
    this.stride = pair(options.stride ?? 1, 'Conv2d stride');
    this.dilation = pair(options.dilation ?? 1, 'Conv2d dilation');
    this.padding = options.padding ?? 'same';
    const fanIn = inChannels * this.kernel[0] * this.kernel[1];
    const shape = [this.kernel[0], this.kernel[1], inChannels, outChannels];
    const zero = options.init === 'zeros';
    this.weight = scope.param('weight', zero ? tf.zeros(shape) : kaimingUniform(scope.rng, shape, fanIn));
    this.bias =
      options.bias === false ? undefined : scope.param('bias', zero ? tf.zeros([outChannels]) : defaultBias(scope.rng, [outChannels], fanIn));
  }

  /** x [B, H, W, in] -> [B, H', W', out]. */
  apply(x: tf.Tensor): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new Error(`Conv2d: expected input [B, H, W, ${this.inChannels}], got [${x.shape}]`);
    }
    const y = tf.conv2d(x as tf.Tensor4D, this.weight as tf.Tensor4D, this.stride, tfPadding(this.padding), 'NHWC', this.dilation);
    return this.bias ? (addBias(y, this.bias) as tf.Tensor4D) : y;
  }
}

export interface Conv1dOptions {
  readonly kernel?: number;
  readonly stride?: number;
  readonly dilation?: number;
  /**
   * 'same' (tfjs: output length ceil(T / stride)), 'valid', 'causal' (pads
   * (k-1)*dilation on the left only: WaveNet, van den Oord et al. 2016,
   * https://arxiv.org/abs/1609.03499), a symmetric amount, or [left, right].
   */
  readonly padding?: 'same' | 'valid' | 'causal' | number | readonly [number, number];
  readonly bias?: boolean;
  readonly init?: LayerInit;
}

/**
 * A 1-D (optionally dilated) convolution on [B, T, C], run as a conv2d on a
 * [B, 1, T, C] view (the wasm backend's fast path; dilated gradients come
 * from difflab's conv gradient kernels). Weight [k, in, out].
 * DiffWave (Kong et al. 2021, https://arxiv.org/abs/2009.09761) stacks these
 * with dilation 2^(i mod n).
 */
export class Conv1d {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly kernel: number;
  readonly stride: number;
  readonly dilation: number;
  private readonly pad: 'same' | 'valid' | tf.backend_util.ExplicitPadding;

  constructor(
    scope: Scope,
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv1dOptions = {},
  ) {
    positiveInt('Conv1d inChannels', inChannels);
    positiveInt('Conv1d outChannels', outChannels);
    this.kernel = options.kernel ?? 3;
    this.stride = options.stride ?? 1;
    this.dilation = options.dilation ?? 1;
    positiveInt('Conv1d kernel', this.kernel);
    positiveInt('Conv1d stride', this.stride);
    positiveInt('Conv1d dilation', this.dilation);
    const p = options.padding ?? 'same';
    if (p === 'same' || p === 'valid') this.pad = p;
    else {
      const [l, r] = p === 'causal' ? [(this.kernel - 1) * this.dilation, 0] : typeof p === 'number' ? [p, p] : [p[0], p[1]];
      this.pad = [
        [0, 0],
        [0, 0],
        [l, r],
        [0, 0],
      ];
    }
    const fanIn = inChannels * this.kernel;
    const shape = [this.kernel, inChannels, outChannels];
    const zero = options.init === 'zeros';
    this.weight = scope.param('weight', zero ? tf.zeros(shape) : kaimingUniform(scope.rng, shape, fanIn));
    this.bias =
      options.bias === false ? undefined : scope.param('bias', zero ? tf.zeros([outChannels]) : defaultBias(scope.rng, [outChannels], fanIn));
  }

  /** x [B, T, in] -> [B, T', out]. */
  apply(x: tf.Tensor): tf.Tensor3D {
    if (x.rank !== 3 || x.shape[2] !== this.inChannels) {
      throw new Error(`Conv1d: expected input [B, T, ${this.inChannels}], got [${x.shape}]`);
    }
    const [b, t] = x.shape as [number, number, number];
    const x4 = tf.reshape(x, [b, 1, t, this.inChannels]) as tf.Tensor4D;
    const w4 = tf.reshape(this.weight, [1, this.kernel, this.inChannels, this.outChannels]) as tf.Tensor4D;
    let y: tf.Tensor = tf.conv2d(x4, w4, [1, this.stride], this.pad, 'NHWC', [1, this.dilation]);
    if (this.bias) y = addBias(y, this.bias);
    return tf.reshape(y, [b, y.shape[2] as number, this.outChannels]) as tf.Tensor3D;
  }
}

/** SiLU / swish, x * sigmoid(x) (Elfwing et al. 2017, https://arxiv.org/abs/1702.03118), DDPM's nonlinearity. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * A learned lookup table (PyTorch nn.Embedding: N(0, 1) init): integer ids
 * [...] -> vectors [..., dim] by tf.gather (its gradient is an
 * UnsortedSegmentSum, which difflab registers on wasm).
 */
export class Embedding {
  readonly table: tf.Variable;

  constructor(
    scope: Scope,
    readonly count: number,
    readonly dim: number,
    options: { std?: number } = {},
  ) {
    positiveInt('Embedding count', count);
    positiveInt('Embedding dim', dim);
    this.table = scope.param('weight', normalInit(scope.rng, [count, dim], options.std ?? 1));
  }

  /** ids (int32; floats are cast) -> [...ids.shape, dim]. Ids must lie in [0, count). */
  apply(ids: tf.Tensor): tf.Tensor {
    const i = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
    return tf.gather(this.table, i);
  }
}

/**
 * Group normalization (Wu & He 2018, https://arxiv.org/abs/1803.08494) on
 * channels-last input [B, ..., C]: statistics per example over all positions
 * and the C/G channels of each group, then a learned per-channel scale and
 * shift (PyTorch nn.GroupNorm, eps 1e-5, gamma = 1, beta = 0).
 *
 * Written with a hand-derived gradient instead of autodiff: with
 * xhat = (x - mu) r, r = 1/sqrt(var + eps) and M values per group,
 *   dx = r (g - mean_grp(g) - xhat mean_grp(g xhat)),   g = gamma dy,
 * which is dy * P + x * Q + R with P, Q, R per (example, channel). All sums
 * over positions are matMuls with a row of ones (a plain matMul is the
 * wasm backend's fast path; reductions over a middle axis and the dozen
 * broadcasting ops autodiff produces were measured 2-3x slower).
 */
export class GroupNorm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(
    scope: Scope,
    readonly groups: number,
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    positiveInt('GroupNorm groups', groups);
    positiveInt('GroupNorm channels', channels);
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels do not split into ${groups} groups`);
    this.gamma = scope.param('weight', tf.ones([channels]));
    this.beta = scope.param('bias', tf.zeros([channels]));
  }

  /** x [B, ..., C] -> same shape. */
  apply(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, this.gamma, this.beta, this.groups, this.eps);
  }
}

/**
 * The function GroupNorm applies (see there): x [B, ..., C], gamma and beta [C].
 * Differentiable in all three, with a hand-derived gradient.
 */
export function groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps = 1e-5): tf.Tensor {
  const c = gamma.size;
  if (x.rank < 2 || x.shape[x.rank - 1] !== c || beta.size !== c || c % groups !== 0) {
    throw new Error(`groupNorm: expected input [B, ..., ${c}] and ${c} channels in ${groups} groups, got [${x.shape}]`);
  }
  const b = x.shape[0] as number;
  const n = x.size / (b * c);
  const g = groups;
  const cg = c / g;
  const m = n * cg;
  const shape = x.shape;
  // Broadcast a per-(example, group) [B, G] tensor to per channel [B, 1, C].
  const perChannel = (t: tf.Tensor): tf.Tensor =>
    cg === 1 ? tf.reshape(t, [b, 1, c]) : tf.reshape(tf.tile(tf.reshape(t, [b, g, 1]), [1, 1, cg]), [b, 1, c]);
  // Sum over the channels of each group: [B, 1, C] -> [B, G].
  const perGroup = (t: tf.Tensor): tf.Tensor => (cg === 1 ? tf.reshape(t, [b, g]) : tf.sum(tf.reshape(t, [b, g, cg]), 2));

  const fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, gm, bt, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const x3 = tf.reshape(xIn, [b, n, c]) as tf.Tensor3D;
    const ones = tf.ones([b, 1, n]) as tf.Tensor3D;
    const mean = tf.div(perGroup(tf.matMul(ones, x3)), m); // [B, G]
    // Centre first, then the second moment: no cancellation when |mean| >> std.
    const xc = tf.sub(x3, perChannel(mean)) as tf.Tensor3D;
    const variance = tf.div(perGroup(tf.matMul(ones, tf.square(xc) as tf.Tensor3D)), m);
    const r = tf.rsqrt(tf.add(variance, eps)); // [B, G]
    const y = tf.reshape(tf.add(tf.mul(xc, tf.mul(perChannel(r), gm)), bt), shape);
    save([xc, gm, r]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xcs, gms, rs] = saved as [tf.Tensor3D, tf.Tensor, tf.Tensor];
        const dy3 = tf.reshape(dy, [b, n, c]) as tf.Tensor3D;
        const o = tf.ones([b, 1, n]) as tf.Tensor3D;
        const rC = perChannel(rs); // [B, 1, C]
        const sDy = tf.matMul(o, dy3); // sum over positions of dy, [B, 1, C]
        const sDyXhat = tf.mul(tf.matMul(o, tf.mul(dy3, xcs) as tf.Tensor3D), rC); // ... of dy * xhat
        const dBeta = tf.reshape(tf.sum(sDy, [0, 1]), [c]);
        const dGamma = tf.reshape(tf.sum(sDyXhat, [0, 1]), [c]);
        const sumG = perGroup(tf.mul(sDy, gms)); // sum of g = gamma dy per group, [B, G]
        const sumGXhat = perGroup(tf.mul(sDyXhat, gms)); // sum of g * xhat per group
        // dx = r g - r sum(g)/M - xc r^2 sum(g xhat)/M
        const p = tf.mul(rC, gms);
        const q = perChannel(tf.mul(tf.square(rs), tf.div(sumGXhat, -m)));
        const rr = perChannel(tf.mul(rs, tf.div(sumG, -m)));
        const dx = tf.add(tf.add(tf.mul(dy3, p), tf.mul(xcs, q)), rr);
        return [tf.reshape(dx, shape), dGamma, dBeta];
      },
    };
  });
  return fn(x, gamma, beta);
}

/**
 * Layer normalization over the last axis (Ba et al. 2016,
 * https://arxiv.org/abs/1607.06450; PyTorch nn.LayerNorm, eps 1e-5).
 * The reduction is over the innermost axis, which wasm reduces directly.
 */
export class LayerNorm {
  readonly gamma: tf.Variable | undefined;
  readonly beta: tf.Variable | undefined;

  constructor(
    scope: Scope,
    readonly dim: number,
    options: { eps?: number; affine?: boolean } = {},
  ) {
    positiveInt('LayerNorm dim', dim);
    this.eps = options.eps ?? 1e-5;
    if (options.affine === false) {
      this.gamma = undefined;
      this.beta = undefined;
    } else {
      this.gamma = scope.param('weight', tf.ones([dim]));
      this.beta = scope.param('bias', tf.zeros([dim]));
    }
  }

  readonly eps: number;

  apply(x: tf.Tensor): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`LayerNorm: expected last axis ${this.dim}, got [${x.shape}]`);
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
    if (this.gamma && this.beta) y = tf.add(tf.mul(y, this.gamma), this.beta);
    return y;
  }
}

/**
 * Inverted dropout (Srivastava et al. 2014, https://jmlr.org/papers/v15/srivastava14a.html)
 * with the mask drawn from a difflab Rng, so that it is reproducible and the
 * same on every backend. Identity when rate is 0.
 */
export function dropout(x: tf.Tensor, rate: number, rng: Rng): tf.Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return x;
  const n = x.size;
  const keep = 1 - rate;
  const mask = new Float32Array(n);
  for (let i = 0; i < n; i++) mask[i] = rng.uniform() < keep ? 1 / keep : 0;
  return tf.mul(x, tf.tensor(mask, x.shape, 'float32'));
}

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
}
