import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { selectBackend } from '../core/backend/select.js';
import { parseRunConfig, type RunConfig } from '../core/config/load.js';
import { loadModel, type LoadedModel } from '../core/generate.js';
import type { AnyModalityPlugin, ExampleInfo } from '../core/plugin.js';
import { latestCheckpointDir, loadCheckpoint } from '../core/training/checkpoint.js';
import { createDifflab } from '../container.js';

/** What the commands that read a trained run share: loading it, option parsers, the backend choice. */

/** Loads a run's latest checkpoint and rebuilds its model on the chosen backend. */
export async function openRun(
  program: Command,
  runDir: string,
  ema: boolean,
): Promise<{
  plugin: AnyModalityPlugin;
  model: LoadedModel;
  config: RunConfig;
  ckpt: ReturnType<typeof loadCheckpoint>;
  weightsKind: 'EMA' | 'raw';
  /** Where the run's relative data paths resolve (after the working folder): its config file's folder, as at training time. */
  dataBaseDir: string;
}> {
  const difflab = createDifflab();
  const ckptDir = latestCheckpointDir(runDir);
  if (!ckptDir) throw new Error(`${runDir}: no checkpoint found (train it first with difflab train)`);
  const ckpt = loadCheckpoint(ckptDir);
  const config = parseRunConfig(ckpt.meta.config, join(ckptDir, 'state.json'), difflab.plugins);
  await selectBackend(backendFor(program, config));
  const plugin = difflab.plugins.get(config.modality);
  const useEma = ema && ckpt.ema !== undefined;
  const info = {
    exampleShape: ckpt.meta.exampleShape,
    ...(ckpt.meta.numClasses !== undefined ? { numClasses: ckpt.meta.numClasses } : {}),
    ...(ckpt.meta.dataShape !== undefined ? { dataShape: ckpt.meta.dataShape } : {}),
    ...(ckpt.meta.dataInfo !== undefined ? { dataInfo: ckpt.meta.dataInfo } : {}),
  };
  const model = loadModel(plugin, config, info, useEma ? ckpt.ema! : ckpt.state.weights);
  // `difflab train` records the config file's absolute path; a relative one (a run folder shipped
  // with the package, e.g. models/audio-fsdd) is relative to the run folder.
  const configFile = ckpt.meta.configFile;
  const dataBaseDir = configFile ? dirname(isAbsolute(configFile) ? configFile : resolve(runDir, configFile)) : process.cwd();
  return { plugin, model, config, ckpt, weightsKind: useEma ? 'EMA' : 'raw', dataBaseDir };
}

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
}

export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${v}'`);
  return n;
}

/** --backend wins over DIFFLAB_BACKEND, which wins over the config's `backend`. */
export function backendFor(program: Command, config: RunConfig): string | undefined {
  const forced = program.opts<{ backend?: string }>().backend;
  if (forced) return forced;
  if (process.env['DIFFLAB_BACKEND']) return undefined;
  return config.backend === 'auto' ? undefined : config.backend;
}

/** A loaded model's example shape and class count: the `info` of a WriteContext. */
export function exampleInfo(model: LoadedModel): ExampleInfo {
  return {
    exampleShape: model.exampleShape,
    ...(model.numClasses !== undefined ? { numClasses: model.numClasses } : {}),
    ...(model.dataShape !== undefined ? { dataShape: model.dataShape } : {}),
    ...(model.dataInfo !== undefined ? { dataInfo: model.dataInfo } : {}),
  };
}


export function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number > 0, got '${v}'`);
  return n;
}
