/**
 * `npm run bench:quality-image`: sample quality at equal training wall-clock,
 * difflab's default Fashion-MNIST config against the recipe a Python user
 * would pick instead: Hugging Face diffusers' UNet2DModel + DDPMScheduler
 * (bench/python/diffusers_fashion.py, PyTorch 2.13 CPU, all cores).
 *
 * 1. difflab: `difflab train <config>` exactly as a user runs it (a child
 *    process, the config's own steps, data-parallel workers on all cores,
 *    its periodic sample grids and checkpoints included). Its wall-clock,
 *    process start to exit, is the budget.
 * 2. diffusers: the same network size (1,112,801 parameters: difflab's
 *    U-Net mirrors UNet2DModel block for block), trained for the same
 *    wall-clock from process start, with the config's batch, lr, warm-up,
 *    gradient clipping and EMA; then n samples with DDPMScheduler.
 * 3. Both sample sets are scored by the same code: difflab's Fashion-MNIST
 *    classifier features (FD, KID) and softmax (IS), against the training
 *    split, each beside the floor (n test images against the same training
 *    features). Sampling time is reported, not part of the budget.
 *
 * Writes bench/results/quality-image.json (`summary.fd_difflab`,
 * `summary.fd_diffusers`, `summary.fd_floor`, ...), and 8x8 PNG grids of
 * both sides' first 64 samples beside it.
 *
 * Flags: --config FILE (configs/fashion-unet-edm.yaml), --max-steps N (train
 * fewer steps than the config: smoke runs), --n N (1000 samples each),
 * --diffusers-steps K (100 DDPMScheduler steps; its pipeline default is 1000,
 * which would take about an hour for 1000 samples here), --run-dir DIR
 * (runs/bench/quality-image), --reuse (keep a finished difflab run in
 * DIR/difflab and its measured wall-clock instead of retraining),
 * --skip-diffusers, --out FILE.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../src/core/backend/select.js';
import { loadRunConfig, parseRunConfig } from '../src/core/config/load.js';
import { generate, loadModel } from '../src/core/generate.js';
import { writeFileAtomic } from '../src/core/io/atomic.js';
import { evaluateSamples, extractReference, formatEvaluation, type EvaluationReport } from '../src/core/metrics/index.js';
import { Rng } from '../src/core/random.js';
import { latestCheckpointDir, loadCheckpoint } from '../src/core/training/checkpoint.js';
import { createDifflab } from '../src/container.js';
import { resolveDataPath } from '../src/plugins/image/data/paths.js';
import { firstLine, fmt } from './lib/common.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  config: string;
  maxSteps?: number;
  n: number;
  diffusersSteps: number;
  runDir: string;
  reuse: boolean;
  skipDiffusers: boolean;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    config: join(root, 'configs/fashion-unet-edm.yaml'),
    n: 1000,
    diffusersSteps: 100,
    runDir: join(root, 'runs/bench/quality-image'),
    reuse: false,
    skipDiffusers: false,
    out: join(root, 'bench/results/quality-image.json'),
  };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench:quality-image: ${flag} expects a positive integer, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench:quality-image: ${f} needs a value`);
      return v;
    };
    if (f === '--config') a.config = resolve(next());
    else if (f === '--max-steps') a.maxSteps = int(f, next());
    else if (f === '--n') a.n = int(f, next());
    else if (f === '--diffusers-steps') a.diffusersSteps = int(f, next());
    else if (f === '--run-dir') a.runDir = resolve(next());
    else if (f === '--reuse') a.reuse = true;
    else if (f === '--skip-diffusers') a.skipDiffusers = true;
    else if (f === '--out') a.out = resolve(next());
    else throw new Error(`bench:quality-image: unknown flag '${f}'`);
  }
  if (a.n < 2) throw new Error('bench:quality-image: --n must be at least 2');
  return a;
}

/** Runs a command with inherited output; resolves with its wall-clock seconds, rejects on a non-zero exit. */
function timed(cmd: string, argv: string[], label: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (e) => reject(new Error(`${label}: ${e.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolvePromise((performance.now() - t0) / 1000);
      else reject(new Error(`${label} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

function ensureDiffusers(): { ok: true; python: string } | { ok: false; reason: string } {
  const r = spawnSync('bash', [join(root, 'bench/python/ensure-diffusers-venv.sh')], { encoding: 'utf8', timeout: 20 * 60_000 });
  const last = r.stdout?.trim().split('\n').pop()?.trim() ?? '';
  if (r.status === 0 && last) return { ok: true, python: last };
  const why = (r.stderr ?? '').trim().split('\n').filter(Boolean).pop() ?? r.error?.message ?? `exit ${r.status}`;
  return { ok: false, reason: `could not create bench/.venv-diffusers with diffusers 0.42.1: ${why}` };
}

interface DiffusersResult {
  steps: number;
  train_seconds: number;
  train_steps_per_sec: number;
  sample_seconds: number;
  samples_per_sec: number;
  sampler: string;
  nfe: number;
  n: number;
  parameters: number;
  final_loss: number;
  loss_curve: [number, number][];
  [k: string]: unknown;
}

function metricRow(r: EvaluationReport): Record<string, number | null> {
  return {
    fd: r.fd.value,
    kid: r.kid.value,
    is: r.is?.value ?? null,
    mis: r.mis?.value ?? null,
    am: r.am?.value ?? null,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  mkdirSync(args.runDir, { recursive: true });
  mkdirSync(dirname(args.out), { recursive: true });
  const load1 = (): number => loadavg()[0] ?? 0;
  const loadBefore = load1();

  const userConfig = loadRunConfig(args.config, createDifflab().plugins);
  // Fail early, before half an hour of training, if the reference cannot run.
  const py = args.skipDiffusers ? { ok: false as const, reason: 'skipped (--skip-diffusers)' } : ensureDiffusers();
  if (!py.ok) console.error(`bench:quality-image: diffusers side: ${py.reason}`);

  // 1. difflab, as a user runs it.
  const difflabDir = join(args.runDir, 'difflab');
  const timingFile = join(difflabDir, 'bench-train-seconds.json');
  let trainSeconds: number;
  if (args.reuse && existsSync(timingFile) && latestCheckpointDir(difflabDir)) {
    trainSeconds = (JSON.parse(readFileSync(timingFile, 'utf8')) as { seconds: number }).seconds;
    console.error(`bench:quality-image: reusing ${difflabDir} (trained in ${trainSeconds.toFixed(0)} s)`);
  } else {
    rmSync(difflabDir, { recursive: true, force: true });
    const argv = ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'train', args.config, '--out', difflabDir];
    if (args.maxSteps !== undefined) argv.push('--max-steps', String(args.maxSteps));
    console.error(`bench:quality-image: difflab train ${args.config}`);
    trainSeconds = await timed(process.execPath, argv, 'difflab train');
    writeFileAtomic(timingFile, `${JSON.stringify({ seconds: trainSeconds })}\n`);
  }

  // 2. diffusers, same wall-clock.
  let diffusers: DiffusersResult | undefined;
  let diffusersSamples: Float32Array | undefined;
  let diffusersError: string | undefined = py.ok ? undefined : py.reason;
  if (py.ok) {
    const outDir = join(args.runDir, 'diffusers');
    rmSync(outDir, { recursive: true, force: true });
    const data = userConfig.data as { format?: string; path?: string };
    if (data.format !== 'idx' || !data.path) throw new Error(`${args.config}: data must be Fashion-MNIST IDX files (format: idx) for the diffusers side`);
    const dataDir = resolveDataPath(data.path, dirname(args.config), root);
    try {
      await timed(
        py.python,
        [join(root, 'bench/python/diffusers_fashion.py'), '--data', dataDir, '--seconds', trainSeconds.toFixed(1), '--out', outDir, '--n', String(args.n), '--sample-steps', String(args.diffusersSteps)],
        'diffusers',
      );
      diffusers = JSON.parse(readFileSync(join(outDir, 'result.json'), 'utf8')) as DiffusersResult;
      const buf = readFileSync(join(outDir, 'samples.f32'));
      diffusersSamples = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    } catch (e) {
      diffusersError = firstLine(e);
      console.error(`bench:quality-image: ${diffusersError}`);
    }
  }

  // 3. Score both with the same features.
  const difflab = createDifflab();
  const ckptDir = latestCheckpointDir(difflabDir);
  if (!ckptDir) throw new Error(`${difflabDir}: no checkpoint after training`);
  const ckpt = loadCheckpoint(ckptDir);
  const config = parseRunConfig(ckpt.meta.config, join(ckptDir, 'state.json'), difflab.plugins);
  const backend = await selectBackend(undefined);
  const plugin = difflab.plugins.get(config.modality);
  const info = { exampleShape: ckpt.meta.exampleShape, ...(ckpt.meta.numClasses !== undefined ? { numClasses: ckpt.meta.numClasses } : {}) };
  const model = loadModel(plugin, config, info, ckpt.ema ?? ckpt.state.weights);
  if (!plugin.featureExtractor || !plugin.writeSamples) throw new Error(`plugin '${plugin.id}' has no feature network or writer`);
  const extractor = await plugin.featureExtractor({ ...info, data: config.data });
  const open = (split: 'train' | 'test') =>
    plugin.openData(config.data, { split, baseDir: dirname(args.config), rng: new Rng(0), log: (m) => console.error(m) });
  const reference = await extractReference(extractor, { real: { source: await open('train') }, heldOut: { source: await open('test') } }, { batchSize: 500 });

  const t0 = performance.now();
  let nfe = 0;
  let sampler = '';
  const firstGrid: tf.Tensor[] = [];
  const difflabReport = await evaluateSamples(
    extractor,
    {
      size: args.n,
      read: (start, count) => {
        const r = generate(model, { n: count, seed: 1_000_003 + start });
        nfe = r.nfe;
        sampler = r.sampler;
        if (start === 0) firstGrid.push(r.x.slice(0, Math.min(64, count)));
        const done = start + count;
        const rate = done / ((performance.now() - t0) / 1000);
        console.error(`difflab: sampled ${done}/${args.n}  ${rate.toFixed(2)} samples/s`);
        return r.x;
      },
    },
    reference,
    { batchSize: 100 },
  );
  const difflabSampleSeconds = (performance.now() - t0) / 1000 - difflabReport.seconds;
  const gridDifflab = args.out.replace(/\.json$/, '-difflab.png');
  await plugin.writeSamples(firstGrid[0] as tf.Tensor, gridDifflab, { data: config.data, info });
  tf.dispose(firstGrid);
  model.dispose();
  console.log(`difflab (${config.name ?? args.config}, step ${ckpt.meta.step}, EMA, ${sampler}, ${nfe} NFE):`);
  for (const line of formatEvaluation(difflabReport)) console.log(`  ${line}`);

  let diffusersReport: EvaluationReport | undefined;
  let gridDiffusers: string | undefined;
  if (diffusersSamples && diffusers) {
    const shape = [diffusers.n, ...info.exampleShape];
    const x = tf.tensor(diffusersSamples, shape);
    diffusersReport = await evaluateSamples(extractor, x, reference, { batchSize: 100 });
    gridDiffusers = args.out.replace(/\.json$/, '-diffusers.png');
    const first = x.slice(0, Math.min(64, diffusers.n));
    await plugin.writeSamples(first, gridDiffusers, { data: config.data, info });
    tf.dispose([x, first]);
    console.log(`diffusers (UNet2DModel + DDPMScheduler, ${diffusers.steps} steps, EMA, ${diffusers.sampler}):`);
    for (const line of formatEvaluation(diffusersReport)) console.log(`  ${line}`);
  }

  const difflabSteps = ckpt.meta.step;
  const summary = {
    budget_seconds: trainSeconds,
    fd_difflab: difflabReport.fd.value,
    fd_diffusers: diffusersReport?.fd.value ?? null,
    fd_floor: difflabReport.fd.floor,
    kid_difflab: difflabReport.kid.value,
    kid_diffusers: diffusersReport?.kid.value ?? null,
    kid_floor: difflabReport.kid.floor,
    is_difflab: difflabReport.is?.value ?? null,
    is_diffusers: diffusersReport?.is?.value ?? null,
    is_floor: difflabReport.is?.floor ?? null,
    steps_difflab: difflabSteps,
    steps_diffusers: diffusers?.steps ?? null,
    n: args.n,
  };
  const report = {
    summary,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      tfjs: tf.version.tfjs,
      backend: backend.name,
      date: new Date().toISOString(),
      loadavg1_before: loadBefore,
      loadavg1_after: load1(),
    },
    difflab: {
      config: args.config.startsWith(root) ? args.config.slice(root.length + 1) : args.config,
      steps: difflabSteps,
      batch_size: config.train.batch_size,
      train_seconds: trainSeconds,
      train_steps_per_sec_overall: difflabSteps / trainSeconds,
      sampler,
      nfe,
      sample_seconds: difflabSampleSeconds,
      samples_per_sec: args.n / difflabSampleSeconds,
      sampling_cores: 1,
      grid: gridDifflab,
      metrics: metricRow(difflabReport),
      report: difflabReport,
    },
    diffusers: diffusers
      ? { ...diffusers, grid: gridDiffusers, metrics: diffusersReport ? metricRow(diffusersReport) : null, report: diffusersReport ?? null }
      : { error: diffusersError ?? 'not run' },
  };
  writeFileAtomic(args.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `\nequal wall-clock ${fmt(trainSeconds, 0)} s: difflab ${difflabSteps} steps, diffusers ${diffusers?.steps ?? '-'} steps` +
      `\nFD difflab ${fmt(summary.fd_difflab, 3)}  diffusers ${fmt(summary.fd_diffusers, 3)}  floor ${fmt(summary.fd_floor, 3)} (n = ${args.n})`,
  );
  console.log('summary:', JSON.stringify(summary));
  console.log(`wrote ${args.out}`);
}

main().catch((e: unknown) => {
  console.error(`bench:quality-image: ${firstLine(e)}`);
  process.exit(1);
});
