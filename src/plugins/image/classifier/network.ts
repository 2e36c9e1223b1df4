import * as tf from '@tensorflow/tfjs';
import { Conv2d, Linear } from '../../../core/nn/index.js';
import { Rng } from '../../../core/random.js';
import { ClassifierNetwork, loadClassifier, type ClassifierConfig } from '../../../core/training/classifier.js';

/**
 * A small CNN classifier for 28x28 grey images (Fashion-MNIST), built from
 * difflab's own layers so it trains with difflab's trainers and wasm kernels:
 *
 *   conv 3x3 1->c1, ReLU, max-pool 2   28x28 -> 14x14
 *   conv 3x3 c1->c2, ReLU, max-pool 2  14x14 -> 7x7
 *   flatten, linear 49*c2 -> f, ReLU   the f-d *features* (penultimate layer)
 *   dropout (training only), linear f -> classes   the logits
 *
 * It is the feature network of difflab's image metrics (FD, KID, IS on
 * Fashion-MNIST), playing the role Inception-v3's pool3 layer and softmax
 * play for FID/IS on ImageNet-like data (Heusel et al. 2017,
 * https://arxiv.org/abs/1706.08500; Salimans et al. 2016,
 * https://arxiv.org/abs/1606.03498). Features are taken after the ReLU, as
 * Inception's pool3 features are non-negative activations too.
 *
 * Input is x in [-1, 1], shape [B, 28, 28, 1]: the image plugin's diffusion
 * space, so generated samples go in without conversion.
 *
 * Size and accuracy: ~106K parameters (424 KB of float32). The committed
 * weights reach 91.5 % test accuracy after 10 epochs (see
 * fashion-classifier.json). For comparison, the Fashion-MNIST benchmark table
 * (https://github.com/zalandoresearch/fashion-mnist#benchmark) lists
 * "2 Conv+pooling" at 0.916, "2 Conv <100K parameters" at 0.925 and
 * "2 Conv ~113K parameters" at 0.922; the best scikit-learn classifier in
 * Xiao et al. 2017 (https://arxiv.org/abs/1708.07747) reaches 0.897.
 */
export interface FashionCnnConfig extends ClassifierConfig {
  /** Channels of the first and second conv layers. */
  readonly channels: readonly [number, number];
  /** Input side length (the two pools need a multiple of 4). */
  readonly size: number;
}

export const DEFAULT_FASHION_CNN: FashionCnnConfig = { channels: [16, 32], features: 64, classes: 10, size: 28, dropout: 0.1 };

/** The head, dropout, save / assign / load: core's `ClassifierNetwork`. */
export class FashionCnn extends ClassifierNetwork<FashionCnnConfig> {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly fc: Linear;
  readonly head: Linear;
  readonly flatDim: number;

  constructor(config: FashionCnnConfig = DEFAULT_FASHION_CNN, seed = 0, name = 'fashion_cnn') {
    const { channels, features, classes, size } = config;
    if (size % 4 !== 0) throw new Error(`FashionCnn: input size ${size} must be a multiple of 4 (two 2x2 pools)`);
    super(name, config, 'FashionCnn');
    const root = this.scope(new Rng(seed));
    this.conv1 = new Conv2d(root.child('conv1'), 1, channels[0], { kernel: 3 });
    this.conv2 = new Conv2d(root.child('conv2'), channels[0], channels[1], { kernel: 3 });
    this.flatDim = (size / 4) * (size / 4) * channels[1];
    this.fc = new Linear(root.child('fc'), this.flatDim, features);
    this.head = new Linear(root.child('head'), features, classes);
  }

  private checkInput(x: tf.Tensor): void {
    const s = this.config.size;
    if (x.rank !== 4 || x.shape[1] !== s || x.shape[2] !== s || x.shape[3] !== 1) {
      throw new Error(`FashionCnn: expected input [B, ${s}, ${s}, 1] in [-1, 1], got [${x.shape}]`);
    }
  }

  /** Penultimate-layer features [B, f] (after ReLU). Call inside tf.tidy. */
  features(x: tf.Tensor): tf.Tensor2D {
    this.checkInput(x);
    let h: tf.Tensor4D = tf.relu(this.conv1.apply(x));
    h = tf.maxPool(h, 2, 2, 'valid');
    h = tf.relu(this.conv2.apply(h));
    h = tf.maxPool(h, 2, 2, 'valid');
    const flat = tf.reshape(h, [h.shape[0], this.flatDim]) as tf.Tensor2D;
    return tf.relu(this.fc.apply(flat)) as tf.Tensor2D;
  }

  /** Builds a network from a safetensors file written by `save` (its config is in the metadata; none: the default). */
  static load(path: string, name = 'fashion_cnn'): { net: FashionCnn; metadata: Record<string, string> } {
    return loadClassifier(path, (config: FashionCnnConfig) => new FashionCnn(config, 0, name), { kind: 'FashionCnn', defaultConfig: DEFAULT_FASHION_CNN });
  }
}
