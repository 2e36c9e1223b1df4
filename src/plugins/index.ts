import type { AnyModalityPlugin } from '../core/plugin.js';
import { audioPlugin } from './audio/index.js';
import { imagePlugin } from './image/index.js';
import { textPlugin } from './text/index.js';

/**
 * The modality plugins that ship with difflab, registered by the composition
 * root. Each lives in its own folder under src/plugins.
 */
export function builtinPlugins(): AnyModalityPlugin[] {
  return [imagePlugin, audioPlugin, textPlugin];
}
