import { Container } from 'inversify';
import { MODALITY_PLUGIN, PLUGIN_REGISTRY, PluginRegistry, type AnyModalityPlugin } from './core/plugin.js';
import { builtinPlugins } from './plugins/index.js';

/**
 * The composition root: the only place that knows both the core and the
 * plugins. Plugins are multi-bound under MODALITY_PLUGIN; core services get
 * what they need by token (inversify 8 with explicit tokens, no decorator
 * metadata) and never call the container themselves.
 */
export interface Difflab {
  readonly container: Container;
  readonly plugins: PluginRegistry;
}

export interface CreateDifflabOptions {
  /** Extra plugins, e.g. a modality from a separate package. */
  readonly plugins?: readonly AnyModalityPlugin[];
  /** Leave out the built-in plugins (tests, minimal embeddings). */
  readonly builtins?: boolean;
}

export function createDifflab(options: CreateDifflabOptions = {}): Difflab {
  const container = new Container();
  const plugins = [...(options.builtins === false ? [] : builtinPlugins()), ...(options.plugins ?? [])];
  for (const plugin of plugins) container.bind<AnyModalityPlugin>(MODALITY_PLUGIN).toConstantValue(plugin);
  container
    .bind<PluginRegistry>(PLUGIN_REGISTRY)
    .toResolvedValue((all: AnyModalityPlugin[]) => new PluginRegistry(all), [
      { serviceIdentifier: MODALITY_PLUGIN, isMultiple: true },
    ])
    .inSingletonScope();
  return { container, plugins: container.get<PluginRegistry>(PLUGIN_REGISTRY) };
}
