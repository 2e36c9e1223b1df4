import type { ModalityPlugin } from '../../core/plugin.js';
import { imageDataSchema, type ImageDataConfig } from './config.js';
import { openImageData } from './data/index.js';
import { createImageNetwork, imageModelConfigSchema, type ImageModelConfig } from './networks/index.js';
import { loadExternalExtractor, loadFashionClassifier } from './classifier/index.js';
import { writeImageGrid, writeTrajectoryStrip } from './writers.js';

/**
 * The image modality: Fashion-MNIST/MNIST IDX files, PNG/JPEG folders (sharp)
 * and CIFAR-10 binaries in; U-Net and ResNet denoisers; PNG grids out.
 */
export const imagePlugin: ModalityPlugin<ImageDataConfig, ImageModelConfig> = {
  id: 'image',
  description: 'images [H, W, C] in [-1, 1]: IDX, PNG/JPEG folders, CIFAR-10; U-Net and ResNet denoisers',
  source: { module: import.meta.url, exportName: 'imagePlugin' },
  dataSchema: imageDataSchema as unknown as ModalityPlugin<ImageDataConfig, ImageModelConfig>['dataSchema'],
  modelSchema: imageModelConfigSchema,
  openData: (config, ctx) => openImageData(config, ctx),
  createNetwork: (config, ctx) => createImageNetwork(config, ctx),
  // The WriteContext is not needed: a grid of [H, W, C] images in [-1, 1] says everything about itself.
  async writeSamples(x, path) {
    const written = await writeImageGrid(x, path);
    return [written.path];
  },
  async writeTrajectory(frames, path) {
    // Top row: the noisy state x at each sigma; bottom row: the denoised estimate D(x; sigma).
    // Each frame is stretched to its own range, since x leaves [-1, 1] at large sigma.
    const written = await writeTrajectoryStrip([frames.map((f) => f.x), frames.map((f) => f.denoised)], path, { scaling: 'minmax' });
    return [written.path];
  },
  async featureExtractor(info, model) {
    if (model) return loadExternalExtractor({ model });
    const [h, w, c] = info.exampleShape;
    if (h === 28 && w === 28 && c === 1) return (await loadFashionClassifier()).extractor;
    throw new Error(
      `no built-in feature network for [${info.exampleShape.join(', ')}] images (the committed classifier is for 28x28x1 Fashion-MNIST); pass --features <model.json> (a tfjs graph or layers model, e.g. Inception-v3)`,
    );
  },
};

export * from './config.js';
export * from './data/index.js';
export * from './networks/index.js';
export * from './writers.js';
export * from './classifier/index.js';
