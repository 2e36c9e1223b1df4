/**
 * `npm run bench:train-image`: training and sampling speed (images/s) of the
 * Fashion-MNIST U-Net in difflab, side by side with the same architecture in
 * PyTorch (bench/torch/unet.py) on the same cores.
 *
 * Model and objective: the default config of configs/fashion-unet.yaml (the
 * U-Net with channels 32, mult [1, 2, 2], 1 res block per level, attention at
 * 7x7 + middle, 4 heads, 8 groups, sinusoidal embedding: 1,112,801
 * parameters at 28x28x1; eps-prediction on the linear VP schedule, L_simple,
 * batch 32, AdamW with the config's lr and gradient clipping at 1). The
 * PyTorch network mirrors difflab's layer for layer; its parameter count is
 * checked against difflab's (a mismatch fails the PyTorch rows and the run).
 * Batches are synthetic (uniform x0 in [-1, 1], sigma from the config's noise
 * distribution, Gaussian eps): speed does not depend on the pixels.
 *
 * Training rows: wasm 1 core (LocalTrainer, in-process), wasm all cores
 * (DataParallelTrainer, one worker thread per core), native TensorFlow
 * (tfjs-node from `npm run install:native`, or tfjs-node-gpu) when installed,
 * any backend named with --backend (e.g. webgpu, bench/gpu/run.sh), PyTorch
 * with 1 thread and with all threads (or on --torch-device cuda). Each: warm-up steps
 * excluded, median of the timed steps, images/s = batch / median.
 *
 * Sampling rows: DPM-Solver++(2M), 20 NFE, Karras sigmas (rho 7), batch 64,
 * with the weights after the training rows. difflab 1 core: `generate` in
 * this process. difflab all cores: the batch split over one child process
 * per core (tfjs wasm is single-threaded in Node, and sampling has no
 * data-parallel driver), each warmed up and then started together; the time
 * is from "go" to the last child's answer. PyTorch gets the same sigmas and
 * per-sigma network inputs (c_in, c_noise) computed here. Warm-up: one
 * 2-step run; median of the timed runs.
 *
 * Also: a kernel profile of one wasm training step and one sampling NFE,
 * the data-parallel step breakdown, and torch.profiler's top ops of one
 * training step (where the time goes).
 *
 * Writes bench/results/train-image.json (summary, machine, config, rows,
 * profiles) and prints a table.
 *
 * Flags: --steps N (6), --warmup N (2), --torch-steps N (10),
 * --torch-warmup N (3), --sample-batch N (64), --sample-nfe N (20),
 * --sample-runs N (3), --skip-torch, --skip-sample, --no-profile,
 * --torch-sdpa (PyTorch attention via scaled_dot_product_attention),
 * --backend NAME (repeatable; default: the native backend when installed),
 * --skip-wasm, --torch-device DEV (cpu; cuda on a GPU machine), --out FILE.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useBackend, type BackendName } from '../src/core/backend/select.js';
import { diffusionFromConfig } from '../src/core/config/diffusion.js';
import { loadRunConfig, type RunConfig } from '../src/core/config/load.js';
import { generate, loadModel, type LoadedModel } from '../src/core/generate.js';
import { DataParallelTrainer } from '../src/core/parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../src/core/parallel/local-trainer.js';
import type { FactorySpec, HostBatch, NamedHostTensor, OptimizerSpec, StepOptions, StepResult, Trainer } from '../src/core/parallel/types.js';
import { PluginRegistry } from '../src/core/plugin.js';
import { Rng } from '../src/core/random.js';
import { activateBackend, backendArg, byKernel, ensureTorch, firstLine, fmt, loadavg1, machineInfo, median, noteLoad, parseBenchFlags, printBreakdown, printKernels, printTable, printTorchProfile, runTorchScript, timeTrainerSteps, writeReport, type BenchRowBase, type KernelRow, type TorchOutcome } from './lib/common.js';
import { stepsForNfe } from '../src/core/samplers/index.js';
import { sigmasFor } from '../src/core/schedules/discretize.js';
import type { DiffusionModelOptions } from '../src/core/training/diffusion-model.js';
import { createImageNetwork, imagePlugin, type ImageModelConfig } from '../src/plugins/image/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..');
const CONFIG_FILE = join(ROOT, 'configs', 'fashion-unet.yaml');
const SHAPE = [28, 28, 1] as const;
const SAMPLER = 'dpmpp-2m';
/** The parameter count the task pins (difflab's default U-Net at 28x28x1). */
const EXPECTED_PARAMS = 1_112_801;

