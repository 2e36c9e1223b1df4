/**
 * `npm run bench:train-audio`: training speed (clips/s) of the DiffWave
 * denoiser of configs/audio-fsdd.yaml in difflab, side by side with the same
 * network in PyTorch (bench/torch/diffwave.py) on the same cores.
 *
 * Model and objective: the config's model (DiffWave, C = 32 residual
 * channels, 12 layers, dilation cycle 10, kernel 3, sinusoidal noise
 * embedding 64 -> 256 -> 256, class-conditional over FSDD's 10 digits plus a
 * null class: 284,929 parameters) on clips of `data.length` samples (4,800 =
 * 0.6 s at 8 kHz), EDM preconditioning, log-normal p(sigma), EDM weighting,
 * labels dropped to the null class with p = cond_dropout, AdamW with the
 * config's lr, betas and weight decay, gradient clipping at grad_clip. The
 * PyTorch network mirrors difflab's layer for layer; its parameter count is
 * checked against difflab's (a mismatch fails the PyTorch rows and the run).
 * Batches are synthetic (x0 uniform in [-1, 1], sigma from the config's noise
 * distribution, Gaussian eps, uniform labels): speed does not depend on the
 * samples.
 *
 * Rows: wasm 1 core (LocalTrainer, in-process), wasm all cores
 * (DataParallelTrainer, one worker thread per core), native TensorFlow
 * (tfjs-node from `npm run install:native`, in-process at the config's batch;
 * it uses every core itself) when installed, PyTorch with 1 thread and with
 * all threads. Each: warm-up steps excluded, median of the timed
 * steps, clips/s = batch / median.
 *
 * Batch: the all-cores rows train the config's batch (8). One wasm heap is
 * at most 4 GiB; it held 4 clips of the config's earlier, 20-layer 0.75 s
 * network during a step (2.5 GiB), so the 1-core rows train --local-batch clips
 * (default min(batch, 4)) — both difflab and PyTorch, so the per-core
 * comparison is at equal work.
 *
 * Also: a kernel profile of one wasm training step, the data-parallel step
 * breakdown, and torch.profiler's top ops of one training step (all threads).
 *
 * Writes bench/results/train-audio.json (summary, machine, config, rows,
 * profiles) and prints a table.
 *
 * Flags: --steps N (6), --warmup N (2), --torch-steps N (10),
 * --torch-warmup N (3), --local-batch N (min(batch, 4)), --length N (the
 * config's data.length; smaller for smoke runs), --skip-torch, --no-profile,
 * --out FILE.
 */
import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../src/core/backend/select.js';
import { diffusionFromConfig } from '../src/core/config/diffusion.js';
import { loadRunConfig, type RunConfig } from '../src/core/config/load.js';
import { DataParallelTrainer } from '../src/core/parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../src/core/parallel/local-trainer.js';
import type { FactorySpec, HostBatch, OptimizerSpec, StepOptions, Trainer } from '../src/core/parallel/types.js';
import { PluginRegistry } from '../src/core/plugin.js';
import { Rng } from '../src/core/random.js';
import type { DiffusionModelOptions } from '../src/core/training/diffusion-model.js';
import type { AudioDataConfig, AudioModelConfig } from '../src/plugins/audio/config.js';
import { createAudioNetwork, parseAudioModelConfig } from '../src/plugins/audio/diffwave.js';
import { audioPlugin } from '../src/plugins/audio/index.js';
import { activateBackend, byKernel, ensureTorch, firstLine, fmt, loadavg1, machineInfo, noteLoad, parseBenchFlags, printBreakdown, printKernels, printTable, printTorchProfile, runTorchScript, timeTrainerSteps, writeReport, type BenchRowBase, type KernelRow, type TorchOutcome } from './lib/common.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..');
const CONFIG_FILE = join(ROOT, 'configs', 'audio-fsdd.yaml');
/** FSDD's classes: the spoken digits 0-9 (the data set decides this in `difflab train`; the bench reads no audio). */
const NUM_CLASSES = 10;
/** The parameter count of the config's DiffWave (C 32, 12 layers, embedding 64 -> 256, 10 classes + null). */
const EXPECTED_PARAMS = 284_929;
/** Clips one wasm heap (4 GiB at most) holds during a training step: measured (2.5 GiB) for the config's earlier 20-layer, 0.75 s network, so safe for this smaller one. */
const CLIPS_PER_WASM_HEAP = 4;

