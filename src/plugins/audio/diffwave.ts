import * as tf from '@tensorflow/tfjs';
import { formatIssues } from '../../core/config/load.js';
import { NoiseEmbedding } from '../../core/nn/embeddings.js';
import { Conv1d, Embedding, Linear, silu } from '../../core/nn/layers.js';
import type { Scope } from '../../core/nn/module.js';
import { conditioningClasses, Network } from '../../core/nn/network.js';
import type { DenoiserNetwork, NetworkContext } from '../../core/plugin.js';
import type { Conditioning } from '../../core/types.js';
import { audioModelSchema, type AudioModelConfig, type AudioModelConfigInput, type DiffWaveConfig } from './config.js';

/**
 * A DiffWave denoiser (Kong et al. 2021, "DiffWave: A Versatile Diffusion
 * Model for Audio Synthesis", https://arxiv.org/abs/2009.09761, Fig. 2 and
 * sec. 3; the authors' code, github.com/lmnt-com/diffwave `model.py`) for
 * waveforms x [B, T, 1]:
 *
 *   h   = ReLU(Conv1x1(x))                                  [B, T, C]
 *   e   = SiLU(MLP(features(c_noise)) + class_emb(label))   [B, hidden]
 *   layer i = 0..N-1, dilation d = 2^(i mod cycle):
 *     y        = DilatedConv_k,d(h + Linear_i(e))          [B, T, 2C]
 *     g        = tanh(y[:, :, :C]) * sigmoid(y[:, :, C:])  gated activation (WaveNet, van den Oord et al. 2016)
 *     r, s     = split(Conv1x1(g))                         [B, T, C] each
 *     h        = (h + r) / sqrt(2),   skips += s
 *   out = Conv1x1_zero(ReLU(Conv1x1(skips / sqrt(N))))      [B, T, 1]
 *
 * The noise features are DDPM's sinusoidal embedding of c_noise (DiffWave
 * embeds the step index the same way), or random Fourier features. The
 * paper's MLP ends in a SiLU; here the optional class embedding is added
 * before that SiLU, with one extra "null" class (id = number of classes)
 * for classifier-free guidance (Ho & Salimans 2022,
 * https://arxiv.org/abs/2207.12598) — the same scheme as the image networks.
 *
 * The last 1x1 convolution starts at zero (DiffWave's `output_projection`
 * is zero-initialised), so the raw network output F is 0 at initialization
 * and a parametrized denoiser starts as D(x) = c_skip x.
 *
 * 1x1 convolutions are Linear layers on [B*T, C] (the same map; a plain
 * matMul with difflab's fast gradient on wasm). The network is fully
 * convolutional: any T works, not only the T it was built for. It has no
 * train-only behaviour (no dropout): `setTraining` (from core's `Network`,
 * with the variable accessors) only records the mode.
 */
export class DiffWave extends Network implements DenoiserNetwork {
  readonly exampleShape: readonly [number, 1];
  readonly numClasses: number | undefined;
  readonly inputProjection: Linear;
  readonly noiseEmb: NoiseEmbedding;
  readonly labelEmb: Embedding | undefined;
  readonly layers: readonly ResidualLayer[];
  readonly skipProjection: Linear;
  readonly outputProjection: Linear;

