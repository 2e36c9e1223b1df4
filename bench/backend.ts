/**
 * `npm run bench:backend`: training-step speed of one small conv net on every
 * engine difflab can use here, side by side with PyTorch on the same cores.
 *
 * Network (same in bench/torch/backend_net.py): 3x3 convs 1->64, three
 * 64->64, 64->1, SiLU between them, MSE against a fixed target, Adam 1e-3,
 * batch 32 of 28x28x1 (NHWC in tfjs, NCHW in PyTorch: each framework's
 * default layout).
 *
 * Rows: wasm on 1 core (in-process), wasm on all cores (DataParallelTrainer,
 * one worker per core), tfjs `cpu` (about 1 GFLOP/s, so only 1 timed step
 * after 1 warm-up on a 2-row batch by default), native TensorFlow (tfjs-node,
 * built by `npm run install:native`; it uses every core itself) when
 * installed, PyTorch with 1 thread and with all threads. Each row: warm-up steps excluded, median of timed
 * steps. Writes bench/results/backend.json.
 *
 * Flags: --steps N, --warmup N (wasm and tfjs-node rows), --cpu-steps N,
 * --cpu-warmup N, --torch-steps N, --skip-cpu, --skip-torch, --no-profile,
 * --out FILE.
 *
 * This module also exports the network as a difflab model factory
 * (`createBackendNet`): the data-parallel workers import it from here.
 */
import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useBackend } from '../src/core/backend/select.js';
import { DataParallelTrainer } from '../src/core/parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../src/core/parallel/local-trainer.js';
import type { Batch, HostBatch, HostTensor, OptimizerSpec, StepResult, TrainableModel, Trainer } from '../src/core/parallel/types.js';
import { Rng } from '../src/core/random.js';
import { activateBackend, byKernel, ensureTorch, firstLine, fmt, loadavg1, machineInfo, noteLoad, parseBenchFlags, printBreakdown, printKernels, printTable, runTorchScript, timeTrainerSteps, writeReport, type BenchRowBase, type KernelRow, type TorchOutcome } from './lib/common.js';

export interface BackendNetOptions {
  readonly seed: number;
  readonly channels: number;
  readonly hiddenLayers: number;
}

export const NET: BackendNetOptions = { seed: 0, channels: 64, hiddenLayers: 3 };
const BATCH = 32;
const SIZE = 28;
const OPTIMIZER: OptimizerSpec = { kind: 'adam', learningRate: 1e-3 };
const CPU_WARMUP_ROWS = 2;

let netId = 0;

/** The benchmark network as a model factory: batch {x, target}, both [B, 28, 28, 1]. */
export function createBackendNet(o: BackendNetOptions): TrainableModel {
  const rng = new Rng(o.seed);
  const tag = `backendNet${netId++}`;
  const chans = [1, ...Array<number>(o.hiddenLayers + 1).fill(o.channels), 1];
  const layers = chans.slice(1).map((cout, i) => {
    const cin = chans[i] as number;
    // He-uniform-like scale; the values do not matter for speed, only that they are finite and seeded.
    const bound = 1 / Math.sqrt(cin * 9);
    const w = tf.tidy(() => tf.variable(rng.uniformTensor([3, 3, cin, cout]).mul(2 * bound).sub(bound), true, `${tag}/w${i}`));
    const b = tf.variable(tf.zeros([cout]), true, `${tag}/b${i}`);
    return { w: w as tf.Variable<tf.Rank.R4>, b };
  });
  return {
    variables: layers.flatMap((l) => [l.w, l.b]),
    loss(batch: Batch): tf.Scalar {
      let h = batch['x'] as tf.Tensor4D;
      layers.forEach((l, i) => {
        h = tf.add(tf.conv2d(h, l.w, 1, 'same'), l.b);
        if (i < layers.length - 1) h = tf.mul(h, tf.sigmoid(h)); // SiLU
      });
      return tf.mean(tf.squaredDifference(h, batch['target'] as tf.Tensor4D));
    },
  };
}

