import * as tf from '@tensorflow/tfjs';
import type { LayerInit } from './init.js';
import { Linear } from './layers.js';
import type { Scope } from './module.js';

/**
 * Multi-head self-attention (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762,
 * sec. 3.2) on sequences [B, L, D], written with matMul and softmax:
 *   [q, k, v] = x W_qkv + b,  per head h: o_h = softmax(q_h k_h^T / sqrt(d_h)) v_h,
 *   out = concat_h(o_h) W_o + b_o.
 * The U-Net's attention blocks (DDPM's `attn_block`, improved DDPM's
 * `AttentionBlock`) feed it the H*W positions of a feature map.
 *
 * Speed on wasm: the score and mixing matMuls are batched over B*heads with
 * a small inner dimension, which the backend runs at ~2 GFLOP/s (measured
 * ~0.9 s forward+backward for L = 196 at batch 32): keep attention at low
 * resolutions.
 */
export class MultiHeadSelfAttention {
  readonly qkv: Linear;
  readonly out: Linear;
  readonly headDim: number;

  constructor(
    scope: Scope,
    readonly dim: number,
    readonly heads: number,
    /** Init of the output projection: 'zeros' makes a residual attention branch start as the identity (DDPM's `proj_out`, init_scale 0). */
    options: { outInit?: LayerInit } = {},
  ) {
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) {
      throw new Error(`MultiHeadSelfAttention: ${dim} channels do not split into ${heads} heads`);
    }
    this.headDim = dim / heads;
    this.qkv = new Linear(scope.child('qkv'), dim, 3 * dim);
    this.out = new Linear(scope.child('out'), dim, dim, { init: options.outInit ?? 'default' });
  }

  /** x [B, L, D] -> [B, L, D]. */
  apply(x: tf.Tensor): tf.Tensor3D {
    if (x.rank !== 3 || x.shape[2] !== this.dim) throw new Error(`MultiHeadSelfAttention: expected [B, L, ${this.dim}], got [${x.shape}]`);
    const [b, l] = x.shape as [number, number, number];
    const h = this.heads;
    const dh = this.headDim;
    const qkv = this.qkv.apply(x);
    const [q, k, v] = tf.split(qkv, 3, 2) as [tf.Tensor, tf.Tensor, tf.Tensor];
    // [B, L, D] -> [B*H, L, dh]; the transpose is skipped for one head.
    const heads = (t: tf.Tensor): tf.Tensor3D =>
      (h === 1 ? t : tf.transpose(tf.reshape(t, [b, l, h, dh]), [0, 2, 1, 3])).reshape([b * h, l, dh]) as tf.Tensor3D;
    // Scaling q (L x dh values) is cheaper than scaling the L x L scores.
    const qh = tf.mul(heads(q), 1 / Math.sqrt(dh)) as tf.Tensor3D;
    const weights = tf.softmax(tf.matMul(qh, heads(k), false, true)) as tf.Tensor3D; // [B*H, L, L]
    const o = tf.matMul(weights, heads(v)); // [B*H, L, dh]
    const merged = h === 1 ? tf.reshape(o, [b, l, this.dim]) : tf.reshape(tf.transpose(tf.reshape(o, [b, h, l, dh]), [0, 2, 1, 3]), [b, l, this.dim]);
    return this.out.apply(merged) as tf.Tensor3D;
  }
}