interface Args {
  steps: number;
  warmup: number;
  torchSteps: number;
  torchWarmup: number;
  localBatch: number | undefined;
  length: number | undefined;
  skipTorch: boolean;
  profile: boolean;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    steps: 6,
    warmup: 2,
    torchSteps: 10,
    torchWarmup: 3,
    localBatch: undefined,
    length: undefined,
    skipTorch: false,
    profile: true,
    out: join(here, 'results', 'train-audio.json'),
  };
  return parseBenchFlags('train-audio', argv, defaults, {
    '--steps': { int: 'steps', min: 1 },
    '--warmup': { int: 'warmup', min: 0 },
    '--torch-steps': { int: 'torchSteps', min: 1 },
    '--torch-warmup': { int: 'torchWarmup', min: 0 },
    '--local-batch': { int: 'localBatch', min: 1 },
    '--length': { int: 'length', min: 16 },
    '--skip-torch': { set: 'skipTorch' },
    '--no-profile': { set: 'profile', value: false },
    '--out': { path: 'out' },
  });
}

// ---------------------------------------------------------------------------- rows

interface Row extends BenchRowBase {
  /** Clips per step. */
  readonly batch?: number;
  readonly warmup?: number;
  readonly timesMs?: number[];
  readonly medianMs?: number;
  readonly clipsPerS?: number;
  readonly params?: number;
  readonly loadavg1AtStart?: number;
  /** Mean per-step breakdown of the tfjs trainers: compute, wait, reduce, apply (ms). */
  readonly breakdown?: Record<string, number>;
  readonly extra?: Record<string, unknown>;
}

/** What the DSM step of the config needs, in the terms the PyTorch mirror takes. */
interface Edm {
  sigmaData: number;
  weightingSigmaData: number;
  pMean: number;
  pStd: number;
}

/** The config's EDM settings, or why the PyTorch mirror (EDM only) cannot reproduce its objective. */
function edmOf(config: RunConfig): Edm | string {
  const d = config.diffusion;
  const p = d.parametrization;
  const n = d.objective.noise;
  const w = d.objective.weighting;
  if (p.type !== 'edm' || p.noise_input !== undefined) return `parametrization ${p.type} (bench/torch/diffwave.py implements EDM preconditioning with c_noise = ln(sigma)/4)`;
  if (n.type !== 'log-normal') return `noise distribution ${n.type} (the mirror draws log-normal sigmas)`;
  if (w.type !== 'edm') return `loss weighting ${w.type} (the mirror uses EDM's)`;
  if (d.objective.reduction !== 'mean') return `reduction ${d.objective.reduction} (the mirror averages)`;
  return { sigmaData: p.sigma_data, weightingSigmaData: w.sigma_data, pMean: n.p_mean, pStd: n.p_std };
}

