import { appendFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { currentBackend } from '../backend/select.js';
import { diffusionFromConfig } from '../config/diffusion.js';
import type { RunConfig } from '../config/load.js';
import { writeFileAtomic } from '../io/atomic.js';
import { DataParallelTrainer } from '../parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../parallel/local-trainer.js';
import type { HostBatch, NamedHostTensor, Trainer } from '../parallel/types.js';
import type { AnyModalityPlugin, DataSource, ExampleInfo } from '../plugin.js';
import { Rng } from '../random.js';
import { latestCheckpointDir, listCheckpoints, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { pluginSource, type DiffusionModelOptions } from './diffusion-model.js';
import { emaDecayAt, emaUpdateHost, learningRateAt, type EmaSpec, type LrSchedule } from './optim.js';

/**
 * The modality-agnostic training loop: data from the plugin, noise drawn on
 * the main thread from Rng.derive(seed, step), a trainer (in-process or
 * data-parallel workers), LR schedule, clipping, EMA, progress, metrics log,
 * atomic checkpoints and exact resume.
 */
export interface TrainRunOptions {
  readonly config: RunConfig;
  readonly plugin: AnyModalityPlugin;
  /** The run folder (checkpoints, metrics.jsonl, samples). */
  readonly outDir: string;
  /** Folder that relative data paths resolve against (the config file's folder). */
  readonly baseDir?: string;
  readonly configFile?: string;
  /** Stop after this many steps in total (overrides train.steps when smaller). */
  readonly maxSteps?: number;
  /** Continue from the last complete checkpoint in outDir. */
  readonly resume?: boolean;
  /** Progress and messages (default: stderr). */
  readonly log?: (line: string) => void;
  /** Called every step with its metrics (tests, benchmarks). */
  readonly onStep?: (m: StepMetrics) => void;
  /**
   * Called when a sample grid is due (every train.sample_every steps), with
   * the EMA weights and what the data source reported (to rebuild the model
   * and give writers their WriteContext).
   */
  readonly onSample?: (step: number, weights: readonly NamedHostTensor[], info: ExampleInfo) => Promise<void>;
  /**
   * Asked after every step (after its sample hook): true ends the run there,
   * with a checkpoint at that step, so a run stopped early (e.g. by a
   * wall-clock budget) can be resumed and sampled like any other.
   */
  readonly shouldStop?: (step: number) => boolean;
}

export interface StepMetrics {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly emaDecay: number;
  readonly itPerSec: number;
  readonly elapsedSec: number;
}

export interface TrainRunResult {
  readonly outDir: string;
  readonly steps: number;
  readonly lastLoss: number | undefined;
  readonly checkpoint: string | undefined;
  readonly workers: number;
}

export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

/** Epoch-wise shuffled example order, derived from (seed, epoch): resumable from the step alone. */
export class EpochSampler {
  private epoch = -1;
  private perm: number[] = [];

  constructor(
    private readonly size: number,
    private readonly seed: number,
  ) {
    if (size < 1) throw new TrainingError('the training set is empty');
  }

  /** Indices of the examples at global positions [start, start + n). */
  indices(start: number, n: number): number[] {
    const out: number[] = [];
    for (let p = start; p < start + n; p++) {
      const e = Math.floor(p / this.size);
      if (e !== this.epoch) {
        this.epoch = e;
        this.perm = Rng.derive(this.seed, 0x64617461, e).shuffle([...Array(this.size).keys()]);
      }
      out.push(this.perm[p % this.size] as number);
    }
    return out;
  }
}

function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function emaSpecFromConfig(ema: RunConfig['train']['ema']): EmaSpec | undefined {
  if (ema.kind === 'none') return undefined;
  if (ema.kind === 'warmup') {
    return { kind: 'warmup', invGamma: ema.inv_gamma, power: ema.power, maxValue: ema.max_value, minValue: ema.min_value, startAt: ema.start_at };
  }
  return { kind: 'halflife', halflifeExamples: ema.halflife_examples, rampupRatio: ema.rampup_ratio };
}

/** Draws the batch of one step: examples, labels (with null-class dropout), noise levels and noise. */
export function drawTrainingBatch(
  data: DataSource,
  sampler: EpochSampler,
  step: number,
  config: RunConfig,
  noise: { sample(rng: Rng, n: number): number[] },
): HostBatch {
  const B = config.train.batch_size;
  const rng = Rng.derive(config.seed, step);
  const idx = sampler.indices(step * B, B);
  const batch = data.batch(idx, rng);
  // Sources in data space (token ids) hand the network its input as `data`; it encodes them (LearnedEncoding).
  const dataSpace = data.dataShape !== undefined;
  const dataDType = batch.x.dtype === 'int32' ? 'int32' : 'float32';
  const x0 = batch.x.dataSync() as Float32Array | Int32Array;
  const xShape = [...batch.x.shape];
  const shape = dataSpace ? [B, ...data.exampleShape] : xShape;
  let labels: Int32Array | undefined;
  if (batch.labels && data.numClasses !== undefined) {
    labels = Int32Array.from(batch.labels.dataSync());
    // Classifier-free guidance training: the null class id is numClasses (Ho & Salimans 2022, Alg. 1).
    for (let i = 0; i < B; i++) if (rng.uniform() < config.train.cond_dropout) labels[i] = data.numClasses;
  }
  tf.dispose([batch.x, batch.labels]);
  const sigmas = noise.sample(rng, B);
  const eps = rng.normalArray(shape.reduce((a, b) => a * b, 1));
  const examples: HostBatch = dataSpace
    ? { data: dataDType === 'int32' ? { shape: xShape, dtype: 'int32', data: Int32Array.from(x0) } : { shape: xShape, dtype: 'float32', data: Float32Array.from(x0) } }
    : { x0: { shape, dtype: 'float32', data: Float32Array.from(x0) } };
  return {
    ...examples,
    eps: { shape, dtype: 'float32', data: eps },
    sigma: { shape: [B], dtype: 'float32', data: Float32Array.from(sigmas) },
    ...(labels ? { labels: { shape: [B], dtype: 'int32' as const, data: labels } } : {}),
  };
}

/** A data source's dataShape / dataInfo (sources in data space), for run.json, checkpoints and the network. */
export function dataFacts(data: Pick<DataSource, 'dataShape' | 'dataInfo'>): { dataShape?: readonly number[]; dataInfo?: unknown } {
  return { ...(data.dataShape !== undefined ? { dataShape: data.dataShape } : {}), ...(data.dataInfo !== undefined ? { dataInfo: data.dataInfo } : {}) };
}

export async function trainRun(opts: TrainRunOptions): Promise<TrainRunResult> {
  const { config, plugin } = opts;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const outDir = resolve(opts.outDir);
  const total = Math.min(config.train.steps, opts.maxSteps ?? Infinity);

  const existing = listCheckpoints(outDir);
  if (existing.length && !opts.resume) {
    throw new TrainingError(`${outDir} already holds checkpoints; pass --resume to continue it, or choose another --out`);
  }
  const ckpt = opts.resume ? latestCheckpointDir(outDir) : undefined;
  if (opts.resume && !ckpt) log(`no checkpoint in ${outDir}: starting from step 0`);

  const data = await plugin.openData(config.data, {
    split: 'train',
    baseDir: opts.baseDir ?? (opts.configFile ? dirname(opts.configFile) : process.cwd()),
    rng: Rng.derive(config.seed, 0x6f70656e),
    log,
  });
  const parts = diffusionFromConfig(config.diffusion);
  const backend = currentBackend();
  const cores = availableParallelism();
  const wanted = config.train.workers === 'auto' ? (backend && ['wasm', 'cpu'].includes(backend.name) ? cores : 1) : config.train.workers;
  const { source, importable } = pluginSource(plugin);
  const workers = importable ? Math.min(wanted, config.train.batch_size) : 1;
  if (!importable && wanted > 1) log(`plugin '${plugin.id}' has no importable source: training in one thread`);

  const factoryOptions: DiffusionModelOptions = {
    plugin: source,
    model: config.model,
    diffusion: config.diffusion,
    exampleShape: data.exampleShape,
    ...(data.numClasses !== undefined ? { numClasses: data.numClasses } : {}),
    ...dataFacts(data),
    seed: config.seed,
  };
  const factory = {
    module: import.meta.url.replace(/engine\.(ts|js)$/, 'diffusion-model.$1'),
    exportName: 'createDiffusionModel',
    options: factoryOptions,
  };
  const [beta1, beta2] = config.train.adam_betas;
  const optimizer = { kind: 'adamw' as const, learningRate: config.train.lr, weightDecay: config.train.weight_decay, beta1, beta2 };
  const backendName = backend?.name === 'cpu' ? 'cpu' : 'wasm';
  const trainer: Trainer =
    workers > 1
      ? await DataParallelTrainer.create({ factory, optimizer, workers, backend: backendName })
      : await LocalTrainer.create({ factory, optimizer });

  const lrSchedule: LrSchedule = {
    lr: config.train.lr,
    warmupSteps: config.train.warmup_steps,
    decay: config.train.lr_decay,
    totalSteps: config.train.steps,
    minLrRatio: config.train.min_lr_ratio,
  };
  const emaSpec = emaSpecFromConfig(config.train.ema);
  let ema: NamedHostTensor[] | undefined;
  let start = 0;
  try {
    if (ckpt) {
      const c = loadCheckpoint(ckpt);
      await trainer.setState(c.state);
      ema = c.ema?.map((t) => ({ ...t, data: Float32Array.from(t.data) }));
      start = c.state.step;
      log(`resumed from ${ckpt} (step ${start})`);
    }
    if (emaSpec && !ema) ema = (await trainer.getWeights()).map((t) => ({ ...t, data: Float32Array.from(t.data) }));

    mkdirSync(outDir, { recursive: true });
    writeFileAtomic(join(outDir, 'run.json'), `${JSON.stringify({ modality: plugin.id, configFile: opts.configFile, config, exampleShape: data.exampleShape, numClasses: data.numClasses, ...dataFacts(data) }, null, 2)}\n`);
    const metricsFile = join(outDir, 'metrics.jsonl');
    const params = trainer.variables.reduce((n, v) => n + v.shape.reduce((a, b) => a * b, 1), 0);
    log(
      `training ${plugin.id} (${data.size} examples of [${data.exampleShape.join(', ')}]) on ${backend?.name ?? tf.getBackend()} with ${workers} worker${workers > 1 ? 's' : ''}: ` +
        `${params.toLocaleString('en-US')} parameters, steps ${start}->${total}, batch ${config.train.batch_size}`,
    );

    const exampleInfo: ExampleInfo = { exampleShape: data.exampleShape, ...(data.numClasses !== undefined ? { numClasses: data.numClasses } : {}), ...dataFacts(data) };
    const sampler = new EpochSampler(data.size, config.seed);
    const meta = () => ({
      modality: plugin.id,
      exampleShape: data.exampleShape,
      ...(data.numClasses !== undefined ? { numClasses: data.numClasses } : {}),
      ...dataFacts(data),
      seed: config.seed,
      config,
      ...(opts.configFile ? { configFile: opts.configFile } : {}),
    });
    const save = async (step: number, loss: number | undefined) =>
      saveCheckpoint(
        outDir,
        { meta: { ...meta(), step, ...(loss !== undefined ? { loss } : {}) }, state: await trainer.getState(), ...(ema ? { ema } : {}) },
        config.train.keep_checkpoints,
      );

    const t0 = Date.now();
    let lastLoss: number | undefined;
    let lastCheckpoint = ckpt;
    let windowStart = Date.now();
    let windowSteps = 0;
    let lossSum = 0;
    for (let step = start; step < total; step++) {
      const batch = drawTrainingBatch(data, sampler, step, config, parts.objective.noise);
      const lr = learningRateAt(lrSchedule, step);
      const r = await trainer.step(batch, { learningRate: lr, ...(config.train.grad_clip !== null ? { clipGradNorm: config.train.grad_clip } : {}) });
      if (!Number.isFinite(r.loss)) {
        throw new TrainingError(
          `loss became ${r.loss} at step ${step + 1}; stopped. The last good checkpoint is ${lastCheckpoint ?? '(none: no checkpoint was written yet)'}`,
        );
      }
      lastLoss = r.loss;
      let decay = 0;
      if (emaSpec && ema) {
        decay = emaDecayAt(emaSpec, step, config.train.batch_size);
        const w = await trainer.getWeights();
        w.forEach((t, i) => emaUpdateHost(ema![i]!.data as Float32Array, t.data as Float32Array, decay));
      }
      windowSteps++;
      lossSum += r.loss;
      const done = step + 1;
      const elapsed = (Date.now() - t0) / 1000;
      const itPerSec = (done - start) / Math.max(elapsed, 1e-9);
      const m: StepMetrics = { step: done, loss: r.loss, lr, gradNorm: r.gradNorm, emaDecay: decay, itPerSec, elapsedSec: elapsed };
      opts.onStep?.(m);
      if (done % config.train.log_every === 0 || done === total) {
        const wsec = (Date.now() - windowStart) / 1000;
        const rate = windowSteps / Math.max(wsec, 1e-9);
        const meanLoss = lossSum / windowSteps;
        appendFileSync(metricsFile, `${JSON.stringify({ step: done, loss: meanLoss, lr, grad_norm: r.gradNorm, ema_decay: decay, it_per_sec: rate, elapsed_sec: elapsed })}\n`);
        log(
          `step ${done}/${total}  loss ${meanLoss.toFixed(4)}  lr ${lr.toExponential(2)}  ${rate.toFixed(2)} it/s  ` +
            `${(rate * config.train.batch_size).toFixed(1)} ex/s  ETA ${formatDuration((total - done) / itPerSec)}`,
        );
        windowStart = Date.now();
        windowSteps = 0;
        lossSum = 0;
      }
      const checkpointed = done % config.train.checkpoint_every === 0 || done === total;
      if (checkpointed) lastCheckpoint = await save(done, r.loss);
      if (opts.onSample && config.train.sample_every > 0 && done % config.train.sample_every === 0) {
        await opts.onSample(done, ema ?? (await trainer.getWeights()), exampleInfo);
      }
      if (done < total && opts.shouldStop?.(done)) {
        if (!checkpointed) lastCheckpoint = await save(done, r.loss);
        log(`stopped at step ${done} of ${total}; checkpoint ${lastCheckpoint}`);
        return { outDir, steps: done, lastLoss, checkpoint: lastCheckpoint, workers };
      }
    }
    if (start >= total) log(`nothing to do: the run is already at step ${start} of ${total}`);
    return { outDir, steps: Math.max(start, total), lastLoss, checkpoint: lastCheckpoint, workers };
  } finally {
    await trainer.dispose();
  }
}