interface Args {
  steps: number;
  warmup: number;
  torchSteps: number;
  torchWarmup: number;
  sampleBatch: number;
  sampleNfe: number;
  sampleRuns: number;
  skipTorch: boolean;
  skipSample: boolean;
  profile: boolean;
  torchSdpa: boolean;
  backends: BackendName[];
  skipWasm: boolean;
  torchDevice: string;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    steps: 6,
    warmup: 2,
    torchSteps: 10,
    torchWarmup: 3,
    sampleBatch: 64,
    sampleNfe: 20,
    sampleRuns: 3,
    skipTorch: false,
    skipSample: false,
    profile: true,
    torchSdpa: false,
    backends: [],
    skipWasm: false,
    torchDevice: 'cpu',
    out: join(here, 'results', 'train-image.json'),
  };
  return parseBenchFlags('train-image', argv, defaults, {
    '--steps': { int: 'steps', min: 1 },
    '--warmup': { int: 'warmup', min: 0 },
    '--torch-steps': { int: 'torchSteps', min: 1 },
    '--torch-warmup': { int: 'torchWarmup', min: 0 },
    '--sample-batch': { int: 'sampleBatch', min: 1 },
    '--sample-nfe': { int: 'sampleNfe', min: 1 },
    '--sample-runs': { int: 'sampleRuns', min: 1 },
    '--skip-torch': { set: 'skipTorch' },
    '--skip-sample': { set: 'skipSample' },
    '--no-profile': { set: 'profile', value: false },
    '--torch-sdpa': { set: 'torchSdpa' },
    '--backend': (a, value) => a.backends.push(backendArg('--backend', value())),
    '--skip-wasm': { set: 'skipWasm' },
    '--torch-device': { string: 'torchDevice' },
    '--out': { path: 'out' },
  });
}

// ---------------------------------------------------------------------------- shared

function loadConfig(): RunConfig {
  return loadRunConfig(CONFIG_FILE, new PluginRegistry([imagePlugin]));
}

/** Weights as one float32 file, in the network's variable order (the reader knows the shapes). */
function writeWeights(file: string, weights: readonly NamedHostTensor[]): void {
  const n = weights.reduce((s, w) => s + w.data.length, 0);
  const all = new Float32Array(n);
  let o = 0;
  for (const w of weights) {
    all.set(w.data as Float32Array, o);
    o += w.data.length;
  }
  writeFileSync(file, Buffer.from(all.buffer, all.byteOffset, all.byteLength));
}

function readWeights(file: string, like: readonly tf.Variable[]): NamedHostTensor[] {
  const buf = readFileSync(file);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  let o = 0;
  const out = like.map((v) => {
    const data = all.slice(o, o + v.size);
    o += v.size;
    return { name: v.name, shape: [...v.shape], dtype: 'float32' as const, data };
  });
  if (o !== all.length) throw new Error(`weights file has ${all.length} floats, the network ${o}`);
  return out;
}

/** A model for sampling with the given weights (random seeded init when none). */
function samplingModel(config: RunConfig, weightsFile?: string): LoadedModel {
  const probe = createImageNetwork(config.model as ImageModelConfig, { exampleShape: [...SHAPE], rng: new Rng(config.seed) });
  try {
    const weights = weightsFile
      ? readWeights(weightsFile, probe.variables)
      : probe.variables.map((v) => ({ name: v.name, shape: [...v.shape], dtype: 'float32' as const, data: v.dataSync() as Float32Array }));
    return loadModel(imagePlugin, config, { exampleShape: [...SHAPE] }, weights);
  } finally {
    probe.dispose();
  }
}

/** One sampling run; returns ms and the NFE generate reports. */
function sampleOnce(model: LoadedModel, n: number, steps: number, seed: number): { ms: number; nfe: number } {
  const t0 = performance.now();
  const r = generate(model, { n, seed, sample: { sampler: SAMPLER, steps } });
  r.x.dataSync();
  const ms = performance.now() - t0;
  r.x.dispose();
  return { ms, nfe: r.nfe };
}

// ---------------------------------------------------------------------------- sampling child process

/**
 * `--sample-worker [--weights FILE] --n N --steps S --seed K`: builds the model on wasm,
 * warms up (one 2-step run), prints `ready`, then answers each `run` line on
 * stdin with one JSON line {ms, nfe}; exits on `exit` or end of input.
 */
