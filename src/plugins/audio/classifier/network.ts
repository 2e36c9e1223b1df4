import * as tf from '@tensorflow/tfjs';
import { readSafetensors, writeSafetensors, type NamedArray } from '../../../core/io/safetensors.js';
import { Conv2d, Linear, ParamStore } from '../../../core/nn/index.js';
import { Rng } from '../../../core/random.js';
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
export interface DigitCnnConfig {
  readonly frontEnd: LogMelConfig;
  /** Standardization of the log-mel input, (dB - mean) / std: measured on the training clips. */
  readonly inputMean: number;
  readonly inputStd: number;
  /** Channels of the three conv layers. */
  readonly channels: readonly [number, number, number];
  /** Width of the feature layer. */
  readonly features: number;
  readonly classes: number;
  /** Dropout before the last layer, in training. */
  readonly dropout: number;
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

export class DigitCnn {
  readonly store: ParamStore;
  readonly frontEnd: LogMelFrontEnd;
  readonly convs: readonly Conv2d[];
  readonly fc: Linear;
  readonly head: Linear;
  /** Width of each time step after the convs: (nMels / 8) * c3. */
  readonly stepDim: number;

  constructor(
    readonly config: DigitCnnConfig = DEFAULT_DIGIT_CNN,
    seed = 0,
    name = 'digit_cnn',
  ) {
    const { channels, features, classes, frontEnd } = config;
    const melOut = Math.floor(frontEnd.nMels / 2 ** POOLS);
    if (melOut < 1) throw new Error(`DigitCnn: nMels ${frontEnd.nMels} is too few for ${POOLS} 2x pools (need >= ${2 ** POOLS})`);
    if (!(config.inputStd > 0)) throw new Error(`DigitCnn: inputStd must be positive, got ${config.inputStd}`);
    // The front end validates its config before any variable exists (nothing to free on a bad config).
    this.frontEnd = new LogMelFrontEnd(frontEnd);
    this.store = new ParamStore(name);
    const root = this.store.scope(new Rng(seed));
    const ins = [1, channels[0], channels[1]];
    this.convs = channels.map((c, i) => new Conv2d(root.child('conv').child(i), ins[i]!, c, { kernel: 3 }));
    this.stepDim = melOut * channels[2];
    this.fc = new Linear(root.child('fc'), 2 * this.stepDim, features);
    this.head = new Linear(root.child('head'), features, classes);
  }

  get variables(): tf.Variable[] {
    return this.store.variables;
  }

  get featureDim(): number {
    return this.config.features;
  }

  get numClasses(): number {
    return this.config.classes;
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

  /** Class logits [B, classes]; `dropoutMask` [B, f] in training only. Call inside tf.tidy. */
  logits(x: tf.Tensor, dropoutMask?: tf.Tensor): tf.Tensor2D {
    return this.logitsFromFeatures(this.features(x), dropoutMask);
  }

  logitsFromFeatures(f: tf.Tensor2D, dropoutMask?: tf.Tensor): tf.Tensor2D {
    return this.head.apply(dropoutMask ? tf.mul(f, dropoutMask) : f) as tf.Tensor2D;
  }

  /**
   * An inverted-dropout mask (Srivastava et al. 2014,
   * https://jmlr.org/papers/v15/srivastava14a.html): row i draws from
   * Rng.derive(seed, step, rowOffset + i), so a row's mask does not depend on
   * how a data-parallel trainer split the batch.
   */
  dropoutMask(rows: number, seed: number, step: number, rowOffset: number): tf.Tensor2D | undefined {
    const rate = this.config.dropout;
    if (!(rate > 0)) return undefined;
    const f = this.config.features;
    const keep = 1 - rate;
    const mask = new Float32Array(rows * f);
    for (let i = 0; i < rows; i++) {
      const rng = Rng.derive(seed, step, rowOffset + i);
      for (let j = 0; j < f; j++) mask[i * f + j] = rng.uniform() < keep ? 1 / keep : 0;
    }
    return tf.tensor2d(mask, [rows, f]);
  }

  /** Writes the weights (keys: variable paths, e.g. `conv.0.weight`) and the config (metadata) to a safetensors file, atomically. */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const tensors: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const { path: key, variable } of this.store.named()) {
      tensors[key] = { shape: variable.shape, data: (await variable.data()) as Float32Array };
    }
    writeSafetensors(path, tensors, { ...metadata, config: JSON.stringify(this.config) });
  }

  /** Copies weights in (by variable path); every variable must be present with its shape. */
  assign(weights: ReadonlyMap<string, Pick<NamedArray, 'shape' | 'data'>>, source = 'weights'): void {
    for (const { path, variable } of this.store.named()) {
      const w = weights.get(path);
      if (!w) throw new Error(`${source}: no tensor '${path}' (DigitCnn needs ${this.store.named().map((n) => n.path).join(', ')})`);
      if (w.shape.length !== variable.rank || w.shape.some((d, i) => d !== variable.shape[i])) {
        throw new Error(`${source}: tensor '${path}' has shape [${w.shape}], expected [${variable.shape}]`);
      }
      const t = tf.tensor(w.data as Float32Array, variable.shape, 'float32');
      variable.assign(t);
      t.dispose();
    }
  }

  /** Builds a network from a safetensors file written by `save` (its config is in the metadata). */
  static load(path: string, name = 'digit_cnn'): { net: DigitCnn; metadata: Record<string, string> } {
    const { tensors, metadata } = readSafetensors(path);
    if (!metadata['config']) throw new Error(`${path}: no 'config' in the safetensors metadata (not a DigitCnn file)`);
    let config: DigitCnnConfig;
    try {
      config = JSON.parse(metadata['config']) as DigitCnnConfig;
    } catch {
      throw new Error(`${path}: metadata 'config' is not valid JSON`);
    }
    const net = new DigitCnn(config, 0, name);
    try {
      net.assign(tensors, path);
    } catch (err) {
      net.dispose();
      throw err;
    }
    return { net, metadata };
  }

  dispose(): void {
    this.store.dispose();
    this.frontEnd.dispose();
  }
}
