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
 * (runs/bench/quality-image), --reuse (keep what a previous run left in
 * DIR: the difflab run and its measured wall-clock, difflab's samples, the
 * diffusers results; only the missing parts are computed), --equal-steps
 * (also train diffusers for exactly difflab's number of steps: separates the
 * recipe from the speed), --skip-diffusers, --out FILE.
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
import { firstLine, fmt, parseBenchFlags } from './lib/common.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  config: string;
  maxSteps?: number;
  n: number;
  diffusersSteps: number;
  runDir: string;
  reuse: boolean;
  skipDiffusers: boolean;
  equalSteps: boolean;
  out: string;
}

type DiffusersRun = { result: DiffusersResult; samples: Float32Array } | { error: string };

function parseArgs(argv: string[]): Args {
  const defaults: Args = {
    config: join(root, 'configs/fashion-unet-edm.yaml'),
    n: 1000,
    diffusersSteps: 100,
    runDir: join(root, 'runs/bench/quality-image'),
    reuse: false,
    skipDiffusers: false,
    equalSteps: false,
    out: join(root, 'bench/results/quality-image.json'),
  };
  return parseBenchFlags('quality-image', argv, defaults, {
    '--config': { path: 'config' },
    '--max-steps': { int: 'maxSteps', min: 1 },
    '--n': { int: 'n', min: 2 },
    '--diffusers-steps': { int: 'diffusersSteps', min: 1 },
    '--run-dir': { path: 'runDir' },
    '--reuse': { set: 'reuse' },
    '--skip-diffusers': { set: 'skipDiffusers' },
    '--equal-steps': { set: 'equalSteps' },
    '--out': { path: 'out' },
  });
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

  // 2. diffusers: the same wall-clock; with --equal-steps also the same number of steps as difflab.
  const data = userConfig.data as { format?: string; path?: string };
  const runDiffusers = async (name: string, limits: string[]): Promise<DiffusersRun> => {
    if (!py.ok) return { error: py.reason };
    const outDir = join(args.runDir, name);
    try {
      if (!(args.reuse && existsSync(join(outDir, 'result.json')) && existsSync(join(outDir, 'samples.f32')))) {
        rmSync(outDir, { recursive: true, force: true });
        if (data.format !== 'idx' || !data.path) throw new Error(`${args.config}: data must be Fashion-MNIST IDX files (format: idx) for the diffusers side`);
        const dataDir = resolveDataPath(data.path, dirname(args.config), root);
        const argv = [join(root, 'bench/python/diffusers_fashion.py'), '--data', dataDir, ...limits, '--out', outDir, '--n', String(args.n), '--sample-steps', String(args.diffusersSteps)];
        await timed(py.python, argv, `diffusers (${name})`);
      } else console.error(`bench:quality-image: reusing ${outDir}`);
      const result = JSON.parse(readFileSync(join(outDir, 'result.json'), 'utf8')) as DiffusersResult;
      const buf = readFileSync(join(outDir, 'samples.f32'));
      return { result, samples: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
    } catch (e) {
      console.error(`bench:quality-image: ${firstLine(e)}`);
      return { error: firstLine(e) };
    }
  };
  const equalTime = await runDiffusers('diffusers', ['--seconds', trainSeconds.toFixed(1)]);
  const difflabStepsDone = loadCheckpoint(latestCheckpointDir(difflabDir) as string).meta.step;
  const equalSteps = args.equalSteps ? await runDiffusers('diffusers-equal-steps', ['--seconds', '1e9', '--max-steps', String(difflabStepsDone)]) : undefined;

  // 3. Score every sample set with the same features.
  const difflab = createDifflab();
  const ckptDir = latestCheckpointDir(difflabDir);
  if (!ckptDir) throw new Error(`${difflabDir}: no checkpoint after training`);
  const ckpt = loadCheckpoint(ckptDir);
  const config = parseRunConfig(ckpt.meta.config, join(ckptDir, 'state.json'), difflab.plugins);
  const backend = await selectBackend(undefined);
  const plugin = difflab.plugins.get(config.modality);
  const info = { exampleShape: ckpt.meta.exampleShape, ...(ckpt.meta.numClasses !== undefined ? { numClasses: ckpt.meta.numClasses } : {}) };
  if (!plugin.featureExtractor || !plugin.writeSamples) throw new Error(`plugin '${plugin.id}' has no feature network or writer`);
  const writeSamples = plugin.writeSamples.bind(plugin);
  const extractor = await plugin.featureExtractor({ ...info, data: config.data });
  const open = (split: 'train' | 'test') =>
    plugin.openData(config.data, { split, baseDir: dirname(args.config), rng: new Rng(0), log: (m) => console.error(m) });
  const reference = await extractReference(extractor, { real: { source: await open('train') }, heldOut: { source: await open('test') } }, { batchSize: 500 });
  const score = async (x: tf.Tensor, grid: string): Promise<EvaluationReport> => {
    const r = await evaluateSamples(extractor, x, reference, { batchSize: 100 });
    const first = x.slice(0, Math.min(64, x.shape[0] as number));
    await writeSamples(first, grid, { data: config.data, info });
    first.dispose();
    return r;
  };

  // difflab's samples are kept beside its run, so --reuse scores them again without resampling.
  const samplesFile = join(difflabDir, 'bench-samples.f32');
  const samplesMeta = join(difflabDir, 'bench-samples.json');
  let meta: { n: number; step: number; sampler: string; nfe: number; seconds: number } | undefined;
  if (args.reuse && existsSync(samplesFile) && existsSync(samplesMeta)) {
    const m = JSON.parse(readFileSync(samplesMeta, 'utf8')) as NonNullable<typeof meta>;
    if (m.n === args.n && m.step === ckpt.meta.step) meta = m;
  }
  let difflabX: tf.Tensor;
  if (meta) {
    console.error(`bench:quality-image: reusing ${samplesFile}`);
    const buf = readFileSync(samplesFile);
    difflabX = tf.tensor(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), [args.n, ...info.exampleShape]);
  } else {
    const model = loadModel(plugin, config, info, ckpt.ema ?? ckpt.state.weights);
    const t0 = performance.now();
    const parts: tf.Tensor[] = [];
    let nfe = 0;
    let sampler = '';
    for (let start = 0; start < args.n; start += 100) {
      const r = generate(model, { n: Math.min(100, args.n - start), seed: 1_000_003 + start });
      nfe = r.nfe;
      sampler = r.sampler;
      parts.push(r.x);
      const done = start + (r.x.shape[0] as number);
      console.error(`difflab: sampled ${done}/${args.n}  ${(done / ((performance.now() - t0) / 1000)).toFixed(2)} samples/s`);
    }
    const seconds = (performance.now() - t0) / 1000;
    model.dispose();
    difflabX = tf.concat(parts);
    tf.dispose(parts);
    writeFileAtomic(samplesFile, Buffer.from((await difflabX.data()).buffer));
    meta = { n: args.n, step: ckpt.meta.step, sampler, nfe, seconds };
    writeFileAtomic(samplesMeta, `${JSON.stringify(meta)}\n`);
  }
  const gridDifflab = args.out.replace(/\.json$/, '-difflab.png');
  const difflabReport = await score(difflabX, gridDifflab);
  difflabX.dispose();
  console.log(`difflab (${config.name ?? args.config}, step ${ckpt.meta.step}, EMA, ${meta.sampler}, ${meta.nfe} NFE):`);
  for (const line of formatEvaluation(difflabReport)) console.log(`  ${line}`);

  const scoreDiffusers = async (run: DiffusersRun | undefined, name: string): Promise<Record<string, unknown> | null> => {
    if (!run) return null;
    if (!('result' in run)) return { error: run.error };
    const x = tf.tensor(run.samples, [run.result.n, ...info.exampleShape]);
    const grid = args.out.replace(/\.json$/, `-${name}.png`);
    const r = await score(x, grid);
    x.dispose();
    console.log(`${name} (UNet2DModel + DDPMScheduler, ${run.result.steps} steps, EMA, ${run.result.sampler}):`);
    for (const line of formatEvaluation(r)) console.log(`  ${line}`);
    return { ...run.result, grid, metrics: metricRow(r), report: r };
  };
  const diffusers = await scoreDiffusers(equalTime, 'diffusers');
  const diffusersEqualSteps = await scoreDiffusers(equalSteps, 'diffusers-equal-steps');
  const m = (x: Record<string, unknown> | null, key: string): number | null =>
    ((x?.['metrics'] as Record<string, number | null> | undefined)?.[key] ?? null) as number | null;

  const summary = {
    budget_seconds: trainSeconds,
    fd_difflab: difflabReport.fd.value,
    fd_diffusers: m(diffusers, 'fd'),
    fd_floor: difflabReport.fd.floor,
    kid_difflab: difflabReport.kid.value,
    kid_diffusers: m(diffusers, 'kid'),
    kid_floor: difflabReport.kid.floor,
    is_difflab: difflabReport.is?.value ?? null,
    is_diffusers: m(diffusers, 'is'),
    is_floor: difflabReport.is?.floor ?? null,
    steps_difflab: ckpt.meta.step,
    steps_diffusers: (diffusers?.['steps'] as number | undefined) ?? null,
    ...(args.equalSteps ? { fd_diffusers_equal_steps: m(diffusersEqualSteps, 'fd'), is_diffusers_equal_steps: m(diffusersEqualSteps, 'is') } : {}),
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
      steps: ckpt.meta.step,
      batch_size: config.train.batch_size,
      train_seconds: trainSeconds,
      train_steps_per_sec_overall: ckpt.meta.step / trainSeconds,
      sampler: meta.sampler,
      nfe: meta.nfe,
      sample_seconds: meta.seconds,
      samples_per_sec: args.n / meta.seconds,
      sampling_cores: 1,
      grid: gridDifflab,
      metrics: metricRow(difflabReport),
      report: difflabReport,
    },
    diffusers: diffusers ?? { error: 'not run' },
    ...(args.equalSteps ? { diffusers_equal_steps: diffusersEqualSteps } : {}),
  };
  writeFileAtomic(args.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `\nequal wall-clock ${fmt(trainSeconds, 0)} s: difflab ${ckpt.meta.step} steps, diffusers ${summary.steps_diffusers ?? '-'} steps` +
      `\nFD difflab ${fmt(summary.fd_difflab, 3)}  diffusers ${fmt(summary.fd_diffusers, 3)}  floor ${fmt(summary.fd_floor, 3)} (n = ${args.n})` +
      (args.equalSteps ? `\nFD diffusers at difflab's ${ckpt.meta.step} steps: ${fmt(summary.fd_diffusers_equal_steps ?? null, 3)}` : ''),
  );
  console.log('summary:', JSON.stringify(summary));
  console.log(`wrote ${args.out}`);
}

main().catch((e: unknown) => {
  const line = firstLine(e);
  console.error(line.startsWith('bench:') ? line : `bench:quality-image: ${line}`);
  process.exit(1);
});
