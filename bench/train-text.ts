/**
 * `npm run bench:train-text`: training speed (tokens/s) of the text plugin's
 * Diffusion-LM transformer (configs/text-shakespeare.yaml) in difflab, side
 * by side with the same network in PyTorch (bench/torch/transformer.py).
 *
 * Model and objective: the config's model and data shape (seq_len tokens of
 * embedding_dim, the vocabulary of the corpus' training split), the sqrt
 * schedule's discrete sigmas drawn uniformly, x0-prediction MSE plus the
 * embedding, rounding and prior terms (the text loss adapter), AdamW with the
 * config's lr, betas and weight decay, clipping at grad_clip. The PyTorch
 * network mirrors difflab's layer for layer; its parameter count is checked
 * against difflab's (a mismatch fails the PyTorch rows and the run). Batches
 * are synthetic (uniform token ids): speed does not depend on the text.
 *
 * Rows: difflab wasm 1 core (in-process), wasm all cores (data-parallel
 * workers), native TensorFlow (tfjs-node, in-process) when installed,
 * PyTorch 1 thread and all threads. Warm-up steps excluded; median of the
 * timed steps; tokens/s = batch * seq_len / median.
 *
 * Writes bench/results/train-text.json (summary.train_vs_pytorch = difflab's
 * best row / PyTorch all threads) and prints a table.
 *
 * Flags: --steps N (5), --warmup N (2), --torch-steps N (10), --torch-warmup
 * N (3), --batch N (the config's), --skip-torch, --out FILE.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../src/core/backend/select.js';
import { diffusionFromConfig } from '../src/core/config/diffusion.js';
import { loadRunConfig } from '../src/core/config/load.js';
import { DataParallelTrainer } from '../src/core/parallel/data-parallel-trainer.js';
import { LocalTrainer } from '../src/core/parallel/local-trainer.js';
import type { FactorySpec, HostBatch, OptimizerSpec, StepOptions, Trainer } from '../src/core/parallel/types.js';
import { PluginRegistry } from '../src/core/plugin.js';
import { Rng } from '../src/core/random.js';
import type { DiffusionModelOptions } from '../src/core/training/diffusion-model.js';
import type { TextDataConfig } from '../src/plugins/text/config.js';
import { openTextData, vocabSize } from '../src/plugins/text/data.js';
import { textPlugin } from '../src/plugins/text/index.js';
import { createTextNetwork, parseTextModelConfig } from '../src/plugins/text/transformer.js';
import { activateBackend, ensureTorch, firstLine, fmt, loadavg1, machineInfo, noteLoad, parseBenchFlags, printTable, runTorchScript, timeTrainerSteps, writeReport, type BenchRowBase, type TorchOutcome } from './lib/common.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..');
const CONFIG_FILE = join(ROOT, 'configs', 'text-shakespeare.yaml');

interface Args {
  steps: number;
  warmup: number;
  torchSteps: number;
  torchWarmup: number;
  batch: number | undefined;
  skipTorch: boolean;
  out: string;
}

function parseArgs(argv: string[]): Args {
  return parseBenchFlags(
    'train-text',
    argv,
    { steps: 5, warmup: 2, torchSteps: 10, torchWarmup: 3, batch: undefined, skipTorch: false, out: join(here, 'results', 'train-text.json') } as Args,
    {
      '--steps': { int: 'steps', min: 1 },
      '--warmup': { int: 'warmup', min: 0 },
      '--torch-steps': { int: 'torchSteps', min: 1 },
      '--torch-warmup': { int: 'torchWarmup', min: 0 },
      '--batch': { int: 'batch', min: 1 },
      '--skip-torch': { set: 'skipTorch' },
      '--out': { path: 'out' },
    },
  );
}

interface Row extends BenchRowBase {
  readonly batch?: number;
  readonly timesMs?: number[];
  readonly medianMs?: number;
  readonly tokensPerS?: number;
  readonly params?: number;
  readonly loadavg1AtStart?: number;
  readonly lastLoss?: number;
}

interface TorchJson {
  torch: string;
  threads: number;
  params: number;
  train: { loadavg1_at_start: number; batch: number; seq_len: number; step_ms: number[]; median_ms: number; tokens_per_s: number; last_loss: number };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cores = availableParallelism();
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const loadBefore = noteLoad(cores);
  const config = loadRunConfig(CONFIG_FILE, new PluginRegistry([textPlugin]));
  const data = config.data as TextDataConfig;
  const model = parseTextModelConfig(config.model);
  // The vocabulary is the corpus' training split's (the network's softmax size depends on it).
  const source = await openTextData(data, { split: 'train', baseDir: dirname(CONFIG_FILE), rng: new Rng(0), log });
  const V = vocabSize(source.vocab);
  const L = data.seq_len;
  const E = data.embedding_dim;
  const B = args.batch ?? config.train.batch_size;
  const parts = diffusionFromConfig(config.diffusion);
  const discrete = parts.schedule.discrete;
  if (!discrete || config.diffusion.parametrization.type !== 'x0' || config.diffusion.objective.weighting.type !== 'uniform') {
    throw new Error(`${CONFIG_FILE}: the PyTorch mirror implements a discrete schedule with x0-prediction and uniform weighting`);
  }
  const sigmas = Array.from(discrete.sigmas);
  const [beta1, beta2] = config.train.adam_betas;
  const optimizer: OptimizerSpec = { kind: 'adamw', learningRate: config.train.lr, weightDecay: config.train.weight_decay, beta1, beta2 };
  const stepOptions: StepOptions = { learningRate: config.train.lr, ...(config.train.grad_clip !== null ? { clipGradNorm: config.train.grad_clip } : {}) };
  const factoryOptions: DiffusionModelOptions = {
    plugin: textPlugin.source!,
    model: config.model,
    diffusion: config.diffusion,
    exampleShape: [L, E],
    dataShape: [L],
    dataInfo: source.vocab,
    seed: config.seed,
  };
  const factory: FactorySpec = { module: fileURLToPath(new URL('../src/core/training/diffusion-model.ts', import.meta.url)), exportName: 'createDiffusionModel', options: factoryOptions };

  await useBackend('wasm');
  const probe = createTextNetwork(model, { exampleShape: [L, E], dataShape: [L], dataInfo: source.vocab, rng: new Rng(config.seed) });
  const difflabParams = probe.parameterCount();
  probe.dispose();
  log(`difflab text transformer: ${difflabParams.toLocaleString('en-US')} parameters (vocabulary ${V}); windows of ${L} tokens x ${E}, batch ${B}`);

  const batchFor = (rows: number) => (i: number): HostBatch => {
    const rng = Rng.derive(9003, i);
    return {
      data: { shape: [rows, L], dtype: 'int32', data: Int32Array.from({ length: rows * L }, () => rng.int(V)) },
      eps: { shape: [rows, L, E], dtype: 'float32', data: rng.normalArray(rows * L * E) },
      sigma: { shape: [rows], dtype: 'float32', data: Float32Array.from({ length: rows }, () => sigmas[rng.int(sigmas.length)] as number) },
    };
  };
  const timeRow = async (engine: string, threads: number, trainer: Trainer): Promise<Row> => {
    const load = loadavg1();
    const t = await timeTrainerSteps(trainer, engine, args.warmup, args.steps, batchFor(B), stepOptions);
    return { engine, threads, status: 'ok', batch: B, timesMs: t.timesMs, medianMs: t.medianMs, tokensPerS: (B * L * 1000) / t.medianMs, params: difflabParams, loadavg1AtStart: load, ...(t.lastLoss !== undefined ? { lastLoss: t.lastLoss } : {}) };
  };

  const rows: Row[] = [];
  const problems: string[] = [];
  // PyTorch first (creating the venv is the only step that can take minutes).
  let torch: TorchOutcome = { ok: false, reason: 'skipped (--skip-torch)' };
  if (!args.skipTorch) torch = ensureTorch();
  const sigmasFile = join(mkdtempSync(join(tmpdir(), 'difflab-bench-text-')), 'sigmas.json');
  writeFileSync(sigmasFile, JSON.stringify(sigmas));
  let torchVersion: string | undefined;
  for (const threads of cores > 1 ? [1, cores] : [1]) {
    const engine = `pytorch ${threads} thread${threads > 1 ? 's' : ''}`;
    if (!torch.ok) {
      rows.push({ engine, threads, status: 'skipped', reason: torch.reason });
      continue;
    }
    log(`${engine}, batch ${B}...`);
    const cli = [
      '--threads', String(threads), '--warmup', String(args.torchWarmup), '--steps', String(args.torchSteps), '--batch', String(B),
      '--vocab', String(V), '--seq-len', String(L), '--dim', String(E), '--width', String(model.width), '--layers', String(model.layers),
      '--heads', String(model.heads), '--hidden', String(Math.max(1, Math.round(model.width * model.mlp_ratio))), '--noise-dim', String(model.noise_embedding_dim),
      '--conditioning', model.conditioning, '--lr', String(config.train.lr), '--weight-decay', String(config.train.weight_decay),
      '--beta1', String(beta1), '--beta2', String(beta2), '--grad-clip', String(config.train.grad_clip ?? 0), '--expect-params', String(difflabParams),
      '--w-embedding', String(model.loss.embedding), '--w-rounding', String(model.loss.rounding), '--w-prior', String(model.loss.prior), '--sigmas-file', sigmasFile,
    ];
    if (model.rounding_head !== 'tied' || model.noise_input_scale !== 1) {
      rows.push({ engine, threads, status: 'skipped', reason: 'the mirror implements the tied rounding head and noise_input_scale 1' });
      continue;
    }
    const r = runTorchScript<TorchJson>(torch.python, 'transformer.py', cli);
    if (!r.ok) {
      rows.push({ engine, threads, status: 'failed', reason: r.reason });
      if (/parameter count mismatch/.test(r.reason)) problems.push(r.reason);
      continue;
    }
    const j = r.json;
    torchVersion = j.torch;
    rows.push({ engine, threads, status: 'ok', batch: j.train.batch, timesMs: j.train.step_ms, medianMs: j.train.median_ms, tokensPerS: j.train.tokens_per_s, params: j.params, loadavg1AtStart: j.train.loadavg1_at_start, lastLoss: j.train.last_loss });
  }

  log('difflab wasm, 1 core...');
  try {
    const t = await LocalTrainer.create({ factory, optimizer, backend: 'wasm' });
    try {
      rows.push(await timeRow('difflab wasm, 1 core', 1, t));
    } finally {
      await t.dispose();
    }
  } catch (err) {
    rows.push({ engine: 'difflab wasm, 1 core', threads: 1, status: 'failed', reason: firstLine(err) });
  }
  if (cores > 1) {
    log(`difflab wasm, ${cores} cores (data-parallel)...`);
    try {
      const t = await DataParallelTrainer.create({ factory, optimizer, workers: cores, backend: 'wasm' });
      try {
        rows.push(await timeRow(`difflab wasm, ${cores} cores`, cores, t));
      } finally {
        await t.dispose();
      }
    } catch (err) {
      rows.push({ engine: `difflab wasm, ${cores} cores`, threads: cores, status: 'failed', reason: firstLine(err) });
    }
  }
  const native = await activateBackend();
  const engineNative = `difflab ${native.name}`;
  if (native.ok) {
    log(`${engineNative}...`);
    try {
      const t = await LocalTrainer.create({ factory, optimizer, backend: native.name });
      try {
        rows.push(await timeRow(engineNative, cores, t));
      } finally {
        await t.dispose();
      }
    } catch (err) {
      rows.push({ engine: engineNative, threads: cores, status: 'failed', reason: firstLine(err) });
    }
  } else {
    rows.push({ engine: engineNative, threads: cores, status: 'skipped', reason: native.reason });
  }

  const ok = (r: Row | undefined) => (r?.status === 'ok' ? r : undefined);
  const torchAll = ok(rows.find((r) => r.engine.startsWith('pytorch') && r.threads === cores)) ?? ok(rows.find((r) => r.engine === 'pytorch 1 thread'));
  const torch1 = ok(rows.find((r) => r.engine === 'pytorch 1 thread'));
  const difflabRows = rows.filter((r) => r.engine.startsWith('difflab') && r.status === 'ok');
  const best = difflabRows.sort((p, q) => (q.tokensPerS ?? 0) - (p.tokensPerS ?? 0))[0];
  const wasm1 = ok(rows.find((r) => r.engine === 'difflab wasm, 1 core'));
  const ratio = (a: Row | undefined, b: Row | undefined) => (a?.tokensPerS && b?.tokensPerS ? a.tokensPerS / b.tokensPerS : null);
  const summary = {
    train_vs_pytorch: ratio(best, torchAll),
    train_vs_pytorch_engines: best && torchAll ? `${best.engine} vs ${torchAll.engine}` : null,
    train_per_core_vs_pytorch: ratio(wasm1, torch1),
    tokens_per_s: Object.fromEntries(rows.map((r) => [r.engine, r.tokensPerS ?? null])),
    ...(problems.length ? { problems } : {}),
  };
  printTable(
    ['engine', 'status', 'tokens/s', 'median ms/step', 'vs PyTorch all threads', 'load at start'],
    rows.map((r) => [r.engine, r.status === 'ok' ? 'ok' : `${r.status}: ${r.reason}`, fmt(r.tokensPerS, 0), fmt(r.medianMs, 0), fmt(ratio(r, torchAll)), fmt(r.loadavg1AtStart)]),
  );
  console.log('\nsummary:', JSON.stringify(summary));
  writeReport(args.out, {
    summary,
    machine: machineInfo(loadBefore, torchVersion ? { torch: torchVersion } : undefined),
    config: { file: 'configs/text-shakespeare.yaml', model, data: { seq_len: L, embedding_dim: E, vocabulary: V }, batch: B, optimizer, clipGradNorm: config.train.grad_clip, params: difflabParams, steps: args.steps, warmup: args.warmup, torchSteps: args.torchSteps, torchWarmup: args.torchWarmup },
    rows,
  });
  if (problems.length) {
    console.error(`error: ${problems.join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
