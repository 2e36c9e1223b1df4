/**
 * `npm run demo`: difflab's main job end to end, in one run folder.
 *
 *   1. trains configs/audio-fsdd-demo.yaml (a small digit-conditional
 *      DiffWave under EDM; about 10 minutes on 2 cores) on one speaker's
 *      spoken digits, the 500-clip slice that ships in datasets/fsdd-slice
 *      (--data trains on another folder);
 *   2. samples every digit with classifier-free guidance (Ho & Salimans 2022,
 *      https://arxiv.org/abs/2207.12598) and a few unconditional clips,
 *      written as 16-bit WAVs and spectrogram grids;
 *   3. scores class-balanced guided samples with the audio plugin's feature
 *      network (FD, KID, IS, mIS, AM, each beside its real-vs-real floor)
 *      when the plugin has one, else says so and skips the metrics;
 *   4. writes evaluation.json and prints where everything is.
 *
 * Options (after `npm run demo --`): --out DIR, --max-steps N (smoke tests),
 * --n-per-class N, --n-uncond N, --steps N (sampler steps), --eval-n N,
 * --data DIR, --config FILE, --resume (continue the run in --out; a finished
 * one is only sampled and scored). Progress goes to stderr, the summary to stdout.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import * as tf from '@tensorflow/tfjs';
import {
  createDifflab,
  evaluateSamples,
  formatEvaluation,
  generate,
  latestCheckpointDir,
  listCheckpoints,
  loadCheckpoint,
  loadModel,
  loadRunConfig,
  Rng,
  selectBackend,
  trainRun,
  writeFileAtomic,
  type EvaluationReport,
  type ExampleInfo,
  type RunConfig,
} from '../src/index.js';
import { audioPlugin, writeAudioSamples, type AudioDataConfig, type AudioModelConfig } from '../src/plugins/audio/index.js';
import type { SampleJob, SampleTask, WorkerMessage } from './demo-worker.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_CONFIG = join(ROOT, 'configs', 'audio-fsdd-demo.yaml');

export interface DemoData {
  /** Absolute folder of WAV files. */
  readonly path: string;
  /** Why this one, for the announcement. */
  readonly why: string;
}

/**
 * The demo's data: --data when given, else the folder the config names
 * (the one-speaker FSDD slice that ships with difflab), found like the audio
 * plugin finds it: from the working folder, then from the config's folder.
 * The full FSDD is not picked up on its own: the demo's budget is sized for
 * one voice (configs/audio-fsdd.yaml trains on every speaker).
 */
export function chooseDemoData(configFile: string, configPath: string, given: string | undefined, exists: (p: string) => boolean = existsSync): DemoData {
  if (given !== undefined) {
    const path = resolve(given);
    if (!exists(path)) throw new Error(`--data ${given}: no such folder`);
    return { path, why: 'given by --data' };
  }
  const candidates = [resolve(configPath), resolve(dirname(configFile), configPath)];
  const path = candidates.find((c) => exists(c));
  if (!path) throw new Error(`${configFile}: data.path ${configPath} not found (looked in ${candidates.join(', ')})`);
  const shippedSlice = resolve(dirname(configFile), '..', 'datasets', 'fsdd-slice', 'recordings');
  if (path !== shippedSlice) return { path, why: `the config's data.path, ${configPath}` };
  return { path, why: `one speaker's digits, the FSDD slice that ships with difflab; --data DIR trains on another folder, e.g. the full FSDD from \`npx difflab datasets fetch fsdd\`` };
}