async function sampleWorker(argv: string[]): Promise<void> {
  const get = (k: string): string => {
    const i = argv.indexOf(k);
    const v = i >= 0 ? argv[i + 1] : undefined;
    if (v === undefined) throw new Error(`sample worker: missing ${k}`);
    return v;
  };
  const n = Number(get('--n'));
  const steps = Number(get('--steps'));
  const seed = Number(get('--seed'));
  await useBackend('wasm');
  const config = loadConfig();
  const model = samplingModel(config, argv.includes('--weights') ? get('--weights') : undefined);
  sampleOnce(model, n, Math.min(2, steps), seed);
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === 'run') process.stdout.write(`${JSON.stringify(sampleOnce(model, n, steps, seed))}\n`);
    else if (cmd === 'exit') break;
  }
  rl.close();
  model.dispose();
}

class SampleChild {
  private readonly lines: string[] = [];
  private waiters: ((line: string) => void)[] = [];
  private exited: string | undefined;

  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    const rl = createInterface({ input: proc.stdout });
    rl.on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    const gone = (why: string): void => {
      this.exited ??= why;
      for (const w of this.waiters.splice(0)) w(`!${this.exited}`);
    };
    proc.on('exit', (code) => gone(`sample worker exited (code ${code}): ${err.trim().split('\n').pop() ?? ''}`));
    proc.on('error', (e) => gone(`sample worker failed: ${e.message}`));
    proc.stdin.on('error', () => undefined); // EPIPE after an early exit is reported through 'exit'
  }

  next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.resolve(`!${this.exited}`);
    return new Promise((res) => this.waiters.push(res));
  }

  async expect(): Promise<string> {
    const l = await this.next();
    if (l.startsWith('!')) throw new Error(l.slice(1));
    return l;
  }

  send(cmd: string): void {
    this.proc.stdin.write(`${cmd}\n`);
  }
}

// ---------------------------------------------------------------------------- rows

type Task = 'train' | 'sample';

interface Row extends BenchRowBase {
  readonly task: Task;
  /** Images per step (train) or per sampling run (sample). */
  readonly batch?: number;
  readonly warmup?: number;
  /** Per timed step (train) or per timed sampling run (sample). */
  readonly timesMs?: number[];
  readonly medianMs?: number;
  readonly imagesPerS?: number;
  readonly loadavg1AtStart?: number;
  /** Mean per-step breakdown of the tfjs trainers: compute, wait, reduce, apply (ms). */
  readonly breakdown?: Record<string, number>;
  readonly extra?: Record<string, unknown>;
}

function makeBatch(config: RunConfig, step: number): HostBatch {
  const B = config.train.batch_size;
  const rng = Rng.derive(9001, step);
  const n = B * SHAPE[0] * SHAPE[1] * SHAPE[2];
  const x0 = new Float32Array(n);
  for (let i = 0; i < n; i++) x0[i] = 2 * rng.uniform() - 1;
  const sigmas = diffusionFromConfig(config.diffusion).objective.noise.sample(rng, B);
  const shape = [B, ...SHAPE];
  return {
    x0: { shape, dtype: 'float32', data: x0 },
    eps: { shape, dtype: 'float32', data: rng.normalArray(n) },
    sigma: { shape: [B], dtype: 'float32', data: Float32Array.from(sigmas) },
  };
}

async function timeTrainer(
  engine: string,
  threads: number,
  trainer: Trainer,
  config: RunConfig,
  warmup: number,
  steps: number,
  stepOptions: StepOptions,
): Promise<Row> {
  const B = config.train.batch_size;
  const load = loadavg1();
  const timed = await timeTrainerSteps(trainer, engine, warmup, steps, (i) => makeBatch(config, i), stepOptions);
  const med = timed.medianMs;
  const timesMs = timed.timesMs;
  const breakdown = timed.breakdown;
  return {
    task: 'train',
    engine,
    threads,
    status: 'ok',
    batch: B,
    warmup,
    timesMs,
    medianMs: med,
    imagesPerS: (B * 1000) / med,
    loadavg1AtStart: load,
    breakdown,
    extra: { lastLoss: timed.lastLoss, worldSize: trainer.worldSize },
  };
}

function failed(task: Task, engine: string, threads: number, err: unknown): Row {
  return { task, engine, threads, status: 'failed', reason: firstLine(err) };
}

