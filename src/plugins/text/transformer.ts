import * as tf from '@tensorflow/tfjs';
import { formatIssues } from '../../core/config/load.js';
import { MultiHeadSelfAttention } from '../../core/nn/attention.js';
import { NoiseEmbedding } from '../../core/nn/embeddings.js';
import { normalInit } from '../../core/nn/init.js';
import { dense, Embedding, LayerNorm, Linear, silu } from '../../core/nn/layers.js';
import type { Scope } from '../../core/nn/module.js';
import { conditioningClasses, Network } from '../../core/nn/network.js';
import type { DenoiserNetwork, LearnedEncoding, NetworkContext } from '../../core/plugin.js';
import type { Conditioning } from '../../core/types.js';
import { textModelSchema, type TextModelConfig, type TextModelConfigInput } from './config.js';
import { asVocabulary, vocabSize } from './data.js';

/**
 * Diffusion-LM's model (Li et al. 2022, "Diffusion-LM Improves Controllable
 * Text Generation", https://arxiv.org/abs/2205.14217, sec. 4.1 and app. A;
 * the authors' `improved-diffusion/transformer_model2.py`): learned token
 * embeddings EMB [V, E] trained with the denoiser, a transformer encoder that
 * predicts x0 from x_t, and a rounding head p(w | x0) = softmax(x0 EMB^T + b)
 * (their `lm_head`, whose weight is the embedding table).
 *
 * The denoiser, for x [B, L, E] and c_noise [B]:
 *
 *   e = MLP(sinusoidal(c_noise))                     [B, W]  (DDPM's timestep embedding)
 *   h = x W_in + P (+ e when conditioning = 'add')   [B, L, W], P learned positions
 *   per block (pre-LayerNorm; Xiong et al. 2020, https://arxiv.org/abs/2002.04745):
 *     a = LN(h), modulated by (1 + scale1, shift1) when conditioning = 'adaln'
 *     h = h + MHSA(a)                                 (Vaswani et al. 2017; matMul + softmax)
 *     m = LN(h), modulated by (1 + scale2, shift2)
 *     h = h + W_2 GELU(W_1 m)
 *   out = LN(h) W_out                                [B, L, E]
 *
 * Adaptive LayerNorm takes scale and shift per block from a zero-initialized
 * Linear of SiLU(e) (DiT's adaLN, Peebles & Xie 2023,
 * https://arxiv.org/abs/2212.09748, sec. 3.2, without its gates), so every
 * block starts as a plain pre-LN block.
 */
export class TextTransformer extends Network implements DenoiserNetwork, LearnedEncoding {
  readonly seqLen: number;
  readonly embeddingDim: number;
  readonly vocabSize: number;
  readonly embedding: Embedding;
  readonly roundingWeight: tf.Variable | undefined;
  readonly roundingBias: tf.Variable;
  readonly inputProjection: Linear;
  readonly positions: tf.Variable;
  readonly noiseEmb: NoiseEmbedding;
  /** Class embedding (numClasses + the null class), added to the noise embedding; class-conditional models only. */
  readonly labelEmb: Embedding | undefined;
  readonly numClasses: number | undefined;
  readonly blocks: readonly TransformerBlock[];
  readonly outputNorm: LayerNorm;
  readonly outputProjection: Linear;

