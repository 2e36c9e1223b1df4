import { z } from 'zod';
import { formatIssues } from '../../../core/config/load.js';
import type { NetworkContext } from '../../../core/plugin.js';
import { Rng } from '../../../core/random.js';
import type { ImageDenoiserNetwork } from './common.js';
import { imageModelSchema, type ImageModelConfig, type ImageModelConfigInput } from './config.js';
import { ResNetDenoiser } from './resnet.js';
import { UNet } from './unet.js';

export * from './config.js';
export type { ImageDenoiserNetwork } from './common.js';
export { ImageDenoiserBase } from './common.js';
export { UNet } from './unet.js';
export { ResNetDenoiser } from './resnet.js';
export { AttentionBlock2d, Downsample, ResBlock, Upsample, upsampleNearest2x, type BlockContext, type DownsampleKind } from './blocks.js';

/** Validates (and fills the defaults of) an image `model` config; throws one line naming the bad keys. */
export function parseImageModelConfig(config: unknown, where = 'model'): ImageModelConfig {
  const r = imageModelSchema.safeParse(config ?? {});
  if (!r.success) throw new Error(formatIssues(where, r.error));
  return r.data;
}

/**
 * Builds the image denoiser a config names. `config` may be partial (the
 * defaults are applied); all initial weights come from `ctx.rng`.
 */
export function createImageNetwork(config: ImageModelConfigInput | ImageModelConfig, ctx: NetworkContext): ImageDenoiserNetwork {
  const c = parseImageModelConfig(config);
  return c.arch === 'unet' ? new UNet(c, ctx) : new ResNetDenoiser(c, ctx);
}

/**
 * Trainable parameters of the default U-Net and the default ResNet for an
 * example shape (default 28x28x1, Fashion-MNIST), by building and disposing
 * both (needs an active tfjs backend).
 */
export function defaultParameterCounts(exampleShape: readonly [number, number, number] = [28, 28, 1], numClasses?: number): { unet: number; resnet: number } {
  const count = (arch: 'unet' | 'resnet'): number => {
    const net = createImageNetwork({ arch, class_conditional: numClasses !== undefined }, { exampleShape, numClasses, rng: new Rng(0) });
    try {
      return net.parameterCount();
    } finally {
      net.dispose();
    }
  };
  return { unet: count('unet'), resnet: count('resnet') };
}

/** The zod schema itself, for plugins (`modelSchema`). */
export const imageModelConfigSchema: z.ZodType<ImageModelConfig> = imageModelSchema;