/** In-process sampling rows (wasm 1 core, tfjs-node). */
function timeSampling(engine: string, threads: number, model: LoadedModel, args: Args, steps: number): Row {
  const load = loadavg1();
  sampleOnce(model, args.sampleBatch, Math.min(2, steps), 5);
  const timesMs: number[] = [];
  let nfe = 0;
  for (let i = 0; i < args.sampleRuns; i++) {
    const r = sampleOnce(model, args.sampleBatch, steps, 5);
    timesMs.push(r.ms);
    nfe = r.nfe;
    process.stderr.write(`  ${engine} sampling: run ${i + 1}/${args.sampleRuns} ${r.ms.toFixed(0)} ms (${nfe} NFE)\n`);
  }
  const med = median(timesMs);
  return {
    task: 'sample',
    engine,
    threads,
    status: 'ok',
    batch: args.sampleBatch,
    warmup: 1,
    timesMs,
    medianMs: med,
    imagesPerS: (args.sampleBatch * 1000) / med,
    loadavg1AtStart: load,
    extra: { nfe, sampler: SAMPLER },
  };
}

/** The batch split over `procs` child processes, each on its own core. */
async function timeSamplingProcesses(engine: string, procs: number, weightsFile: string | undefined, args: Args, steps: number): Promise<Row> {
  const sizes = Array.from({ length: procs }, (_, k) => Math.floor(args.sampleBatch / procs) + (k < args.sampleBatch % procs ? 1 : 0)).filter((s) => s > 0);
  const children = sizes.map(
    (n, k) =>
      new SampleChild(
        spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            fileURLToPath(import.meta.url),
            '--sample-worker',
            ...(weightsFile ? ['--weights', weightsFile] : []),
            ...['--n', String(n), '--steps', String(steps), '--seed', String(5 + k)],
          ],
          { cwd: ROOT },
        ),
      ),
  );
  try {
    for (const c of children) if ((await c.expect()) !== 'ready') throw new Error('sample worker did not report ready');
    const load = loadavg1();
    const timesMs: number[] = [];
    const childMs: number[][] = [];
    let nfe = 0;
    for (let i = 0; i < args.sampleRuns; i++) {
      const t0 = performance.now();
      for (const c of children) c.send('run');
      const answers = await Promise.all(children.map((c) => c.expect()));
      timesMs.push(performance.now() - t0);
      const parsed = answers.map((a) => JSON.parse(a) as { ms: number; nfe: number });
      childMs.push(parsed.map((p) => p.ms));
      nfe = parsed[0]?.nfe ?? 0;
      process.stderr.write(`  ${engine} sampling: run ${i + 1}/${args.sampleRuns} ${timesMs[i]?.toFixed(0)} ms (children ${parsed.map((p) => p.ms.toFixed(0)).join(', ')} ms)\n`);
    }
    const med = median(timesMs);
    return {
      task: 'sample',
      engine,
      threads: sizes.length,
      status: 'ok',
      batch: args.sampleBatch,
      warmup: 1,
      timesMs,
      medianMs: med,
      imagesPerS: (args.sampleBatch * 1000) / med,
      loadavg1AtStart: load,
      extra: { nfe, sampler: SAMPLER, processes: sizes.length, rowsPerProcess: sizes, childMs },
    };
  } finally {
    for (const c of children) {
      try {
        c.send('exit');
        c.proc.stdin.end();
      } catch {
        // already gone
      }
    }
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.proc.exitCode !== null) return res();
            const t = setTimeout(() => {
              c.proc.kill();
              res();
            }, 10_000);
            c.proc.on('exit', () => {
              clearTimeout(t);
              res();
            });
          }),
      ),
    );
  }
}

// ---------------------------------------------------------------------------- PyTorch


/** The PyTorch rows' engine name: threads on the CPU, the device otherwise. */
function torchEngineName(threads: number, device: string): string {
  return device === 'cpu' ? `pytorch ${threads === 1 ? '1 thread' : `${threads} threads`}` : `pytorch ${device}`;
}

interface TorchJson {
  torch: string;
  threads: number;
  mkldnn: boolean;
  device: string;
  gpu?: string;
  channels_last: boolean;
  sdpa: boolean;
  params: number;
  train: { loadavg1_at_start: number; warmup: number; batch: number; step_ms: number[]; median_ms: number; images_per_s: number; last_loss: number };
  sample?: { loadavg1_at_start: number; batch: number; nfe: number; warmup: number; run_ms: number[]; median_ms: number; images_per_s: number };
  profile?: { op: string; self_ms: number; calls: number }[];
}

