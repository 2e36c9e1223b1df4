import type { DataContext, Split } from '../../../core/plugin.js';
import { Rng } from '../../../core/random.js';
import { imageDataSchema } from '../config.js';
import { openImageData, type ImageDataSource } from '../data/index.js';

/** Opens a split of the Fashion-MNIST IDX files in `dataDir` through the image plugin's data layer. */
export async function openFashion(dataDir: string, split: Split, randomFlip = false, log: (s: string) => void = () => {}): Promise<ImageDataSource> {
  const cfg = imageDataSchema.parse({ format: 'idx', path: dataDir, random_flip: randomFlip });
  const ctx: DataContext = { split, baseDir: process.cwd(), rng: new Rng(0), log };
  return openImageData(cfg, ctx);
}