  constructor(
    readonly config: DiffWaveConfig,
    ctx: NetworkContext,
  ) {
    // Checked before the store exists (it takes its root name on creation).
    const s = ctx.exampleShape;
    if (s.length !== 2 || s[1] !== 1 || !Number.isInteger(s[0]) || (s[0] as number) < 1) {
      throw new Error(`diffwave: example shape must be [length, 1] (mono waveforms), got [${s.join(', ')}]`);
    }
    const numClasses = conditioningClasses(
      config.class_conditional,
      ctx.numClasses,
      'diffwave: class_conditional needs a data source with labels (set data.labels; numClasses is not known)',
    );
    super('diffwave');
    this.exampleShape = [s[0] as number, 1];
    this.numClasses = numClasses;
    try {
      const root = this.scope(ctx.rng);
      const C = config.residual_channels;
      const hidden = config.embedding_hidden;
      this.inputProjection = new Linear(root.child('input_projection'), 1, C);
      this.noiseEmb = new NoiseEmbedding(root.child('noise_emb'), {
        kind: config.noise_embedding,
        dim: config.embedding_dim,
        hidden,
        inputScale: config.embedding_input_scale,
        fourierScale: config.fourier_scale,
      });
      this.labelEmb = this.numClasses !== undefined ? new Embedding(root.child('label_emb'), this.numClasses + 1, hidden) : undefined;
      const layers: ResidualLayer[] = [];
      for (let i = 0; i < config.layers; i++) {
        layers.push(new ResidualLayer(root.child('layers').child(i), C, hidden, config.kernel_size, 2 ** (i % config.dilation_cycle)));
      }
      this.layers = layers;
      this.skipProjection = new Linear(root.child('skip_projection'), C, C);
      this.outputProjection = new Linear(root.child('output_projection'), C, 1, { init: 'zeros' });
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }

  /** Samples of context each output sample sees: 1 + (k - 1) * sum of the dilations. */
  get receptiveField(): number {
    return 1 + this.layers.reduce((n, l) => n + (this.config.kernel_size - 1) * l.dilation, 0);
  }

  /** The null class id (classifier-free guidance's "unconditional"). */
  get nullClass(): number | undefined {
    return this.numClasses;
  }

  apply(x: tf.Tensor, cNoise: tf.Tensor1D, cond?: Conditioning): tf.Tensor {
    if (x.rank !== 3 || x.shape[2] !== 1 || (x.shape[1] as number) < 1) {
      throw new Error(`diffwave: expected x of shape [B, T, 1], got [${x.shape.join(', ')}]`);
    }
    const b = x.shape[0] as number;
    if (cNoise.rank !== 1 || cNoise.shape[0] !== b) {
      throw new Error(`diffwave: expected c_noise of shape [${b}], got [${cNoise.shape.join(', ')}]`);
    }
    const labels = cond?.labels;
    if (labels && this.labelEmb && (labels.rank !== 1 || labels.shape[0] !== b)) {
      throw new Error(`diffwave: expected labels of shape [${b}], got [${labels.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      let emb: tf.Tensor = this.noiseEmb.apply(cNoise);
      if (this.labelEmb) {
        const ids = labels ?? tf.fill([b], this.numClasses as number, 'int32');
        emb = tf.add(emb, this.labelEmb.apply(ids));
      }
      const e = silu(emb) as tf.Tensor2D;
      let h = tf.relu(this.inputProjection.apply(x));
      let skips: tf.Tensor | undefined;
      for (const layer of this.layers) {
        const [next, skip] = layer.apply(h, e);
        h = next;
        skips = skips ? tf.add(skips, skip) : skip;
      }
      const s = tf.mul(skips!, 1 / Math.sqrt(this.layers.length));
      return this.outputProjection.apply(tf.relu(this.skipProjection.apply(s)));
    });
  }
}

/** One residual layer of DiffWave (Fig. 2): noise projection, dilated conv, gate, residual / skip split. */
export class ResidualLayer {
  readonly noiseProjection: Linear;
  readonly dilatedConv: Conv1d;
  readonly outputProjection: Linear;

  constructor(
    scope: Scope,
    readonly channels: number,
    embDim: number,
    kernel: number,
    readonly dilation: number,
  ) {
    this.noiseProjection = new Linear(scope.child('noise_projection'), embDim, channels);
    // One conv to 2C channels, split into the tanh (filter) and sigmoid (gate) halves, as the authors' code.
    this.dilatedConv = new Conv1d(scope.child('dilated_conv'), channels, 2 * channels, { kernel, dilation, padding: 'same' });
    this.outputProjection = new Linear(scope.child('output_projection'), channels, 2 * channels);
  }

  /** h [B, T, C], e [B, hidden] -> (residual output [B, T, C], skip [B, T, C]). */
  apply(h: tf.Tensor, e: tf.Tensor2D): [tf.Tensor, tf.Tensor] {
    const b = h.shape[0] as number;
    const c = this.channels;
    const proj = tf.reshape(this.noiseProjection.apply(e), [b, 1, c]);
    const y = this.dilatedConv.apply(tf.add(h, proj));
    const [filter, gate] = tf.split(y, 2, 2);
    const g = tf.mul(tf.tanh(filter!), tf.sigmoid(gate!));
    const [residual, skip] = tf.split(this.outputProjection.apply(g), 2, 2);
    return [tf.mul(tf.add(h, residual!), Math.SQRT1_2), skip!];
  }
}

/** Validates (and fills the defaults of) an audio `model` config; throws one line naming the bad keys. */
export function parseAudioModelConfig(config: unknown, where = 'model'): AudioModelConfig {
  const r = audioModelSchema.safeParse(config ?? {});
  if (!r.success) throw new Error(formatIssues(where, r.error));
  return r.data;
}

/** Builds the audio denoiser a config names (partial configs get the defaults); initial weights come from ctx.rng. */
export function createAudioNetwork(config: AudioModelConfigInput | AudioModelConfig, ctx: NetworkContext): DiffWave {
  return new DiffWave(parseAudioModelConfig(config), ctx);
}