function torchRows(
  python: string,
  threads: number,
  args: Args,
  expectParams: number,
  planFile: string | undefined,
  profile: boolean,
): { rows: Row[]; json?: TorchJson } {
  const engine = torchEngineName(threads, args.torchDevice);
  const cli = [
    '--threads', String(threads),
    '--device', args.torchDevice,
    '--warmup', String(args.torchWarmup),
    '--steps', String(args.torchSteps),
    '--expect-params', String(expectParams),
    '--sample-batch', String(args.sampleBatch),
    '--sample-runs', String(args.sampleRuns),
    ...(planFile ? ['--plan', planFile] : []),
    ...(args.torchSdpa ? ['--sdpa'] : []),
    ...(profile ? ['--profile'] : []),
  ];
  const r = runTorchScript<TorchJson>(python, 'unet.py', cli);
  if (!r.ok) {
    const rows: Row[] = [failed('train', engine, threads, r.reason)];
    if (planFile) rows.push(failed('sample', engine, threads, r.reason));
    return { rows };
  }
  const j = r.json;
  const extra = { torch: j.torch, threadsUsed: j.threads, mkldnn: j.mkldnn, device: j.device, gpu: j.gpu, channelsLast: j.channels_last, sdpa: j.sdpa, params: j.params };
  const rows: Row[] = [
    {
      task: 'train',
      engine,
      threads,
      status: 'ok',
      batch: j.train.batch,
      warmup: j.train.warmup,
      timesMs: j.train.step_ms,
      medianMs: j.train.median_ms,
      imagesPerS: j.train.images_per_s,
      loadavg1AtStart: j.train.loadavg1_at_start,
      extra: { ...extra, lastLoss: j.train.last_loss },
    },
  ];
  if (j.sample) {
    rows.push({
      task: 'sample',
      engine,
      threads,
      status: 'ok',
      batch: j.sample.batch,
      warmup: j.sample.warmup,
      timesMs: j.sample.run_ms,
      medianMs: j.sample.median_ms,
      imagesPerS: j.sample.images_per_s,
      loadavg1AtStart: j.sample.loadavg1_at_start,
      extra: { ...extra, nfe: j.sample.nfe, sampler: SAMPLER },
    });
  }
  return { rows, json: j };
}

// ---------------------------------------------------------------------------- main