function makeBatch(config: RunConfig, rows: number, length: number, step: number): HostBatch {
  const rng = Rng.derive(9002, step);
  const n = rows * length;
  const x0 = new Float32Array(n);
  for (let i = 0; i < n; i++) x0[i] = 2 * rng.uniform() - 1;
  const sigmas = diffusionFromConfig(config.diffusion).objective.noise.sample(rng, rows);
  const shape = [rows, length, 1];
  const batch: HostBatch = {
    x0: { shape, dtype: 'float32', data: x0 },
    eps: { shape, dtype: 'float32', data: rng.normalArray(n) },
    sigma: { shape: [rows], dtype: 'float32', data: Float32Array.from(sigmas) },
  };
  if ((config.model as AudioModelConfig).class_conditional) {
    // As `difflab train` draws them: a class per clip, the null class (id NUM_CLASSES) with p = cond_dropout.
    const labels = Int32Array.from({ length: rows }, () => rng.int(NUM_CLASSES));
    for (let i = 0; i < rows; i++) if (rng.uniform() < config.train.cond_dropout) labels[i] = NUM_CLASSES;
    batch['labels'] = { shape: [rows], dtype: 'int32', data: labels };
  }
  return batch;
}

async function timeTrainer(
  engine: string,
  threads: number,
  trainer: Trainer,
  config: RunConfig,
  rows: number,
  length: number,
  warmup: number,
  steps: number,
  stepOptions: StepOptions,
): Promise<Row> {
  const load = loadavg1();
  const timed = await timeTrainerSteps(trainer, engine, warmup, steps, (i) => makeBatch(config, rows, length, i), stepOptions);
  return {
    engine,
    threads,
    status: 'ok',
    batch: rows,
    warmup,
    timesMs: timed.timesMs,
    medianMs: timed.medianMs,
    clipsPerS: (rows * 1000) / timed.medianMs,
    loadavg1AtStart: load,
    breakdown: timed.breakdown,
    extra: { lastLoss: timed.lastLoss, worldSize: trainer.worldSize },
  };
}

function failed(engine: string, threads: number, err: unknown): Row {
  return { engine, threads, status: 'failed', reason: firstLine(err) };
}

// ---------------------------------------------------------------------------- PyTorch

interface TorchJson {
  torch: string;
  threads: number;
  mkldnn: boolean;
  layout: string;
  params: number;
  train: { loadavg1_at_start: number; warmup: number; batch: number; length: number; step_ms: number[]; median_ms: number; clips_per_s: number; last_loss: number };
  profile?: { op: string; self_ms: number; calls: number }[];
}

function torchEngine(threads: number): string {
  return `pytorch ${threads === 1 ? '1 thread' : `${threads} threads`}`;
}

function torchRow(python: string, threads: number, batch: number, length: number, config: RunConfig, edm: Edm, args: Args, expectParams: number, profile: boolean): { row: Row; json?: TorchJson } {
  const engine = torchEngine(threads);
  const m = config.model as AudioModelConfig;
  const t = config.train;
  const cli = [
    '--threads', String(threads),
    '--warmup', String(args.torchWarmup),
    '--steps', String(args.torchSteps),
    '--batch', String(batch),
    '--length', String(length),
    '--channels', String(m.residual_channels),
    '--layers', String(m.layers),
    '--dilation-cycle', String(m.dilation_cycle),
    '--kernel-size', String(m.kernel_size),
    '--embedding-dim', String(m.embedding_dim),
    '--embedding-hidden', String(m.embedding_hidden),
    '--classes', String(m.class_conditional ? NUM_CLASSES : 0),
    '--sigma-data', String(edm.sigmaData),
    '--weighting-sigma-data', String(edm.weightingSigmaData),
    '--p-mean', String(edm.pMean),
    '--p-std', String(edm.pStd),
    '--cond-dropout', String(t.cond_dropout),
    '--lr', String(t.lr),
    '--weight-decay', String(t.weight_decay),
    '--beta1', String(t.adam_betas[0]),
    '--beta2', String(t.adam_betas[1]),
    '--grad-clip', String(t.grad_clip ?? 0),
    '--expect-params', String(expectParams),
    ...(profile ? ['--profile'] : []),
  ];
  const r = runTorchScript<TorchJson>(python, 'diffwave.py', cli);
  if (!r.ok) return { row: failed(engine, threads, r.reason) };
  const j = r.json;
  return {
    json: j,
    row: {
      engine,
      threads,
      status: 'ok',
      batch: j.train.batch,
      warmup: j.train.warmup,
      timesMs: j.train.step_ms,
      medianMs: j.train.median_ms,
      clipsPerS: j.train.clips_per_s,
      params: j.params,
      loadavg1AtStart: j.train.loadavg1_at_start,
      extra: { torch: j.torch, threadsUsed: j.threads, mkldnn: j.mkldnn, layout: j.layout, lastLoss: j.train.last_loss },
    },
  };
}