  constructor(
    readonly config: TextModelConfig,
    ctx: NetworkContext,
  ) {
    const s = ctx.exampleShape;
    if (s.length !== 2 || !s.every((d) => Number.isInteger(d) && d >= 1)) {
      throw new Error(`text transformer: example shape must be [seq_len, embedding_dim], got [${s.join(', ')}]`);
    }
    const [seqLen, dim] = s as [number, number];
    const vocab = vocabSize(asVocabulary(ctx.dataInfo, 'text transformer'));
    const numClasses = conditioningClasses(
      config.class_conditional,
      ctx.numClasses,
      'text transformer: model.class_conditional needs classes in the data (set data.label_field on a JSON-lines corpus)',
    );
    const W = config.width;
    if (W % config.heads !== 0) throw new Error(`model.width: ${W} does not split into model.heads = ${config.heads} heads`);
    super('text_transformer');
    this.seqLen = seqLen;
    this.embeddingDim = dim;
    this.vocabSize = vocab;
    this.numClasses = numClasses;
    try {
      const root = this.scope(ctx.rng);
      this.embedding = new Embedding(root.child('embedding'), this.vocabSize, dim, { std: config.embedding_init_std });
      const head = root.child('rounding');
      this.roundingWeight = config.rounding_head === 'separate' ? head.param('weight', normalInit(head.rng, [dim, this.vocabSize], 1 / Math.sqrt(dim))) : undefined;
      this.roundingBias = head.param('bias', tf.zeros([this.vocabSize]));
      this.inputProjection = new Linear(root.child('input_projection'), dim, W);
      this.positions = root.param('positions', normalInit(root.rng, [seqLen, W], 0.02));
      this.noiseEmb = new NoiseEmbedding(root.child('noise_emb'), {
        kind: 'sinusoidal',
        dim: config.noise_embedding_dim,
        hidden: W,
        inputScale: config.noise_input_scale,
      });
      this.labelEmb = numClasses !== undefined ? new Embedding(root.child('label_emb'), numClasses + 1, W) : undefined;
      const blocks: TransformerBlock[] = [];
      for (let i = 0; i < config.layers; i++) blocks.push(new TransformerBlock(root.child('blocks').child(i), W, config));
      this.blocks = blocks;
      this.outputNorm = new LayerNorm(root.child('output_norm'), W);
      this.outputProjection = new Linear(root.child('output_projection'), W, dim);
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }

  /** This network is its own learned encoding. */
  get encoding(): LearnedEncoding {
    return this;
  }

  /** The null class id (classifier-free guidance's "unconditional"). */
  get nullClass(): number | undefined {
    return this.numClasses;
  }

  apply(x: tf.Tensor, cNoise: tf.Tensor1D, cond?: Conditioning): tf.Tensor {
    const [b, l, e] = x.shape as number[];
    if (x.rank !== 3 || e !== this.embeddingDim || l !== this.seqLen) {
      throw new Error(`text transformer: expected x of shape [B, ${this.seqLen}, ${this.embeddingDim}], got [${x.shape.join(', ')}]`);
    }
    if (cNoise.rank !== 1 || cNoise.shape[0] !== b) throw new Error(`text transformer: expected c_noise of shape [${b}], got [${cNoise.shape.join(', ')}]`);
    const labels = cond?.labels;
    if (labels && this.labelEmb && (labels.rank !== 1 || labels.shape[0] !== b)) {
      throw new Error(`text transformer: expected labels of shape [${b}], got [${labels.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      let emb: tf.Tensor2D = this.noiseEmb.apply(cNoise); // [B, W]
      if (this.labelEmb) emb = tf.add(emb, this.labelEmb.apply(labels ?? tf.fill([b], this.numClasses as number, 'int32'))) as tf.Tensor2D;
      let h = tf.add(this.inputProjection.apply(x), this.positions);
      if (this.config.conditioning === 'add') h = tf.add(h, tf.expandDims(emb, 1));
      const c = silu(emb) as tf.Tensor2D;
      for (const block of this.blocks) h = block.apply(h, c);
      return this.outputProjection.apply(this.outputNorm.apply(h));
    });
  }

  // ---------------------------------------------------------------- LearnedEncoding

  /** Token ids [B, L] -> EMB(w) [B, L, E]. */
  encode(ids: tf.Tensor): tf.Tensor {
    return this.embedding.apply(ids);
  }

  /** Rounding-head logits [B * L, V] of x0 [B, L, E]: x0 EMB^T + b (tied) or x0 W + b. */
  logits(x0: tf.Tensor): tf.Tensor2D {
    const flat = tf.reshape(x0, [-1, this.embeddingDim]) as tf.Tensor2D;
    const w = this.roundingWeight ?? (tf.transpose(this.embedding.table) as tf.Tensor2D);
    return dense(flat, w as tf.Tensor2D, this.roundingBias as tf.Tensor1D);
  }

  /** sum over positions of log p(w_i | x0_i), per row [B] (nats). */
  decodeLogLikelihood(x0: tf.Tensor, ids: tf.Tensor): tf.Tensor1D {
    return tf.tidy(() => {
      const b = x0.shape[0] as number;
      const logits = this.logits(x0);
      const n = logits.shape[0];
      const v = this.vocabSize;
      const flatIds = tf.reshape(tf.cast(ids, 'int32'), [n]);
      const at = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(v, 'int32')), flatIds);
      const picked = tf.gather(tf.reshape(logits, [n * v]), at);
      const ll = tf.sub(picked, tf.logSumExp(logits, 1));
      return tf.sum(tf.reshape(ll, [b, -1]), 1) as tf.Tensor1D;
    });
  }

  /** argmax_w p(w | x0): ids [B, L] (int32). */
  decode(x0: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.reshape(tf.argMax(this.logits(x0), 1), [x0.shape[0] as number, this.seqLen]));
  }

  /** Nearest embedding, argmin_w ||x0_i - EMB(w)||^2 = argmax_w 2 x0_i . EMB(w) - ||EMB(w)||^2 (the clamping trick). */
  nearestIds(x0: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const flat = tf.reshape(x0, [-1, this.embeddingDim]) as tf.Tensor2D;
      const table = this.embedding.table as tf.Tensor2D;
      const scores = tf.sub(tf.mul(tf.matMul(flat, tf.transpose(table) as tf.Tensor2D), 2), tf.reshape(tf.sum(tf.square(table), 1), [1, -1]));
      return tf.reshape(tf.argMax(scores, 1), [x0.shape[0] as number, this.seqLen]);
    });
  }

  project(x0: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.encode(this.nearestIds(x0)));
  }

}

/** GELU, tanh form (Hendrycks & Gimpel 2016, https://arxiv.org/abs/1606.08415, sec. 2; PyTorch GELU(approximate='tanh')). */
export function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
}

/** One pre-LayerNorm transformer block with optional adaptive LayerNorm (see TextTransformer). */
export class TransformerBlock {
  readonly norm1: LayerNorm;
  readonly attention: MultiHeadSelfAttention;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly modulation: Linear | undefined;

  constructor(
    scope: Scope,
    readonly width: number,
    config: Pick<TextModelConfig, 'heads' | 'mlp_ratio' | 'conditioning'>,
  ) {
    const adaln = config.conditioning === 'adaln';
    // adaLN supplies scale and shift, so its LayerNorms carry no affine parameters (as DiT).
    this.norm1 = new LayerNorm(scope.child('norm1'), width, { affine: !adaln });
    this.attention = new MultiHeadSelfAttention(scope.child('attn'), width, config.heads);
    this.norm2 = new LayerNorm(scope.child('norm2'), width, { affine: !adaln });
    const hidden = Math.max(1, Math.round(width * config.mlp_ratio));
    this.fc1 = new Linear(scope.child('fc1'), width, hidden);
    this.fc2 = new Linear(scope.child('fc2'), hidden, width);
    this.modulation = adaln ? new Linear(scope.child('modulation'), width, 4 * width, { init: 'zeros' }) : undefined;
  }

  /** h [B, L, W], c = SiLU(noise embedding) [B, W] -> [B, L, W]. */
  apply(h: tf.Tensor, c: tf.Tensor2D): tf.Tensor {
    const b = h.shape[0] as number;
    let a = this.norm1.apply(h);
    let shift2: tf.Tensor | undefined;
    let scale2: tf.Tensor | undefined;
    if (this.modulation) {
      const [shift1, scale1, s2, c2] = tf.split(tf.reshape(this.modulation.apply(c), [b, 1, 4 * this.width]), 4, 2) as tf.Tensor[];
      a = tf.add(tf.mul(a, tf.add(scale1!, 1)), shift1!);
      shift2 = s2;
      scale2 = c2;
    }
    h = tf.add(h, this.attention.apply(a));
    let m = this.norm2.apply(h);
    if (shift2 && scale2) m = tf.add(tf.mul(m, tf.add(scale2, 1)), shift2);
    return tf.add(h, this.fc2.apply(gelu(this.fc1.apply(m))));
  }
}

/** Validates (and fills the defaults of) a text `model` config; throws one line naming the bad keys. */
export function parseTextModelConfig(config: unknown, where = 'model'): TextModelConfig {
  const r = textModelSchema.safeParse(config ?? {});
  if (!r.success) throw new Error(formatIssues(where, r.error));
  return r.data;
}

/** Builds the text denoiser a config names (partial configs get the defaults); initial weights come from ctx.rng. */
export function createTextNetwork(config: TextModelConfigInput | TextModelConfig, ctx: NetworkContext): TextTransformer {
  return new TextTransformer(parseTextModelConfig(config), ctx);
}
