import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FeatureExtractor } from '../../../core/metrics/types.js';
import { resample } from '../resample.js';
import { DigitCnn } from './network.js';
import type { DigitClassifierRecord } from './train.js';

/** The committed weights of difflab's FSDD digit classifier, and their sidecar. */
export const DIGIT_CLASSIFIER_WEIGHTS = fileURLToPath(new URL('./digit-classifier.safetensors', import.meta.url));
export const DIGIT_CLASSIFIER_RECORD = fileURLToPath(new URL('./digit-classifier.json', import.meta.url));

export interface DigitExtractorOptions {
  /**
   * The sample rate of the waveforms that will be scored. When it differs
   * from the classifier's rate (8 kHz), each waveform is resampled to the
   * classifier's rate first (the audio data layer's Kaiser-windowed sinc
   * resampler, on the host). Default: the classifier's rate.
   */
  readonly inputRate?: number;
}

/**
 * A DigitCnn as a metrics `FeatureExtractor`: features are the penultimate
 * layer (after ReLU), logits the last layer (softmax = p(y|x), the 10
 * digits). Input: waveforms [B, L, 1], the audio plugin's diffusion space
 * (peak-normalized clips, no further scaling).
 */
export class DigitClassifierExtractor implements FeatureExtractor {
  readonly featureDim: number;
  readonly numClasses: number;

  constructor(
    readonly net: DigitCnn,
    readonly id = 'difflab-fsdd-digit-cnn',
    private readonly options: DigitExtractorOptions = {},
  ) {
    this.featureDim = net.featureDim;
    this.numClasses = net.numClasses;
  }

  /** x at the classifier's sample rate (x itself when it already is). Call inside tf.tidy. */
  private atNetRate(x: tf.Tensor): tf.Tensor {
    const from = this.options.inputRate;
    const to = this.net.config.frontEnd.sampleRate;
    if (from === undefined || from === to) return x;
    if (x.rank !== 3 || x.shape[2] !== 1) throw new Error(`${this.id}: expected waveforms [B, L, 1], got [${x.shape}]`);
    const [b, len] = x.shape as [number, number, number];
    const data = x.dataSync() as Float32Array;
    const rows = Array.from({ length: b }, (_, i) => resample(data.subarray(i * len, (i + 1) * len), from, to));
    const out = new Float32Array(b * rows[0]!.length);
    rows.forEach((r, i) => out.set(r, i * r.length));
    return tf.tensor3d(out, [b, rows[0]!.length, 1]);
  }

  features(x: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => this.net.features(this.atNetRate(x)));
  }

  logits(x: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => this.net.logits(this.atNetRate(x)));
  }

  featuresAndLogits(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = tf.tidy(() => this.net.features(this.atNetRate(x)));
    const logits = tf.tidy(() => this.net.logitsFromFeatures(features));
    return { features, logits };
  }

  dispose(): void {
    this.net.dispose();
  }
}

/**
 * Loads the committed classifier (or another file written by
 * `trainDigitClassifier`) as a FeatureExtractor; `record` is its JSON sidecar
 * when present. The id names the weights' sha256, so metrics computed with
 * different weights are never mixed up. Dispose the extractor when done.
 */
export function loadDigitClassifier(
  path: string = DIGIT_CLASSIFIER_WEIGHTS,
  options: DigitExtractorOptions = {},
): { extractor: DigitClassifierExtractor; record?: DigitClassifierRecord } {
  const { net } = DigitCnn.load(path);
  const sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
  const sidecar = path.replace(/\.safetensors$/, '') + '.json';
  let record: DigitClassifierRecord | undefined;
  if (existsSync(sidecar)) record = JSON.parse(readFileSync(sidecar, 'utf8')) as DigitClassifierRecord;
  if (record && record.sha256 !== sha256) {
    net.dispose();
    throw new Error(`${sidecar} describes other weights (sha256 ${record.sha256.slice(0, 12)}, file ${sha256.slice(0, 12)}): retrain or restore both together`);
  }
  const id = `difflab-fsdd-digit-cnn@${sha256.slice(0, 12)}`;
  return { extractor: new DigitClassifierExtractor(net, id, options), ...(record ? { record } : {}) };
}
