import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../../core/io/atomic.js';
import type { FeatureExtractor } from '../../../core/metrics/types.js';

/**
 * Plugging another image network into difflab's metrics — most often
 * Inception-v3, to report the standard FID (Heusel et al. 2017,
 * https://arxiv.org/abs/1706.08500: Inception-v3's 2048-d pool3 features) and
 * IS (Salimans et al. 2016: its 1008/1000-way softmax).
 *
 * Two layers:
 * - `ExternalImageNetwork`: any function from preprocessed images
 *   [B, S, S, C] to features (a [B, F] vector or a [B, h, w, F] map, which is
 *   average-pooled) and optionally logits;
 * - `loadExternalExtractor`: a tfjs-format model (graph model, e.g. a
 *   converted Inception-v3, or a layers model) read from disk.
 *
 * Preprocessing (`preprocessImages`) takes difflab images in [-1, 1],
 * repeats a grey channel to 3, resizes to `size` (299 for Inception-v3)
 * bilinearly and maps [-1, 1] to the network's input `range`. The original
 * TF FID code feeds Inception [-1, 1] after TF1's legacy `resize_bilinear`
 * (`halfPixelCenters: false`, the default here); pytorch-fid resizes with
 * PyTorch's `interpolate(align_corners=False)`, which is
 * `halfPixelCenters: true`. Parmar et al. 2022 ("On Aliased Resizing and
 * Surprising Subtleties in GAN Evaluation", https://arxiv.org/abs/2104.11222)
 * show such choices move FID noticeably: only compare numbers computed the
 * same way. TF-Hub's tfjs Inception feature-vector models expect [0, 1]:
 * pass `range: [0, 1]` for those.
 *
 * Without network access no real Inception weights can be fetched here, so
 * this code is tested with small graph and layers models created in the
 * tests; the numbers it gives with real Inception weights have not been
 * compared with pytorch-fid.
 */
export interface ImagePreprocessing {
  /** Output side length (square). */
  readonly size: number;
  /** Channels the network takes: 3 repeats grey input; 1 averages RGB input. */
  readonly channels: 1 | 3;
  /** Value range the network expects, mapped linearly from difflab's [-1, 1]. */
  readonly range: readonly [number, number];
  /** Bilinear resize convention (see above). */
  readonly halfPixelCenters: boolean;
}

export const INCEPTION_PREPROCESSING: ImagePreprocessing = { size: 299, channels: 3, range: [-1, 1], halfPixelCenters: false };

/** difflab images [B, H, W, 1 | 3] in [-1, 1] -> the network's input [B, size, size, channels]. */
export function preprocessImages(x: tf.Tensor, p: ImagePreprocessing): tf.Tensor4D {
  if (x.rank !== 4 || (x.shape[3] !== 1 && x.shape[3] !== 3)) {
    throw new Error(`preprocessImages: expected images [B, H, W, 1 or 3], got [${x.shape}]`);
  }
  return tf.tidy(() => {
    let y = x as tf.Tensor4D;
    if (y.shape[3] !== p.channels) y = p.channels === 3 ? tf.tile(y, [1, 1, 1, 3]) : tf.mean(y, 3, true);
    if (y.shape[1] !== p.size || y.shape[2] !== p.size) y = tf.image.resizeBilinear(y, [p.size, p.size], false, p.halfPixelCenters);
    const [lo, hi] = p.range;
    if (lo !== -1 || hi !== 1) y = tf.add(tf.mul(tf.add(y, 1), (hi - lo) / 2), lo);
    return y;
  });
}

/** A network seen from the metrics: preprocessed images in, features (and logits) out. */
export interface ExternalImageNetwork {
  readonly id: string;
  /** Returns [B, F] or [B, h, w, F] features (pooled by the adapter) and optionally [B, classes] logits. */
  run(x: tf.Tensor4D): { features: tf.Tensor; logits?: tf.Tensor };
  dispose?(): void;
}