// ---------------------------------------------------------------------------

interface Row extends BenchRowBase {
  readonly warmup?: number;
  readonly stepMs?: number[];
  readonly medianMs?: number;
  readonly stepsPerS?: number;
  /** Mean per-step breakdown (tfjs rows): compute, wait, reduce, apply, in ms. */
  readonly breakdown?: Record<string, number>;
  readonly extra?: Record<string, unknown>;
}

interface Args {
  steps: number;
  warmup: number;
  cpuSteps: number;
  cpuWarmup: number;
  torchSteps: number;
  skipCpu: boolean;
  skipTorch: boolean;
  profile: boolean;
  out: string;
}

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    steps: 6,
    warmup: 2,
    cpuSteps: 1,
    cpuWarmup: 1,
    torchSteps: 10,
    skipCpu: false,
    skipTorch: false,
    profile: true,
    out: join(here, 'results', 'backend.json'),
  };
  return parseBenchFlags('backend', argv, defaults, {
    '--steps': { int: 'steps', min: 1 },
    '--warmup': { int: 'warmup', min: 0 },
    '--cpu-steps': { int: 'cpuSteps', min: 1 },
    '--cpu-warmup': { int: 'cpuWarmup', min: 0 },
    '--torch-steps': { int: 'torchSteps', min: 1 },
    '--skip-cpu': { set: 'skipCpu' },
    '--skip-torch': { set: 'skipTorch' },
    '--no-profile': { set: 'profile', value: false },
    '--out': { path: 'out' },
  });
}

function makeBatch(rows = BATCH): HostBatch {
  const rng = new Rng(1234);
  const shape = [rows, SIZE, SIZE, 1];
  return {
    x: { shape, dtype: 'float32', data: rng.normalArray(rows * SIZE * SIZE) },
    target: { shape, dtype: 'float32', data: rng.normalArray(rows * SIZE * SIZE) },
  };
}

const FACTORY = { module: fileURLToPath(import.meta.url), exportName: 'createBackendNet', options: NET };

async function timeTrainer(
  engine: string,
  threads: number,
  make: () => Promise<Trainer>,
  warmup: number,
  steps: number,
  batch: HostBatch,
  warmupBatch: HostBatch = batch,
): Promise<Row> {
  let t: Trainer | undefined;
  const load = loadavg1();
  try {
    t = await make();
    const timed = await timeTrainerSteps(t, engine, warmup, steps, (_i, warm) => (warm ? warmupBatch : batch));
    const med = timed.medianMs;
    const stepMs = timed.timesMs;
    const breakdown = timed.breakdown;
    return {
      engine,
      threads,
      status: 'ok',
      warmup,
      stepMs,
      medianMs: med,
      stepsPerS: 1000 / med,
      breakdown,
      extra: { lastLoss: timed.lastLoss, worldSize: t.worldSize, loadavg1AtStart: load },
    };
  } catch (err) {
    return { engine, threads, status: 'failed', reason: firstLine(err) };
  } finally {
    await t?.dispose();
  }
}

/** Kernel time of one wasm training step (forward, backward, Adam), summed by kernel name. */
async function profileWasmStep(batch: HostBatch): Promise<KernelRow[]> {
  await useBackend('wasm');
  const model = createBackendNet(NET);
  const opt = tf.train.adam(OPTIMIZER.learningRate);
  const tensors: Batch = Object.fromEntries(
    Object.entries(batch).map(([k, v]) => {
      const h = v as HostTensor;
      return [k, tf.tensor(h.data, [...h.shape])];
    }),
  );
  const run = (): void =>
    tf.tidy(() => {
      const ctx = { step: 0, rowOffset: 0, globalBatchSize: BATCH, rank: 0, worldSize: 1 };
      const { value, grads } = tf.variableGrads(() => model.loss(tensors, ctx), [...model.variables]);
      opt.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
      value.dataSync();
    });
  run(); // warm-up: creates Adam's slots, JITs
  const info = await tf.profile(() => run());
  opt.dispose();
  tf.dispose([...model.variables, ...Object.values(tensors)]);
  return byKernel(info);
}