interface DemoOptions {
  out?: string;
  maxSteps?: number;
  nPerClass: number;
  nUncond: number;
  steps?: number;
  evalN: number;
  data?: string;
  config?: string;
  resume?: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${v}'`);
  return n;
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const rel = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
};
const duration = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m ${Math.round(s % 60)}s` : `${s.toFixed(1)}s`);

interface Sampled {
  readonly x: tf.Tensor;
  readonly nfe: number;
  readonly sampler: string;
}

/**
 * Runs sampling tasks in worker threads (scripts/demo-worker.ts), one per
 * core: tfjs's wasm backend computes on one thread per process, and the
 * demo's sampling costs more than its training. Progress: a line per
 * quarter of each task's steps.
 */
async function sampleInWorkers(job: Omit<SampleJob, 'tasks'>, tasks: readonly SampleTask[], names: ReadonlyMap<string, string>, t0: number): Promise<Map<string, Sampled>> {
  const n = Math.max(1, Math.min(availableParallelism(), tasks.length));
  const shares = Array.from({ length: n }, (_, w) => tasks.filter((_, i) => i % n === w));
  // The worker is TypeScript: a bootstrap module registers tsx inside it first (as src/core/parallel/launch.ts does).
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./demo-worker.ts', import.meta.url);
  const bootstrap = `import { register } from ${JSON.stringify(tsx)};\nregister();\nawait import(${JSON.stringify(entry.href)});\n`;
  const results = new Map<string, Sampled>();
  log(`sampling in ${n} worker thread(s)`);
  await Promise.all(
    shares.map(
      (share, w) =>
        new Promise<void>((resolveDone, reject) => {
          const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), { workerData: { ...job, tasks: share } satisfies SampleJob });
          let failed = false;
          worker.on('message', (m: WorkerMessage) => {
            if (m.type === 'step') {
              if ((m.i + 1) % Math.max(1, Math.ceil(m.total / 4)) === 0 || m.i + 1 === m.total) {
                log(`sampling ${names.get(m.key) ?? m.key}: step ${m.i + 1}/${m.total}  sigma ${m.sigma.toPrecision(3)}  ${duration((Date.now() - t0) / 1000)}  (worker ${w + 1})`);
              }
            } else if (m.type === 'done') {
              results.set(m.key, { x: tf.tensor(m.data, m.shape), nfe: m.nfe, sampler: m.sampler });
            } else {
              failed = true;
              reject(new Error(`sampling worker ${w + 1}: ${m.message}`));
            }
          });
          worker.on('error', (err) => {
            failed = true;
            reject(new Error(`sampling worker ${w + 1} crashed: ${err.message}`));
          });
          worker.on('exit', (code) => {
            if (failed) return;
            const missing = share.filter((t) => !results.has(t.key));
            if (missing.length) reject(new Error(`sampling worker ${w + 1} exited (code ${code}) before ${missing.map((t) => t.key).join(', ')}`));
            else resolveDone();
          });
        }),
    ),
  ).catch((err: unknown) => {
    tf.dispose([...results.values()].map((r) => r.x));
    throw err;
  });
  return results;
}

async function demo(opts: DemoOptions): Promise<void> {
  const tStart = Date.now();
  const configFile = opts.config !== undefined ? resolve(opts.config) : DEFAULT_CONFIG;
  const difflab = createDifflab();
  const base = loadRunConfig(configFile, difflab.plugins) as RunConfig<AudioDataConfig, AudioModelConfig>;
  const data = chooseDemoData(configFile, base.data.path, opts.data);
  const config: RunConfig<AudioDataConfig, AudioModelConfig> = { ...base, data: { ...base.data, path: data.path } };
  const outDir = resolve(opts.out ?? join(ROOT, 'runs', `demo-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`));
  if (listCheckpoints(outDir).length > 0 && !opts.resume) throw new Error(`${outDir} already holds a trained run; choose another --out, or pass --resume to continue it`);
  const backend = await selectBackend(process.env['DIFFLAB_BACKEND'] || base.backend === 'auto' ? undefined : base.backend);
  const steps = Math.min(config.train.steps, opts.maxSteps ?? Infinity);
  log(`difflab demo: ${rel(configFile)} -> ${rel(outDir)}`);
  log(`data: ${rel(data.path)} (${data.why})`);
  log(`backend: ${backend.name} (${backend.chosenBecause})`);

  // 1. Train.
  log(`\n[1/3] training ${steps} steps (batch ${config.train.batch_size}); intermediate samples every ${config.train.sample_every} steps in ${rel(join(outDir, 'samples'))}`);
  const tTrain = Date.now();
  await trainRun({
    config,
    plugin: audioPlugin,
    outDir,
    configFile,
    baseDir: dirname(configFile),
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    ...(opts.resume ? { resume: true } : {}),
    log,
    onSample: async (step, weights, info) => {
      const model = loadModel(audioPlugin, config, info, weights);
      try {
        const r = generate(model, { n: config.train.sample_count, seed: config.seed });
        const files = await audioPlugin.writeSamples!(r.x, join(outDir, 'samples', `step-${String(step).padStart(8, '0')}.png`), { data: config.data, info });
        r.x.dispose();
        log(`samples at step ${step}: ${rel(files[0]!)}`);
      } finally {
        model.dispose();
      }
    },
  });
  const trainSeconds = (Date.now() - tTrain) / 1000;

  // 2. Sample.
  const ckptDir = latestCheckpointDir(outDir);
  if (!ckptDir) throw new Error(`${outDir}: training wrote no checkpoint`);
  const ckpt = loadCheckpoint(ckptDir);
  const info: ExampleInfo = { exampleShape: ckpt.meta.exampleShape, ...(ckpt.meta.numClasses !== undefined ? { numClasses: ckpt.meta.numClasses } : {}) };
  const ctx = { data: config.data, info };
  const classes = info.numClasses;
  const guidance = config.sample.guidance;
  const samplesDir = join(outDir, 'samples');
  const tSample = Date.now();
  // Guided samples of every class; the first n-per-class of each are written, all of them are scored.
  const perClassEval = classes !== undefined ? Math.ceil(opts.evalN / classes) : 0;
  const perClass = Math.max(opts.nPerClass, perClassEval);
  const nUncond = classes === undefined ? Math.max(opts.nUncond, opts.evalN) : opts.nUncond;
  const tasks: SampleTask[] = [];
  const names = new Map<string, string>();
  for (let c = 0; c < (classes ?? 0); c++) {
    tasks.push({ key: `digit-${c}`, n: perClass, seed: config.seed * 1_000_003 + c, classId: c });
    names.set(`digit-${c}`, `digit ${c} (${perClass}, guidance ${guidance})`);
  }
  if (nUncond > 0) {
    tasks.push({ key: 'unconditional', n: nUncond, seed: config.seed * 1_000_003 + 999 });
    names.set('unconditional', `unconditional (${nUncond})`);
  }
  log(
    classes !== undefined
      ? `\n[2/3] sampling ${perClass} clip(s) of each of ${classes} digits (guidance ${guidance}) and ${nUncond} unconditional`
      : `\n[2/3] sampling ${nUncond} clip(s) (the model is not class-conditional)`,
  );
  const sampled = await sampleInWorkers({ ckptDir, backend: backend.name, ...(opts.steps !== undefined ? { steps: opts.steps } : {}) }, tasks, names, tSample);
  const first = sampled.get(tasks[0]!.key)!;
  const nfe = first.nfe;
  const samplerId = first.sampler;
  const evalParts: tf.Tensor[] = [];
  const written: { digits?: { png: string; wavs: readonly string[] }; uncond?: string[] } = {};
  try {
    if (classes !== undefined) {
      const shown = Array.from({ length: classes }, (_, c) => sampled.get(`digit-${c}`)!.x.slice(0, opts.nPerClass));
      const grid = tf.concat(shown);
      tf.dispose(shown);
      const wavPaths = Array.from({ length: classes * opts.nPerClass }, (_, i) => join(samplesDir, `digit-${Math.floor(i / opts.nPerClass)}-${i % opts.nPerClass}.wav`));
      // One row per digit (0 at the top), n-per-class spectrograms across.
      const w = await writeAudioSamples(grid, join(samplesDir, 'digits.png'), { sampleRate: config.data.sample_rate, cols: opts.nPerClass, wavPaths });
      grid.dispose();
      written.digits = { png: w.png, wavs: w.wavs };
      if (w.clipped > 0) log(`audio: ${w.clipped} sample value(s) outside [-1, 1) clipped in the digit WAVs`);
      for (let c = 0; c < classes; c++) evalParts.push(sampled.get(`digit-${c}`)!.x);
    }
    const uncond = sampled.get('unconditional');
    if (uncond && opts.nUncond > 0) {
      const shown = uncond.x.slice(0, opts.nUncond);
      written.uncond = await audioPlugin.writeSamples!(shown, join(samplesDir, 'unconditional.png'), ctx);
      shown.dispose();
    }
    if (uncond && classes === undefined) evalParts.push(uncond.x);
    else uncond?.x.dispose();
  } catch (err) {
    tf.dispose([...sampled.values()].map((r) => r.x));
    throw err;
  }
  const sampleSeconds = (Date.now() - tSample) / 1000;

  // 3. Evaluate.
  log(`\n[3/3] metrics`);
  let report: EvaluationReport | undefined;
  let skipped: string | undefined;
  const evalSet = tf.concat(evalParts);
  tf.dispose(evalParts);
  try {
    let extractor;
    if (!audioPlugin.featureExtractor) {
      skipped = 'the audio plugin has no feature network (featureExtractor) in this build';
    } else {
      try {
        extractor = await audioPlugin.featureExtractor({ ...info, data: config.data });
      } catch (err) {
        skipped = `the audio plugin's feature network is unavailable: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
      }
    }
    if (extractor) {
      const open = (split: 'train' | 'test') => audioPlugin.openData(config.data, { split, baseDir: dirname(configFile), rng: new Rng(config.seed), log });
      const [train, test] = [await open('train'), await open('test')];
      const n = evalSet.shape[0]!;
      log(`scoring ${n} ${classes !== undefined ? 'guided, class-balanced' : 'unconditional'} samples against ${train.size} training clips (floor: as many test clips against the same)`);
      // IS over splits of at least 10 samples (its customary 10 splits assume tens of thousands).
      const isSplits = Math.max(1, Math.min(10, Math.floor(n / 10)));
      // Guided samples come digit by digit (perClass of each): the classifier's verdict is checked against them.
      const sampleLabels = classes !== undefined ? Array.from({ length: n }, (_, i) => Math.floor(i / perClass)) : undefined;
      report = await evaluateSamples(
        extractor,
        evalSet,
        { real: { source: train }, heldOut: { source: test } },
        { batchSize: 50, seed: config.seed, isSplits, ...(sampleLabels ? { sampleLabels } : {}) },
      );
      for (const line of formatEvaluation(report)) log(`  ${line}`);
    } else {
      log(`metrics skipped: ${skipped}`);
    }
  } finally {
    evalSet.dispose();
  }

  const evaluationFile = join(outDir, 'evaluation.json');
  writeFileAtomic(
    evaluationFile,
    `${JSON.stringify(
      {
        config: configFile,
        data: { path: data.path, why: data.why },
        backend: backend.name,
        checkpoint: ckptDir,
        step: ckpt.meta.step,
        weights: ckpt.ema ? 'EMA' : 'raw',
        sampler: samplerId,
        sampler_steps: opts.steps ?? config.sample.steps,
        nfe,
        guidance: classes !== undefined ? guidance : null,
        scored: classes !== undefined ? `${perClass} guided samples of each of ${classes} digits` : `${nUncond} unconditional samples`,
        seconds: { train: trainSeconds, sample: sampleSeconds, total: (Date.now() - tStart) / 1000 },
        metrics: report ?? null,
        ...(skipped ? { metrics_skipped: skipped } : {}),
      },
      null,
      2,
    )}\n`,
  );

  const lines = [
    `difflab demo finished in ${duration((Date.now() - tStart) / 1000)} (training ${duration(trainSeconds)}, sampling ${duration(sampleSeconds)})`,
    `  run folder     ${rel(outDir)}`,
    `  data           ${rel(data.path)} (${data.why})`,
    `  checkpoint     ${rel(ckptDir)} (step ${ckpt.meta.step})`,
    `  training log   ${rel(join(outDir, 'metrics.jsonl'))}`,
  ];
  if (written.digits) {
    lines.push(`  digits         ${rel(written.digits.png)} (one row per digit, 0 at the top; ${samplerId}, ${nfe} NFE, guidance ${guidance})`);
    lines.push(`                 ${written.digits.wavs.length} WAVs: ${rel(join(samplesDir, 'digit-<digit>-<k>.wav'))}`);
  }
  if (written.uncond) lines.push(`  unconditional  ${rel(written.uncond[0]!)} + ${written.uncond.length - 1} WAVs`);
  const accuracy = report?.classAccuracy
    ? `; the classifier hears the requested digit in ${(100 * report.classAccuracy.value).toFixed(0)} % of them (real clips: ${(100 * report.classAccuracy.floor).toFixed(0)} %)`
    : '';
  lines.push(`  metrics        ${rel(evaluationFile)}${report ? ` (FD ${report.fd.value.toFixed(3)}, floor ${report.fd.floor.toFixed(3)}${accuracy})` : ` (skipped: ${skipped})`}`);
  lines.push(`next: npx difflab sample ${rel(outDir)} --class 7 --guidance ${guidance} --n 4`);
  lines.push(`      npx difflab denoise ${rel(outDir)} --in noisy.wav --out clean.wav`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = new Command()
    .name('npm run demo --')
    .description('train the audio demo config, sample every digit, score the samples, all into one run folder')
    .option('--out <dir>', 'run folder (default: runs/demo-<date>-<time>)')
    .option('--max-steps <n>', 'stop training after this many steps (smoke tests)', positiveInt)
    .option('--n-per-class <n>', 'guided samples written per digit', positiveInt, 2)
    .option('--n-uncond <n>', 'unconditional samples written', nonNegativeInt, 4)
    .option('--steps <n>', "sampler steps (default: the config's sample.steps)", positiveInt)
    .option('--eval-n <n>', 'guided samples scored (class-balanced; each costs about 4 s of one core with the demo config)', positiveInt, 50)
    .option('--data <dir>', 'folder of FSDD WAVs (default: the full FSDD when found, else the shipped slice)')
    .option('--config <file>', 'an audio run config to use instead of configs/audio-fsdd-demo.yaml')
    .option('--resume', 'continue the run in --out from its last checkpoint (a finished run goes straight to sampling and scoring)')
    .exitOverride();
  try {
    program.parse([...argv]);
    await demo(program.opts<DemoOptions>());
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(`demo: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
    process.exit(1);
  }
}

// Run when executed (npm run demo), not when a test imports chooseDemoData.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
