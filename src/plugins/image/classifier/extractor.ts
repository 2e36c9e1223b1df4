import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FeatureExtractor } from '../../../core/metrics/types.js';
import { FashionCnn } from './network.js';
import type { ClassifierRecord } from './train.js';

/** The committed weights of difflab's Fashion-MNIST classifier, and their sidecar. */
export const FASHION_CLASSIFIER_WEIGHTS = fileURLToPath(new URL('./fashion-classifier.safetensors', import.meta.url));
export const FASHION_CLASSIFIER_RECORD = fileURLToPath(new URL('./fashion-classifier.json', import.meta.url));

/**
 * A FashionCnn as a metrics `FeatureExtractor`: features are the 64-d
 * penultimate layer (after ReLU), logits the last layer (softmax = p(y|x)).
 * Input: images [B, 28, 28, 1] in [-1, 1], the image plugin's diffusion space.
 */
export class FashionClassifierExtractor implements FeatureExtractor {
  readonly id: string;
  readonly featureDim: number;
  readonly numClasses: number;

  constructor(
    readonly net: FashionCnn,
    id = 'difflab-fashion-cnn',
  ) {
    this.id = id;
    this.featureDim = net.featureDim;
    this.numClasses = net.numClasses;
  }

  features(x: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => this.net.features(x));
  }

  logits(x: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => this.net.logits(x));
  }

  featuresAndLogits(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = tf.tidy(() => this.net.features(x));
    const logits = tf.tidy(() => this.net.logitsFromFeatures(features));
    return { features, logits };
  }

  dispose(): void {
    this.net.dispose();
  }
}

/**
 * Loads the committed classifier (or another file written by
 * `trainFashionClassifier`) as a FeatureExtractor; `record` is its JSON
 * sidecar when present. The id names the weights' sha256, so metrics computed
 * with different weights are never mixed up. Dispose the extractor when done.
 */
export function loadFashionClassifier(path: string = FASHION_CLASSIFIER_WEIGHTS): { extractor: FashionClassifierExtractor; record?: ClassifierRecord } {
  const { net } = FashionCnn.load(path);
  const sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
  const sidecar = path.replace(/\.safetensors$/, '') + '.json';
  let record: ClassifierRecord | undefined;
  if (existsSync(sidecar)) record = JSON.parse(readFileSync(sidecar, 'utf8')) as ClassifierRecord;
  if (record && record.sha256 !== sha256) {
    net.dispose();
    throw new Error(`${sidecar} describes other weights (sha256 ${record.sha256.slice(0, 12)}, file ${sha256.slice(0, 12)}): retrain or restore both together`);
  }
  const id = `difflab-fashion-cnn@${sha256.slice(0, 12)}`;
  return { extractor: new FashionClassifierExtractor(net, id), ...(record ? { record } : {}) };
}