function ratio(a: Row | undefined, b: Row | undefined): number | null {
  return a?.status === 'ok' && b?.status === 'ok' && a.imagesPerS && b.imagesPerS ? a.imagesPerS / b.imagesPerS : null;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cores = availableParallelism();
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const loadBefore = noteLoad(cores);
  const config = loadConfig();
  const parts = diffusionFromConfig(config.diffusion);
  const B = config.train.batch_size;
  const [beta1, beta2] = config.train.adam_betas;
  const optimizer: OptimizerSpec = { kind: 'adamw', learningRate: config.train.lr, weightDecay: config.train.weight_decay, beta1, beta2 };
  const stepOptions: StepOptions = { learningRate: config.train.lr, ...(config.train.grad_clip !== null ? { clipGradNorm: config.train.grad_clip } : {}) };
  const factoryOptions: DiffusionModelOptions = {
    plugin: imagePlugin.source ?? { module: '', exportName: 'imagePlugin' },
    model: config.model,
    diffusion: config.diffusion,
    exampleShape: [...SHAPE],
    seed: config.seed,
  };
  const factory: FactorySpec = {
    module: fileURLToPath(new URL('../src/core/training/diffusion-model.ts', import.meta.url)),
    exportName: 'createDiffusionModel',
    options: factoryOptions,
  };

  // difflab's parameter count (the PyTorch script must match it).
  await useBackend('wasm');
  const probe = createImageNetwork(config.model as ImageModelConfig, { exampleShape: [...SHAPE], rng: new Rng(config.seed) });
  const difflabParams = probe.parameterCount();
  probe.dispose();
  log(`difflab U-Net: ${difflabParams.toLocaleString('en-US')} parameters`);
  const problems: string[] = [];
  if (difflabParams !== EXPECTED_PARAMS) problems.push(`difflab's U-Net has ${difflabParams} parameters, expected ${EXPECTED_PARAMS}`);

  // The sampling plan both sides use: steps for the NFE budget, sigmas, and the network inputs per sigma.
  const sampleSteps = stepsForNfe(SAMPLER, args.sampleNfe);
  const sigmas = sigmasFor(config.sample.discretization, parts.schedule, sampleSteps, { rho: config.sample.rho });
  const coeffs = sigmas.slice(0, -1).map((s) => parts.parametrization.coefficients(s));
  if (coeffs.some((c, i) => c.cSkip !== 1 || Math.abs(c.cOut + (sigmas[i] as number)) > 1e-9 * (sigmas[i] as number))) {
    problems.push('the sampling plan assumes eps-prediction (c_skip 1, c_out -sigma)');
  }
  const tmp = mkdtempSync(join(tmpdir(), 'difflab-train-image-'));
  const planFile = join(tmp, 'plan.json');
  writeFileSync(planFile, JSON.stringify({ sigmas, c_in: coeffs.map((c) => c.cIn), c_noise: coeffs.map((c) => c.cNoise) }));

  const rows: Row[] = [];
  try {
    // PyTorch first: creating the venv is the only step that can take minutes.
    let torch: TorchOutcome = { ok: false, reason: 'skipped (--skip-torch)' };
    if (!args.skipTorch) {
      torch = ensureTorch();
      if (!torch.ok) console.log(`PyTorch rows skipped: ${torch.reason}`);
    }
    const torchJson = new Map<number, TorchJson>();
    // On a GPU (--torch-device cuda) PyTorch's thread count hardly matters: one row.
    const torchThreads = args.torchDevice === 'cpu' ? [...new Set([1, cores])] : [cores];
    for (const threads of torchThreads) {
      if (torch.ok) {
        log(`pytorch, ${threads} thread(s): train + sample...`);
        const r = torchRows(torch.python, threads, args, difflabParams, args.skipSample ? undefined : planFile, args.profile && threads === cores);
        rows.push(...r.rows);
        if (r.json) torchJson.set(threads, r.json);
      } else {
        const engine = torchEngineName(threads, args.torchDevice);
        rows.push({ task: 'train', engine, threads, status: 'skipped', reason: torch.reason });
        if (!args.skipSample) rows.push({ task: 'sample', engine, threads, status: 'skipped', reason: torch.reason });
      }
    }
    const torchParams = [...torchJson.values()][0]?.params;
    const mismatch = rows.find((r) => r.engine.startsWith('pytorch') && r.status === 'failed' && /parameter count mismatch/.test(r.reason ?? ''));
    if (mismatch) problems.push(mismatch.reason ?? 'parameter count mismatch');

    // difflab, wasm, 1 core.
    let weights: NamedHostTensor[] | undefined;
    let trainProfile: KernelRow[] | undefined;
    let sampleProfile: KernelRow[] | undefined;
    const engine1 = 'difflab wasm, 1 core';
    const engineN = `difflab wasm, ${cores} cores`;
    if (args.skipWasm) {
      for (const task of args.skipSample ? (['train'] as const) : (['train', 'sample'] as const)) {
        rows.push({ task, engine: engine1, threads: 1, status: 'skipped', reason: '--skip-wasm' });
        rows.push({ task, engine: engineN, threads: cores, status: 'skipped', reason: '--skip-wasm' });
      }
    } else {
      log('wasm, 1 core (LocalTrainer, in-process)...');
      {
        let t: LocalTrainer | undefined;
        try {
          t = await LocalTrainer.create({ factory, optimizer, backend: 'wasm' });
          rows.push(await timeTrainer(engine1, 1, t, config, args.warmup, args.steps, stepOptions));
          if (args.profile) {
            log('profiling one wasm training step...');
            const trainer = t;
            const batch = makeBatch(config, 999);
            trainProfile = byKernel(await tf.profile(async () => void (await trainer.step(batch, stepOptions))));
          }
          weights = await t.getWeights();
        } catch (err) {
          rows.push(failed('train', engine1, 1, err));
        } finally {
          await t?.dispose();
        }
      }

      log(`wasm, ${cores} cores (DataParallelTrainer, ${cores} workers)...`);
      {
        let t: DataParallelTrainer | undefined;
        try {
          t = await DataParallelTrainer.create({ factory, optimizer, workers: cores, backend: 'wasm' });
          const row = await timeTrainer(`${engineN} (data-parallel)`, cores, t, config, args.warmup, args.steps, stepOptions);
          rows.push({ ...row, engine: engineN, extra: { ...row.extra, driver: `DataParallelTrainer, ${cores} worker threads` } });
        } catch (err) {
          rows.push(failed('train', engineN, cores, err));
        } finally {
          await t?.dispose();
        }
      }

      if (!args.skipSample) {
        const weightsFile = join(tmp, 'weights.f32');
        if (weights) writeWeights(weightsFile, weights);
        log(`wasm sampling, 1 core (${SAMPLER}, ${args.sampleNfe} NFE, batch ${args.sampleBatch})...`);
        let model: LoadedModel | undefined;
        try {
          await useBackend('wasm');
          model = samplingModel(config, weights ? weightsFile : undefined);
          rows.push(timeSampling(engine1, 1, model, args, sampleSteps));
          if (args.profile) {
            const m = model;
            const x = tf.randomNormal([args.sampleBatch, ...SHAPE]);
            const s = sigmas[0] as number;
            const sig = tf.fill([args.sampleBatch], s) as tf.Tensor1D;
            sampleProfile = byKernel(await tf.profile(() => void tf.tidy(() => m.denoiser(x, sig).dataSync())));
            tf.dispose([x, sig]);
          }
        } catch (err) {
          rows.push(failed('sample', engine1, 1, err));
        } finally {
          model?.dispose();
        }
        log(`wasm sampling, ${cores} cores (${cores} processes)...`);
        try {
          const row = await timeSamplingProcesses(engineN, cores, weights ? weightsFile : undefined, args, sampleSteps);
          rows.push({ ...row, extra: { ...row.extra, driver: `batch split over ${cores} child processes` } });
        } catch (err) {
          rows.push(failed('sample', engineN, cores, err));
        }
      }

    }

    // Native TensorFlow (default) or the backends named with --backend: training and sampling in this process.
    const extraEngines: string[] = [];
    const extraReasons: Record<string, string> = {};
    for (const wanted of args.backends.length ? args.backends : [undefined]) {
      const outcome = await activateBackend(wanted);
      const engine = `difflab ${outcome.name}`;
      extraEngines.push(engine);
      if (!outcome.ok) {
        extraReasons[outcome.name] = outcome.reason;
        rows.push({ task: 'train', engine, threads: cores, status: 'skipped', reason: outcome.reason });
        if (!args.skipSample) rows.push({ task: 'sample', engine, threads: cores, status: 'skipped', reason: outcome.reason });
        continue;
      }
      log(`${outcome.name}...`);
      let t: LocalTrainer | undefined;
      try {
        t = await LocalTrainer.create({ factory, optimizer, backend: outcome.name });
        const row = await timeTrainer(engine, cores, t, config, args.warmup, args.steps, stepOptions);
        rows.push({ ...row, extra: { ...row.extra, backend: outcome.reason } });
      } catch (err) {
        rows.push(failed('train', engine, cores, err));
      } finally {
        await t?.dispose();
      }
      if (!args.skipSample) {
        let model: LoadedModel | undefined;
        try {
          await activateBackend(outcome.name);
          model = samplingModel(config);
          rows.push(timeSampling(engine, cores, model, args, sampleSteps));
        } catch (err) {
          rows.push(failed('sample', engine, cores, err));
        } finally {
          model?.dispose();
        }
      }
    }

    // ------------------------------------------------------------------ report
    const find = (task: Task, engine: string): Row | undefined => rows.find((r) => r.task === task && r.engine === engine);
    const t1 = (task: Task): Row | undefined => find(task, torchEngineName(1, args.torchDevice));
    const tN = (task: Task): Row | undefined => find(task, torchEngineName(cores, args.torchDevice));
    const vsTorch = (r: Row): number | null => (r.engine.startsWith('pytorch') ? null : ratio(r, r.threads === 1 ? t1(r.task) : tN(r.task)));

    const header = ['task', 'engine', 'threads', 'images/s', 'ms (median)', 'vs PyTorch (same threads)', 'load1 at start', 'note'];
    const lines = rows.map((r) => [
      r.task,
      r.engine,
      String(r.threads),
      fmt(r.imagesPerS, 1),
      fmt(r.medianMs, 0),
      r.engine.startsWith('pytorch') ? (r.status === 'ok' ? '1.00' : '-') : fmt(vsTorch(r)),
      fmt(r.loadavg1AtStart),
      r.status === 'ok'
        ? r.task === 'train'
          ? `batch ${r.batch}: ${r.timesMs?.length} timed steps, ${r.warmup} warm-up`
          : `batch ${r.batch}, ${String(r.extra?.['nfe'])} NFE: ${r.timesMs?.length} timed runs, ${r.warmup} warm-up`
        : `${r.status}: ${r.reason}`,
    ]);
    printTable(header, lines);

    const torchReason = !torch.ok
      ? torch.reason
      : tN('train')?.status !== 'ok'
        ? `PyTorch run failed: ${tN('train')?.reason}`
        : undefined;
    const summary = {
      train_vs_pytorch: ratio(find('train', engineN), tN('train')),
      sample_vs_pytorch: ratio(find('sample', engineN), tN('sample')),
      train_per_core_vs_pytorch: ratio(find('train', engine1), t1('train')),
      sample_per_core_vs_pytorch: ratio(find('sample', engine1), t1('sample')),
      train_difflab_all_cores_vs_1_core: ratio(find('train', engineN), find('train', engine1)),
      train_pytorch_all_threads_vs_1_thread: ratio(tN('train'), t1('train')),
      sample_difflab_all_cores_vs_1_core: ratio(find('sample', engineN), find('sample', engine1)),
      sample_pytorch_all_threads_vs_1_thread: ratio(tN('sample'), t1('sample')),
      // Per extra backend (native TensorFlow by default): against PyTorch and against wasm on all cores.
      ...Object.fromEntries(
        extraEngines.flatMap((e) => {
          const key = e.replace(/^difflab /, '').replace(/-/g, '_');
          return (['train', 'sample'] as const).flatMap((task) => [
            [`${task}_${key}_vs_pytorch`, ratio(find(task, e), tN(task))],
            [`${task}_${key}_vs_wasm_all_cores`, ratio(find(task, e), find(task, engineN))],
          ]);
        }),
      ),
      images_per_s: {
        train: { difflab_all_cores: find('train', engineN)?.imagesPerS ?? null, pytorch_all_threads: tN('train')?.imagesPerS ?? null },
        sample: { difflab_all_cores: find('sample', engineN)?.imagesPerS ?? null, pytorch_all_threads: tN('sample')?.imagesPerS ?? null },
      },
      ...(torchReason ? { pytorch_reason: torchReason } : {}),
      ...Object.fromEntries(Object.entries(extraReasons).map(([name, why]) => [`${name.replace(/-/g, '_')}_reason`, why])),
      ...(problems.length ? { problems } : {}),
    };
    console.log('\nsummary:', JSON.stringify(summary));
    console.log(`parameters: difflab ${difflabParams.toLocaleString('en-US')}, PyTorch ${torchParams?.toLocaleString('en-US') ?? '-'}`);
    printBreakdown(find('train', engineN)?.breakdown, 'AdamW');
    printKernels('wasm kernels, one training step, batch ' + B, trainProfile);
    printKernels(`wasm kernels, one sampling NFE, batch ${args.sampleBatch}`, sampleProfile);
    const tprof = torchJson.get(cores)?.profile;
    printTorchProfile(cores, tprof);

    const torchInfo = [...torchJson.values()][0];
    const report = {
      summary,
      machine: machineInfo(loadBefore, torchInfo ? { torch: torchInfo.torch, mkldnn: torchInfo.mkldnn, device: torchInfo.device } : undefined),
      config: {
        file: 'configs/fashion-unet.yaml',
        model: config.model,
        diffusion: config.diffusion,
        input: SHAPE,
        batch: B,
        optimizer,
        clipGradNorm: config.train.grad_clip,
        params: { difflab: difflabParams, pytorch: torchParams ?? null, expected: EXPECTED_PARAMS },
        sampling: { sampler: SAMPLER, nfe: args.sampleNfe, steps: sampleSteps, discretization: config.sample.discretization, rho: config.sample.rho, batch: args.sampleBatch, sigmas },
        steps: args.steps,
        warmup: args.warmup,
        torchSteps: args.torchSteps,
        torchWarmup: args.torchWarmup,
        sampleRuns: args.sampleRuns,
        torchAttention: args.torchSdpa ? 'scaled_dot_product_attention' : 'matmul-softmax-matmul (as difflab)',
        torchLayout: 'NCHW (PyTorch default)',
      },
      rows,
      profiles: { wasmTrainStep: trainProfile, wasmSampleNfe: sampleProfile, pytorchTrainStep: tprof },
    };
    writeReport(args.out, report);
    if (problems.length) {
      console.error(`error: ${problems.join('; ')}`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const invoked = process.argv[1] ? pathToFileURL(resolve(process.argv[1])).href : '';
if (invoked === import.meta.url) {
  const argv = process.argv.slice(2);
  const run = argv.includes('--sample-worker') ? sampleWorker(argv) : main();
  run.catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