interface TorchJson {
  step_ms: number[];
  median_ms: number;
  steps_per_s: number;
  torch: string;
  threads: number;
  mkldnn: boolean;
}

function torchRow(python: string, threads: number, warmup: number, steps: number): Row {
  const engine = `pytorch ${threads === 1 ? '1 thread' : `${threads} threads`}`;
  const load = loadavg1();
  const r = runTorchScript<TorchJson>(python, 'backend_net.py', ['--threads', String(threads), '--warmup', String(warmup), '--steps', String(steps)]);
  if (!r.ok) return { engine, threads, status: 'failed', reason: r.reason };
  const j = r.json;
  return {
    engine,
    threads,
    status: 'ok',
    warmup,
    stepMs: j.step_ms,
    medianMs: j.median_ms,
    stepsPerS: j.steps_per_s,
    extra: { torch: j.torch, threadsUsed: j.threads, mkldnn: j.mkldnn, loadavg1AtStart: load },
  };
}

function ratio(a: Row | undefined, b: Row | undefined): number | null {
  return a?.stepsPerS && b?.stepsPerS ? a.stepsPerS / b.stepsPerS : null;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cores = availableParallelism();
  const batch = makeBatch();
  const loadBefore = noteLoad(cores);
  const rows: Row[] = [];
  const log = (s: string): void => void process.stderr.write(`${s}\n`);

  // PyTorch first: creating the venv is the only step that can take minutes.
  let torch: TorchOutcome = { ok: false, reason: 'skipped (--skip-torch)' };
  if (!args.skipTorch) {
    torch = ensureTorch();
    if (!torch.ok) console.log(`PyTorch rows skipped: ${torch.reason}`);
  }
  const torchRows = new Map<number, Row>();
  for (const threads of [...new Set([1, cores])]) {
    const r: Row = torch.ok
      ? (log(`pytorch, ${threads} thread(s)...`), torchRow(torch.python, threads, 3, args.torchSteps))
      : { engine: `pytorch ${threads} thread(s)`, threads, status: 'skipped', reason: torch.reason };
    torchRows.set(threads, r);
  }

  log('wasm, 1 core (in-process)...');
  const wasm1 = await timeTrainer(
    'tfjs wasm, 1 core',
    1,
    () => LocalTrainer.create({ factory: FACTORY, optimizer: OPTIMIZER, backend: 'wasm' }),
    args.warmup,
    args.steps,
    batch,
  );
  rows.push(wasm1);

  log(`wasm, ${cores} cores (data-parallel, ${cores} workers)...`);
  const wasmAll = await timeTrainer(
    `tfjs wasm, ${cores} cores (data-parallel)`,
    cores,
    () => DataParallelTrainer.create({ factory: FACTORY, optimizer: OPTIMIZER, workers: cores, backend: 'wasm' }),
    args.warmup,
    args.steps,
    batch,
  );
  rows.push(wasmAll);

  let profile: KernelRow[] | undefined;
  if (args.profile) {
    log('profiling one wasm step...');
    profile = await profileWasmStep(batch);
  }

  // Native TensorFlow: when `npm run install:native` (or tfjs-node-gpu) has installed it.
  let nodeRow: Row;
  const native = await activateBackend();
  if (native.ok) {
    log(`${native.name}...`);
    nodeRow = await timeTrainer(
      `${native.name} (native TF)`,
      cores,
      () => LocalTrainer.create({ factory: FACTORY, optimizer: OPTIMIZER, backend: native.name }),
      args.warmup,
      args.steps,
      batch,
    );
    nodeRow = { ...nodeRow, extra: { ...nodeRow.extra, backend: native.reason } };
  } else {
    nodeRow = { engine: 'tfjs-node (native TF)', threads: cores, status: 'skipped', reason: native.reason };
  }

  let cpuRow: Row;
  if (args.skipCpu) {
    cpuRow = { engine: 'tfjs cpu (pure JS)', threads: 1, status: 'skipped', reason: '--skip-cpu' };
  } else {
    log(`tfjs cpu backend (${args.cpuWarmup} warm-up on ${CPU_WARMUP_ROWS} rows + ${args.cpuSteps} timed; minutes per step)...`);
    // The warm-up runs the same kernels (JIT, Adam slots) on a small batch: a full one costs minutes.
    cpuRow = await timeTrainer(
      'tfjs cpu (pure JS)',
      1,
      () => LocalTrainer.create({ factory: FACTORY, optimizer: OPTIMIZER, backend: 'cpu' }),
      args.cpuWarmup,
      args.cpuSteps,
      batch,
      makeBatch(CPU_WARMUP_ROWS),
    );
  }
  rows.push(cpuRow, nodeRow);
  const torch1 = torchRows.get(1);
  const torchN = torchRows.get(cores);
  rows.push(...torchRows.values());

  const vsTorch = (r: Row): number | null => ratio(r, r.threads === 1 ? torch1 : torchN);
  const torchReason = torch.ok
    ? torchN?.status === 'ok'
      ? undefined
      : `PyTorch run failed: ${torchN?.reason}`
    : torch.reason;

  // Table.
  const header = ['engine', 'threads', 'steps/s', 'ms/step (median)', 'vs PyTorch (same threads)', 'note'];
  const lines = rows.map((r) => [
    r.engine,
    String(r.threads),
    fmt(r.stepsPerS, 3),
    fmt(r.medianMs, 0),
    r.engine.startsWith('pytorch') ? '1.00' : fmt(vsTorch(r)),
    r.status === 'ok' ? `${r.stepMs?.length} timed, ${r.warmup} warm-up` : `${r.status}: ${r.reason}`,
  ]);
  printTable(header, lines);

  const summary = {
    wasm_all_cores_vs_pytorch: ratio(wasmAll, torchN),
    wasm_all_cores_vs_wasm_1_core: ratio(wasmAll, wasm1),
    wasm_1_core_vs_pytorch_1_thread: ratio(wasm1, torch1),
    tfjs_cpu_vs_pytorch_1_thread: ratio(cpuRow, torch1),
    tfjs_node_vs_pytorch: ratio(nodeRow, torchN),
    tfjs_node_vs_wasm_all_cores: ratio(nodeRow, wasmAll),
    ...(torchReason ? { pytorch_reason: torchReason } : {}),
    ...(nodeRow.status !== 'ok' ? { tfjs_node_reason: nodeRow.reason } : {}),
  };
  console.log('\nsummary:', JSON.stringify(summary));
  printBreakdown(wasmAll.breakdown, 'Adam', 1);
  printKernels('wasm kernels, one step', profile);

  const report = {
    summary,
    machine: machineInfo(loadBefore),
    config: {
      network: 'conv3x3 1->64, 3x 64->64, 64->1, SiLU, MSE, Adam(1e-3)',
      batch: BATCH,
      input: [SIZE, SIZE, 1],
      params: createParamsCount(),
      steps: args.steps,
      warmup: args.warmup,
      cpuSteps: args.cpuSteps,
      cpuWarmup: args.cpuWarmup,
      torchSteps: args.torchSteps,
    },
    rows,
    wasmProfile: profile,
  };
  writeReport(args.out, report);
}

function createParamsCount(): number {
  const c = NET.channels;
  return 9 * c + c + NET.hiddenLayers * (9 * c * c + c) + 9 * c + 1;
}

const invoked = process.argv[1] ? pathToFileURL(resolve(process.argv[1])).href : '';
if (invoked === import.meta.url) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
