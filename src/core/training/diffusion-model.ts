import * as tf from '@tensorflow/tfjs';
import { diffusionFromConfig, type DiffusionConfig } from '../config/diffusion.js';
import { dsmPerSampleLossGivenNoise } from '../objectives.js';
import { makeDenoiser } from '../parametrizations.js';
import { resolveModuleSpecifier } from '../parallel/replica.js';
import type { Batch, TrainableModel } from '../parallel/types.js';
import type { AnyModalityPlugin, DenoiserNetwork, PluginSource } from '../plugin.js';
import { Rng } from '../random.js';

/**
 * The model factory that trainers (in-process or in worker threads) call:
 * a plugin's network plus the configured DSM objective, as a TrainableModel.
 * Everything it needs arrives as JSON, so a worker can rebuild it.
 */
export interface DiffusionModelOptions {
  readonly plugin: PluginSource;
  /** The run config's `model` and `diffusion` sections. */
  readonly model: unknown;
  readonly diffusion: DiffusionConfig;
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  /** The data source's dataShape / dataInfo (sources whose examples the network encodes). */
  readonly dataShape?: readonly number[];
  readonly dataInfo?: unknown;
  /** Seed of the initial weights. */
  readonly seed: number;
}

/** The batch entries a diffusion training step receives (all drawn on the main thread). */
export interface DiffusionBatchKeys {
  /** Clean examples [B, ...] (sources in diffusion space). */
  readonly x0?: tf.Tensor;
  /** Examples in data space (e.g. int32 token ids), for sources with a dataShape: the network's encoding maps them to x0. */
  readonly data?: tf.Tensor;
  /** Standard normal noise, x0's shape. */
  readonly eps: tf.Tensor;
  /** Noise level per row [B]. */
  readonly sigma: tf.Tensor;
  /** Class ids [B] (int32), the null class where dropped. */
  readonly labels?: tf.Tensor;
}

/** Plugins handed over as objects (no importable source): usable by in-process trainers only. */
const inProcessPlugins = new Map<string, AnyModalityPlugin>();
const IN_PROCESS = 'difflab:in-process';

/** A PluginSource for a plugin object: its own `source` when it has one, else an in-process handle. */
export function pluginSource(plugin: AnyModalityPlugin): { source: PluginSource; importable: boolean } {
  if (plugin.source) return { source: plugin.source, importable: true };
  inProcessPlugins.set(plugin.id, plugin);
  return { source: { module: IN_PROCESS, exportName: plugin.id }, importable: false };
}

export async function importPlugin(source: PluginSource): Promise<AnyModalityPlugin> {
  if (source.module === IN_PROCESS) {
    const p = inProcessPlugins.get(source.exportName);
    if (!p) throw new Error(`plugin '${source.exportName}' has no importable source, so it cannot be used from a worker thread`);
    return p;
  }
  const mod = (await import(resolveModuleSpecifier(source.module))) as Record<string, unknown>;
  const plugin = mod[source.exportName] as AnyModalityPlugin | undefined;
  if (!plugin || typeof plugin.createNetwork !== 'function') {
    throw new Error(`module '${source.module}' has no modality plugin export '${source.exportName}'`);
  }
  return plugin;
}

/** Builds the network and DSM loss for a plugin object already in hand. */
export function diffusionModel(plugin: AnyModalityPlugin, options: Omit<DiffusionModelOptions, 'plugin'>): TrainableModel & { net: DenoiserNetwork } {
  const parts = diffusionFromConfig(options.diffusion);
  const ctx = {
    exampleShape: options.exampleShape,
    rng: new Rng(options.seed),
    ...(options.numClasses !== undefined ? { numClasses: options.numClasses } : {}),
    ...(options.dataShape !== undefined ? { dataShape: options.dataShape } : {}),
    ...(options.dataInfo !== undefined ? { dataInfo: options.dataInfo } : {}),
  };
  const net = plugin.createNetwork(options.model, ctx);
  if (options.dataShape !== undefined && !net.encoding) {
    net.dispose();
    throw new Error(`plugin '${plugin.id}': its data source yields data-space examples (dataShape) but its network has no encoding`);
  }
  const rawNet = (x: tf.Tensor, c: tf.Tensor1D, cond?: { labels?: tf.Tensor1D }) => net.apply(x, c, cond);
  const denoiser = makeDenoiser(rawNet, parts.parametrization);
  return {
    net,
    variables: net.variables,
    loss(batch: Batch): tf.Scalar {
      return tf.tidy(() => {
        const { x0: given, data, eps, sigma, labels } = batch as unknown as DiffusionBatchKeys;
        const cond = labels ? { labels: labels as tf.Tensor1D } : undefined;
        // A learned encoding runs inside the tape, so its variables train with the denoiser (Diffusion-LM, sec. 4.1).
        const x0 = data !== undefined && net.encoding ? net.encoding.encode(data) : given;
        if (!x0) throw new Error('diffusion model: the batch has neither x0 nor data');
        const sigmas = sigma.dataSync();
        const perSample = dsmPerSampleLossGivenNoise(rawNet, parts.parametrization, x0, sigmas, eps, parts.objective, cond);
        let loss = tf.mean(perSample) as tf.Scalar;
        if (plugin.lossAdapter) {
          const ex = data ?? x0;
          const extra = plugin.lossAdapter.extraLoss(labels ? { x: ex, labels: labels as tf.Tensor1D } : { x: ex }, net, {
            x0,
            eps,
            sigma: sigma as tf.Tensor1D,
            denoiser,
            sigmaMin: parts.schedule.sigmaMin,
            sigmaMax: parts.schedule.sigmaMax,
            model: options.model,
          });
          loss = tf.add(loss, extra);
        }
        return loss;
      });
    },
    dispose() {
      // The trainer disposes `variables`; nothing else is held.
    },
  };
}

/** The factory export workers call (FactorySpec.exportName = 'createDiffusionModel'). */
export async function createDiffusionModel(options: DiffusionModelOptions): Promise<TrainableModel> {
  const plugin = await importPlugin(options.plugin);
  const { net: _net, ...model } = diffusionModel(plugin, options);
  return model;
}