/** Global average pooling of a [B, h, w, F] map; [B, F] passes through. */
export function poolFeatures(f: tf.Tensor): tf.Tensor2D {
  if (f.rank === 2) return f as tf.Tensor2D;
  if (f.rank === 4) return tf.mean(f, [1, 2]) as tf.Tensor2D;
  throw new Error(`features must be [B, F] or [B, h, w, F], got [${f.shape}]`);
}

/** An ExternalImageNetwork + preprocessing as a metrics FeatureExtractor. */
export class ExternalImageExtractor implements FeatureExtractor {
  readonly id: string;

  constructor(
    readonly net: ExternalImageNetwork,
    readonly preprocessing: ImagePreprocessing,
    readonly featureDim: number,
    readonly numClasses?: number,
  ) {
    this.id = net.id;
  }

  featuresAndLogits(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    return tf.tidy(() => {
      const out = this.net.run(preprocessImages(x, this.preprocessing));
      if (!out.logits) throw new Error(`network '${this.id}' returns no logits`);
      return { features: poolFeatures(out.features), logits: out.logits as tf.Tensor2D };
    });
  }

  features(x: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => poolFeatures(this.net.run(preprocessImages(x, this.preprocessing)).features));
  }

  get logits(): ((x: tf.Tensor) => tf.Tensor2D) | undefined {
    if (this.numClasses === undefined) return undefined;
    return (x: tf.Tensor) => this.featuresAndLogits(x).logits;
  }

  dispose(): void {
    this.net.dispose?.();
  }
}

function pathOf(location: string): string {
  return location.startsWith('file://') ? fileURLToPath(location) : resolve(location);
}

/**
 * A tfjs IOHandler for `model.json` plus weight files on the local disk.
 * The union `@tensorflow/tfjs` package has no `file://` handler in Node
 * (tfjs-node registers one, and it cannot be installed offline here), so
 * `tf.loadGraphModel('file://...')` alone fails; pass this handler instead.
 * Saving writes `model.json` and one `weights.bin`, as tfjs-node does.
 */
