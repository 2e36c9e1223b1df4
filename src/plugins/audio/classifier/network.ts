import * as tf from '@tensorflow/tfjs';
import { Conv2d, Linear } from '../../../core/nn/index.js';
import { Rng } from '../../../core/random.js';
import { ClassifierNetwork, loadClassifier, type ClassifierConfig } from '../../../core/training/classifier.js';
import { DEFAULT_LOG_MEL, LogMelFrontEnd, type LogMelConfig } from './frontend.js';

/**
 * A small spoken-digit classifier for 8 kHz waveforms (FSDD), built from
 * difflab's own layers so it trains with difflab's trainers on wasm:
 *
 *   waveform [B, L, 1] -> log-mel dB [B, T, 40] (tf ops, see frontend.ts),
 *     standardized with the training clips' mean and std
 *   3 x (conv 3x3, ReLU, max-pool 2)        channels c1, c2, c3; [T, 40] -> [T/8, 5]
 *   mean and max over time of the [T/8, 5 * c3] sequence, concatenated
 *   linear -> f, ReLU                        the f-d *features* (penultimate layer)
 *   dropout (training only), linear f -> 10  the logits
 *
 * It plays, for audio, the part Inception-v3 plays for FID/IS on images
 * (Heusel et al. 2017, https://arxiv.org/abs/1706.08500; Salimans et al.
 * 2016, https://arxiv.org/abs/1606.03498) and the part DiffWave's SC09
 * ResNeXt classifier plays in Kong et al. 2021
 * (https://arxiv.org/abs/2009.09761, Sec. 5.3 / Table 2): FD on the
 * features, IS / mIS / AM on the softmax.
 *
 * Pooling over time makes the network length-agnostic (any L whose
 * spectrogram has at least 8 frames) and insensitive to where a digit sits
 * in its window, which is what a generator's output needs: the audio data
 * places clips at random offsets in zero-padded windows (crop/pad: random),
 * and samples inherit that. Features are still only comparable between sets
 * of the same clip length, since the mean over time includes the silence
 * around the word — the metrics always compare samples with real clips cut
 * to the run's own length.
 */
export interface DigitCnnConfig extends ClassifierConfig {
  readonly frontEnd: LogMelConfig;
  /** Standardization of the log-mel input, (dB - mean) / std: measured on the training clips. */
  readonly inputMean: number;
  readonly inputStd: number;
  /** Channels of the three conv layers. */
  readonly channels: readonly [number, number, number];
  /** Clip length (samples) of the training windows; the net accepts others, see above. */
  readonly length: number;
}

export const DEFAULT_DIGIT_CNN: DigitCnnConfig = {
  frontEnd: DEFAULT_LOG_MEL,
  inputMean: 0,
  inputStd: 1,
  channels: [16, 32, 64],
  features: 128,
  classes: 10,
  dropout: 0.2,
  length: 6000,
};

/** Max-pools (2x2) in the CNN: time and mel axes shrink by 2^POOLS. */
const POOLS = 3;

/** The head, dropout, save / assign / load: core's `ClassifierNetwork`. */
export class DigitCnn extends ClassifierNetwork<DigitCnnConfig> {
  readonly frontEnd: LogMelFrontEnd;
  readonly convs: readonly Conv2d[];
  readonly fc: Linear;
  readonly head: Linear;
  /** Width of each time step after the convs: (nMels / 8) * c3. */
  readonly stepDim: number;

  constructor(config: DigitCnnConfig = DEFAULT_DIGIT_CNN, seed = 0, name = 'digit_cnn') {
    const { channels, features, classes, frontEnd } = config;
    const melOut = Math.floor(frontEnd.nMels / 2 ** POOLS);
    if (melOut < 1) throw new Error(`DigitCnn: nMels ${frontEnd.nMels} is too few for ${POOLS} 2x pools (need >= ${2 ** POOLS})`);
    if (!(config.inputStd > 0)) throw new Error(`DigitCnn: inputStd must be positive, got ${config.inputStd}`);
    // The front end validates its config before any variable exists (nothing to free on a bad config).
    const logMel = new LogMelFrontEnd(frontEnd);
    super(name, config, 'DigitCnn');
    this.frontEnd = logMel;
    const root = this.scope(new Rng(seed));
    const ins = [1, channels[0], channels[1]];
    this.convs = channels.map((c, i) => new Conv2d(root.child('conv').child(i), ins[i]!, c, { kernel: 3 }));
    this.stepDim = melOut * channels[2];
    this.fc = new Linear(root.child('fc'), 2 * this.stepDim, features);
    this.head = new Linear(root.child('head'), features, classes);
  }

  /** Shortest waveform the net takes: enough frames for the three pools. */
  get minLength(): number {
    const { hop, nFft } = this.config.frontEnd;
    // frames(L) = ceil(L / hop) - nFft / hop + 1 >= 2^POOLS
    return (2 ** POOLS + nFft / hop - 2) * hop + 1;
  }

  /** Standardized log-mel input [B, T, nMels, 1]. Call inside tf.tidy. */
  logMel(x: tf.Tensor): tf.Tensor4D {
    if (!(x.rank === 3 && x.shape[2] === 1) && x.rank !== 2) {
      throw new Error(`DigitCnn: expected waveforms [B, L, 1] at ${this.config.frontEnd.sampleRate} Hz, got [${x.shape}]`);
    }
    if ((x.shape[1] as number) < this.minLength) {
      throw new Error(`DigitCnn: waveforms of ${x.shape[1]} samples are too short (at least ${this.minLength} at ${this.config.frontEnd.sampleRate} Hz)`);
    }
    const db = this.frontEnd.apply(x);
    const z = tf.div(tf.sub(db, this.config.inputMean), this.config.inputStd);
    return tf.expandDims(z, 3) as tf.Tensor4D;
  }

  /** Penultimate-layer features [B, f] (after ReLU). Call inside tf.tidy. */
  features(x: tf.Tensor): tf.Tensor2D {
    let h: tf.Tensor4D = this.logMel(x);
    for (const conv of this.convs) h = tf.maxPool(tf.relu(conv.apply(h)), 2, 2, 'valid');
    const [b, t] = h.shape as [number, number, number, number];
    const seq = tf.reshape(h, [b, t, this.stepDim]);
    const pooled = tf.concat([tf.mean(seq, 1), tf.max(seq, 1)], 1) as tf.Tensor2D;
    return tf.relu(this.fc.apply(pooled)) as tf.Tensor2D;
  }

  /** Builds a network from a safetensors file written by `save` (its config is in the metadata). */
  static load(path: string, name = 'digit_cnn'): { net: DigitCnn; metadata: Record<string, string> } {
    return loadClassifier(path, (config: DigitCnnConfig) => new DigitCnn(config, 0, name), { kind: 'DigitCnn' });
  }

  override dispose(): void {
    super.dispose();
    this.frontEnd.dispose();
  }
}