// ---------------------------------------------------------------------------- main

function ratio(a: Row | undefined, b: Row | undefined): number | null {
  return a?.status === 'ok' && b?.status === 'ok' && a.clipsPerS && b.clipsPerS ? a.clipsPerS / b.clipsPerS : null;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cores = availableParallelism();
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const loadBefore = noteLoad(cores);
  const config = loadRunConfig(CONFIG_FILE, new PluginRegistry([audioPlugin]));
  const model = parseAudioModelConfig(config.model);
  const length = args.length ?? (config.data as AudioDataConfig).length;
  const shape = [length, 1];
  const B = config.train.batch_size;
  const localB = args.localBatch ?? Math.min(B, CLIPS_PER_WASM_HEAP);
  const numClasses = model.class_conditional ? NUM_CLASSES : undefined;
  const [beta1, beta2] = config.train.adam_betas;
  const optimizer: OptimizerSpec = { kind: 'adamw', learningRate: config.train.lr, weightDecay: config.train.weight_decay, beta1, beta2 };
  const stepOptions: StepOptions = { learningRate: config.train.lr, ...(config.train.grad_clip !== null ? { clipGradNorm: config.train.grad_clip } : {}) };
  const factoryOptions: DiffusionModelOptions = {
    plugin: audioPlugin.source ?? { module: '', exportName: 'audioPlugin' },
    model: config.model,
    diffusion: config.diffusion,
    exampleShape: shape,
    ...(numClasses !== undefined ? { numClasses } : {}),
    seed: config.seed,
  };
  const factory: FactorySpec = {
    module: fileURLToPath(new URL('../src/core/training/diffusion-model.ts', import.meta.url)),
    exportName: 'createDiffusionModel',
    options: factoryOptions,
  };

  // difflab's parameter count (the PyTorch script must match it).
  await useBackend('wasm');
  const probe = createAudioNetwork(model, { exampleShape: shape, rng: new Rng(config.seed), ...(numClasses !== undefined ? { numClasses } : {}) });
  const difflabParams = probe.parameterCount();
  const receptiveField = probe.receptiveField;
  probe.dispose();
  log(`difflab DiffWave: ${difflabParams.toLocaleString('en-US')} parameters; clips of ${length} samples, batch ${B} (1-core rows: ${localB})`);
  const problems: string[] = [];
  if (difflabParams !== EXPECTED_PARAMS) problems.push(`difflab's DiffWave has ${difflabParams} parameters, expected ${EXPECTED_PARAMS}`);
  const edm = edmOf(config);

  const rows: Row[] = [];
  const engine1 = 'difflab wasm, 1 core';
  const engineN = `difflab wasm, ${cores} cores`;
  // PyTorch first: creating the venv is the only step that can take minutes.
  let torch: TorchOutcome = { ok: false, reason: 'skipped (--skip-torch)' };
  if (!args.skipTorch) {
    torch = typeof edm === 'string' ? { ok: false, reason: `the config's objective is not mirrored: ${edm}` } : ensureTorch();
    if (!torch.ok) console.log(`PyTorch rows skipped: ${torch.reason}`);
  }
  const torchJson = new Map<number, TorchJson>();
  const torchPlan = cores > 1 ? [{ threads: 1, batch: localB }, { threads: cores, batch: B }] : [{ threads: 1, batch: localB }];
  for (const { threads, batch } of torchPlan) {
    if (torch.ok && typeof edm !== 'string') {
      log(`pytorch, ${threads} thread(s), batch ${batch}...`);
      const r = torchRow(torch.python, threads, batch, length, config, edm, args, difflabParams, args.profile && threads === cores);
      rows.push(r.row);
      if (r.json) torchJson.set(threads, r.json);
    } else {
      rows.push({ engine: torchEngine(threads), threads, status: 'skipped', reason: torch.ok ? 'not mirrored' : torch.reason });
    }
  }
  const torchParams = [...torchJson.values()][0]?.params;
  const mismatch = rows.find((r) => r.engine.startsWith('pytorch') && r.status === 'failed' && /parameter count mismatch/.test(r.reason ?? ''));
  if (mismatch) problems.push(mismatch.reason ?? 'parameter count mismatch');

  // difflab, wasm, 1 core.
  log(`wasm, 1 core (LocalTrainer, in-process), batch ${localB}...`);
  let trainProfile: KernelRow[] | undefined;
  {
    let t: LocalTrainer | undefined;
    try {
      t = await LocalTrainer.create({ factory, optimizer, backend: 'wasm' });
      const row = await timeTrainer(engine1, 1, t, config, localB, length, args.warmup, args.steps, stepOptions);
      rows.push({ ...row, params: difflabParams });
      if (args.profile) {
        log('profiling one wasm training step...');
        const trainer = t;
        const batch = makeBatch(config, localB, length, 999);
        trainProfile = byKernel(await tf.profile(async () => void (await trainer.step(batch, stepOptions))));
      }
    } catch (err) {
      rows.push(failed(engine1, 1, err));
    } finally {
      await t?.dispose();
    }
  }

  log(`wasm, ${cores} cores (DataParallelTrainer, ${cores} workers), batch ${B}...`);
  {
    let t: DataParallelTrainer | undefined;
    try {
      t = await DataParallelTrainer.create({ factory, optimizer, workers: cores, backend: 'wasm' });
      const row = await timeTrainer(`${engineN} (data-parallel)`, cores, t, config, B, length, args.warmup, args.steps, stepOptions);
      rows.push({ ...row, engine: engineN, params: difflabParams, extra: { ...row.extra, driver: `DataParallelTrainer, ${cores} worker threads` } });
    } catch (err) {
      rows.push(failed(engineN, cores, err));
    } finally {
      await t?.dispose();
    }
  }

  // Native TensorFlow: in-process at the config's batch (no wasm heap limit; TensorFlow uses every core itself).
  const native = await activateBackend();
  const engineNative = `difflab ${native.name}`;
  if (native.ok) {
    log(`${native.name}, batch ${B}...`);
    let t: LocalTrainer | undefined;
    try {
      t = await LocalTrainer.create({ factory, optimizer, backend: native.name });
      const row = await timeTrainer(engineNative, cores, t, config, B, length, args.warmup, args.steps, stepOptions);
      rows.push({ ...row, params: difflabParams, extra: { ...row.extra, backend: native.reason } });
    } catch (err) {
      rows.push(failed(engineNative, cores, err));
    } finally {
      await t?.dispose();
    }
  } else {
    rows.push({ engine: engineNative, threads: cores, status: 'skipped', reason: native.reason });
  }

  // ------------------------------------------------------------------ report
  const find = (engine: string): Row | undefined => rows.find((r) => r.engine === engine);
  const dNative = find(engineNative);
  const t1 = find(torchEngine(1));
  const tN = cores > 1 ? find(torchEngine(cores)) : t1;
  const d1 = find(engine1);
  const dN = find(engineN);
  const vsTorch = (r: Row): number | null => (r.engine.startsWith('pytorch') ? null : ratio(r, r.threads === 1 ? t1 : tN));

  const order = [dNative, dN, d1, tN, t1].filter((r, i, a): r is Row => r !== undefined && a.indexOf(r) === i);
  const header = ['engine', 'threads', 'batch', 'clips/s', 'ms/step (median)', 'vs PyTorch (same threads)', 'load1 at start', 'note'];
  const lines = order.map((r) => [
    r.engine,
    String(r.threads),
    r.batch !== undefined ? String(r.batch) : '-',
    fmt(r.clipsPerS, 2),
    fmt(r.medianMs, 0),
    r.engine.startsWith('pytorch') ? (r.status === 'ok' ? '1.00' : '-') : fmt(vsTorch(r)),
    fmt(r.loadavg1AtStart),
    r.status === 'ok' ? `${r.timesMs?.length} timed steps, ${r.warmup} warm-up` : `${r.status}: ${r.reason}`,
  ]);
  printTable(header, lines);

  const torchReason = !torch.ok ? torch.reason : tN?.status !== 'ok' ? `PyTorch run failed: ${tN?.reason}` : undefined;
  const summary = {
    train_vs_pytorch: ratio(dN, tN),
    train_per_core_vs_pytorch: ratio(d1, t1),
    train_difflab_all_cores_vs_1_core: ratio(dN, d1),
    train_pytorch_all_threads_vs_1_thread: cores > 1 ? ratio(tN, t1) : null,
    train_tfjs_node_vs_pytorch: ratio(dNative, tN),
    train_tfjs_node_vs_wasm_all_cores: ratio(dNative, dN),
    clips_per_s: {
      difflab_all_cores: dN?.clipsPerS ?? null,
      difflab_1_core: d1?.clipsPerS ?? null,
      native_tensorflow: dNative?.clipsPerS ?? null,
      pytorch_all_threads: tN?.clipsPerS ?? null,
      pytorch_1_thread: t1?.clipsPerS ?? null,
    },
    ...(length !== (config.data as AudioDataConfig).length ? { note: `clips of ${length} samples (--length), not the config's ${(config.data as AudioDataConfig).length}` } : {}),
    ...(torchReason ? { pytorch_reason: torchReason } : {}),
    ...(native.ok ? {} : { tfjs_node_reason: native.reason }),
    ...(problems.length ? { problems } : {}),
  };
  console.log('\nsummary:', JSON.stringify(summary));
  console.log(`parameters: difflab ${difflabParams.toLocaleString('en-US')}, PyTorch ${torchParams?.toLocaleString('en-US') ?? '-'}`);
  printBreakdown(dN?.breakdown, 'AdamW');
  printKernels(`wasm kernels, one training step, batch ${localB}`, trainProfile);
  const tprof = torchJson.get(cores)?.profile;
  printTorchProfile(cores, tprof);

  const torchInfo = [...torchJson.values()][0];
  const report = {
    summary,
    machine: machineInfo(loadBefore, torchInfo ? { torch: torchInfo.torch, mkldnn: torchInfo.mkldnn } : undefined),
    config: {
      file: 'configs/audio-fsdd.yaml',
      model,
      numClasses: numClasses ?? null,
      receptiveField,
      diffusion: config.diffusion,
      condDropout: config.train.cond_dropout,
      input: shape,
      sampleRate: (config.data as AudioDataConfig).sample_rate,
      batch: { allCores: B, oneCore: localB },
      optimizer,
      clipGradNorm: config.train.grad_clip,
      params: { difflab: difflabParams, pytorch: torchParams ?? null, expected: EXPECTED_PARAMS },
      steps: args.steps,
      warmup: args.warmup,
      torchSteps: args.torchSteps,
      torchWarmup: args.torchWarmup,
      torchLayout: torchInfo?.layout ?? 'NCW (PyTorch default)',
    },
    rows,
    profiles: { wasmTrainStep: trainProfile, pytorchTrainStep: tprof },
  };
  writeReport(args.out, report);
  if (problems.length) {
    console.error(`error: ${problems.join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
