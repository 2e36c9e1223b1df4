import * as tf from '@tensorflow/tfjs';
import { NoiseEmbedding } from '../../../core/nn/embeddings.js';
import { Embedding } from '../../../core/nn/layers.js';
import type { NamedVariable } from '../../../core/nn/module.js';
import { conditioningClasses, Network } from '../../../core/nn/network.js';
import type { DenoiserNetwork, NetworkContext } from '../../../core/plugin.js';
import type { Rng } from '../../../core/random.js';
import type { Conditioning } from '../../../core/types.js';
import type { BlockContext } from './blocks.js';
import type { ImageModelConfig } from './config.js';

/** An image denoiser network: the DenoiserNetwork contract plus what checkpoints and trainers need. */
export interface ImageDenoiserNetwork extends DenoiserNetwork {
  readonly config: ImageModelConfig;
  /** [H, W, C] the network was built for. */
  readonly exampleShape: readonly [number, number, number];
  /** Classes of a class-conditional network (the null class id equals this), else undefined. */
  readonly numClasses: number | undefined;
  /** Non-trainable state a checkpoint must store too (the Fourier frequencies). */
  readonly buffers: readonly tf.Variable[];
  /** Variables and buffers with their stable paths (checkpoint keys). */
  named(): NamedVariable[];
  /** Trainable scalars. */
  parameterCount(): number;
  /** Dropout is active only in training mode (the default, as in PyTorch); samplers should switch it off. */
  readonly training: boolean;
  setTraining(on: boolean): void;
}

/** Checks the example shape of an image network: [H, W, C]. */
export function imageShape(ctx: NetworkContext): [number, number, number] {
  const s = ctx.exampleShape;
  if (s.length !== 3 || s.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`image network: example shape must be [height, width, channels], got [${s.join(', ')}]`);
  }
  return [s[0] as number, s[1] as number, s[2] as number];
}

/**
 * What every image denoiser shares: the noise embedding (features of
 * c_noise -> Linear -> SiLU -> Linear, DDPM's `temb`), the optional class
 * embedding with a null class for classifier-free guidance (Ho & Salimans
 * 2022, https://arxiv.org/abs/2207.12598; added to the noise embedding as
 * in improved DDPM's `label_emb`) and input checks; the variable store and
 * its accessors come from core's `Network`.
 */
export abstract class ImageDenoiserBase extends Network implements ImageDenoiserNetwork {
  readonly exampleShape: readonly [number, number, number];
  readonly numClasses: number | undefined;
  readonly embDim: number;
  protected readonly noiseEmb: NoiseEmbedding;
  protected readonly labelEmb: Embedding | undefined;
  /** Set by the subclass constructor, after the weights: dropout masks. */
  protected dropoutRng!: Rng;

  constructor(
    name: string,
    readonly config: ImageModelConfig,
    ctx: NetworkContext,
  ) {
    // Checked before the store exists (it takes its root name on creation).
    const exampleShape = imageShape(ctx);
    const numClasses = conditioningClasses(
      config.class_conditional,
      ctx.numClasses,
      'image network: class_conditional needs a data source with labels (numClasses is not known)',
    );
    super(name);
    this.exampleShape = exampleShape;
    this.numClasses = numClasses;
    this.embDim = 4 * config.channels;
    try {
      const root = this.scope(ctx.rng);
      this.noiseEmb = new NoiseEmbedding(root.child('noise_emb'), {
        kind: config.noise_embedding,
        dim: config.channels,
        hidden: this.embDim,
        inputScale: config.embedding_input_scale,
        fourierScale: config.fourier_scale,
      });
      this.labelEmb = this.numClasses !== undefined ? new Embedding(root.child('label_emb'), this.numClasses + 1, this.embDim) : undefined;
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }

  /** The null class id (classifier-free guidance's "unconditional"). */
  get nullClass(): number | undefined {
    return this.numClasses;
  }

  apply(x: tf.Tensor, cNoise: tf.Tensor1D, cond?: Conditioning): tf.Tensor {
    const [h, w, c] = this.exampleShape;
    if (x.rank !== 4 || x.shape[1] !== h || x.shape[2] !== w || x.shape[3] !== c) {
      throw new Error(`image network: expected x of shape [B, ${h}, ${w}, ${c}], got [${x.shape.join(', ')}]`);
    }
    const b = x.shape[0] as number;
    if (cNoise.rank !== 1 || cNoise.shape[0] !== b) {
      throw new Error(`image network: expected c_noise of shape [${b}], got [${cNoise.shape.join(', ')}]`);
    }
    const labels = cond?.labels;
    if (labels && this.labelEmb && (labels.rank !== 1 || labels.shape[0] !== b)) {
      throw new Error(`image network: expected labels of shape [${b}], got [${labels.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      let emb: tf.Tensor = this.noiseEmb.apply(cNoise);
      if (this.labelEmb) {
        const ids = labels ?? tf.fill([b], this.numClasses as number, 'int32');
        emb = tf.add(emb, this.labelEmb.apply(ids));
      }
      // Every block adds Linear(SiLU(emb)) (DDPM applies the nonlinearity in each block; once is the same).
      const embAct = tf.mul(emb, tf.sigmoid(emb)) as tf.Tensor2D;
      return this.forward(x as tf.Tensor4D, embAct, { training: this.training, rng: this.dropoutRng });
    });
  }

  /** The architecture: x [B, H, W, C] and SiLU(emb) [B, 4 * channels] -> [B, H, W, C]. */
  protected abstract forward(x: tf.Tensor4D, embAct: tf.Tensor2D, ctx: BlockContext): tf.Tensor4D;
}
