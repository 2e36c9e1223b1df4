import type { DataContext } from '../../../core/plugin.js';
import type { ImageDataConfig } from '../config.js';
import { openCifar10Data } from './cifar.js';
import { openFolderData, type FolderOpenOptions } from './folder.js';
import { openIdxData } from './idx.js';
import type { ImageDataSource } from './source.js';

export * from './source.js';
export * from './paths.js';
export * from './pixels.js';
export * from './idx.js';
export * from './cifar.js';
export * from './folder.js';

/** Opens the `ctx.split` split of an image data set described by a validated `data` section. */
export async function openImageData(cfg: ImageDataConfig, ctx: DataContext, opts: FolderOpenOptions = {}): Promise<ImageDataSource> {
  switch (cfg.format) {
    case 'idx':
      return openIdxData(cfg, ctx, opts);
    case 'folder':
      return openFolderData(cfg, ctx, opts);
    case 'cifar10':
      return openCifar10Data(cfg, ctx, opts);
  }
}