export function fileSystemIO(location: string): tf.io.IOHandler {
  const p = pathOf(location);
  const jsonPath = p.endsWith('.json') ? p : join(p, 'model.json');
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(readFileSync(jsonPath, 'utf8')) as tf.io.ModelJSON;
      } catch (err) {
        throw new Error(`${jsonPath}: cannot read a tfjs model.json (${(err as Error).message.split('\n')[0]})`);
      }
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          for (const rel of group.paths) {
            const file = join(dirname(jsonPath), rel);
            let b: Buffer;
            try {
              b = readFileSync(file);
            } catch {
              throw new Error(`${file}: weight file listed in ${jsonPath} cannot be read`);
            }
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [tf.io.getWeightSpecs(manifest), tf.io.concatenateArrayBuffers(buffers)];
      });
    },
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      mkdirSync(dirname(jsonPath), { recursive: true });
      const data = artifacts.weightData;
      const bytes = data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
      const manifest: tf.io.WeightsManifestConfig = [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }];
      writeFileAtomic(join(dirname(jsonPath), 'weights.bin'), new Uint8Array(bytes));
      const json: Record<string, unknown> = { modelTopology: artifacts.modelTopology, weightsManifest: manifest };
      for (const key of ['format', 'generatedBy', 'convertedBy', 'signature', 'userDefinedMetadata', 'modelInitializer', 'trainingConfig'] as const) {
        if (artifacts[key] !== undefined) json[key] = artifacts[key];
      }
      writeFileAtomic(jsonPath, JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

export interface ExternalModelOptions {
  /** A folder or `model.json` path, a `file://` URL, an http(s) URL, or an IOHandler. */
  readonly model: string | tf.io.IOHandler;
  /** For http(s) URLs, which loader to use (default 'graph'); files say it in their model.json. */
  readonly format?: 'graph' | 'layers';
  /**
   * Graph models: the node whose output are the features (e.g. Inception's
   * pool3); default: the model's first output. Layers models: a layer name;
   * default: the layer before the last.
   */
  readonly featureNode?: string;
  /** Graph models: the node giving logits (none by default). Layers models: always the model's output. */
  readonly logitsNode?: string;
  /** Layers models: their output is probabilities (softmax), not logits; its log is used as logits. */
  readonly outputIsProbability?: boolean;
  readonly preprocessing?: Partial<ImagePreprocessing>;
  /** Id recorded beside the metrics (default: derived from the location). */
  readonly id?: string;
}

/**
 * Loads a tfjs graph model (`format: graph-model`, e.g. a converted
 * Inception-v3) or layers model as a FeatureExtractor, and sizes its
 * outputs with one forward pass of a blank image. Dispose the extractor
 * (it owns the model) when done.
 */
export async function loadExternalExtractor(options: ExternalModelOptions): Promise<ExternalImageExtractor> {
  const pre: ImagePreprocessing = { ...INCEPTION_PREPROCESSING, ...options.preprocessing };
  const location = typeof options.model === 'string' ? options.model : undefined;
  const id = options.id ?? (location ? `external:${location.replace(/^file:\/\//, '')}` : 'external');
  let source: tf.io.IOHandler | string;
  let layers: boolean;
  if (typeof options.model === 'string' && /^https?:\/\//.test(options.model)) {
    source = options.model;
    layers = options.format === 'layers';
  } else {
    const handler = typeof options.model === 'string' ? fileSystemIO(options.model) : options.model;
    if (!handler.load) throw new Error(`${id}: the IOHandler cannot load`);
    // Read once, decide the loader from model.json's "format", then load from memory.
    const artifacts = await handler.load();
    layers = artifacts.format === 'layers-model' || (artifacts.format === undefined && options.format === 'layers');
    source = tf.io.fromMemory(artifacts);
  }
  let net: ExternalImageNetwork;
  if (layers) {
    const model = await tf.loadLayersModel(source);
    const featureLayer = options.featureNode ? model.getLayer(options.featureNode) : model.layers[model.layers.length - 2];
    if (!featureLayer) throw new Error(`${id}: a layers model needs at least 2 layers (features, then output)`);
    const sub = tf.model({ inputs: model.inputs, outputs: [featureLayer.output as tf.SymbolicTensor, model.outputs[0]!] });
    const takeLog = options.outputIsProbability === true;
    net = {
      id,
      run: (x) => {
        const [f, o] = sub.predict(x) as tf.Tensor[];
        return { features: f!, logits: takeLog ? tf.log(tf.maximum(o!, 1e-30)) : o! };
      },
      dispose: () => model.dispose(),
    };
  } else {
    const model = await tf.loadGraphModel(source);
    const featureNode = options.featureNode ?? model.outputNodes[0];
    if (!featureNode) throw new Error(`${id}: graph model has no output node`);
    const outputs = options.logitsNode ? [featureNode, options.logitsNode] : [featureNode];
    net = {
      id,
      run: (x) => {
        const r = model.execute(x, outputs);
        const list = Array.isArray(r) ? r : [r];
        return options.logitsNode ? { features: list[0]!, logits: list[1]! } : { features: list[0]! };
      },
      dispose: () => model.dispose(),
    };
  }
  // Size the outputs with one blank image.
  let featureDim: number;
  let numClasses: number | undefined;
  try {
    const probe = tf.tidy(() => {
      const out = net.run(preprocessImages(tf.zeros([1, pre.size, pre.size, pre.channels]), pre));
      return [poolFeatures(out.features), ...(out.logits ? [out.logits] : [])];
    });
    featureDim = probe[0]!.shape[1] as number;
    const logitsRank = probe[1]?.rank;
    numClasses = probe[1] ? (probe[1].shape[1] as number) : undefined;
    tf.dispose(probe);
    if (logitsRank !== undefined && logitsRank !== 2) throw new Error(`${id}: logits must be [B, classes], got rank ${logitsRank}`);
  } catch (err) {
    net.dispose?.();
    throw err;
  }
  return new ExternalImageExtractor(net, pre, featureDim, numClasses);
}
