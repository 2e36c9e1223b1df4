#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { concat, dispose as disposeTensors, keep, type Tensor as tfTensor } from '@tensorflow/tfjs';
import { BACKEND_NAMES, probeBackends, selectBackend, type BackendReport } from '../core/backend/select.js';
import { diffusionFromConfig } from '../core/config/diffusion.js';
import { loadRunConfig } from '../core/config/load.js';
import { dataLikelihood, generate, loadModel, toDataSpace } from '../core/generate.js';
import { evaluateSamples, formatEvaluation } from '../core/metrics/index.js';
import { Rng } from '../core/random.js';
import { trainRun } from '../core/training/engine.js';
import { writeFileAtomic } from '../core/io/atomic.js';
import { createDifflab } from '../container.js';
import { registerBenchCommand } from './bench-command.js';
import { registerDatasetsCommand } from './datasets-command.js';
import { registerDenoiseCommand } from './denoise-command.js';
import { backendFor, exampleInfo, nonNegativeInt, openRun, positiveInt } from './run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Prints a one-line error and exits non-zero: the CLI's contract for bad input. */
function fail(err: unknown, code = 1): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`difflab: ${msg.split('\n')[0]}\n`);
  process.exit(code);
}

function backendTable(reports: readonly BackendReport[], selected: string | undefined): string {
  const rows = reports.map((r) => [r.name === selected ? `* ${r.name}` : `  ${r.name}`, r.available ? 'yes' : 'no', r.reason]);
  const head = ['  backend', 'available', 'reason'];
  const w0 = Math.max(head[0]!.length, ...rows.map((r) => r[0]!.length));
  const w1 = Math.max(head[1]!.length, ...rows.map((r) => r[1]!.length));
  const line = (r: string[]) => `${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`;
  return [line(head), ...rows.map(line)].join('\n');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('difflab')
    .description('Train, sample and evaluate diffusion models on any modality.')
    .version(pkg.version, '-v, --version')
    .option('--backend <name>', `tensor backend: ${BACKEND_NAMES.join(', ')} (default: best available; env DIFFLAB_BACKEND)`)
    .showHelpAfterError('(run difflab --help for usage)')
    .exitOverride();

  program
    .command('backends')
    .description('list every tensor backend, whether it is available and why, and which one is selected')
    .option('--json', 'print JSON instead of a table')
    .action(async (opts: { json?: boolean }) => {
      const forced = program.opts<{ backend?: string }>().backend;
      const reports = await probeBackends();
      const selected = await selectBackend(forced);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ selected: selected.name, chosenBecause: selected.chosenBecause, addedKernels: selected.addedKernels, backends: reports }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(`${backendTable(reports, selected.name)}\n\nselected: ${selected.name} (${selected.chosenBecause})\n`);
        if (selected.addedKernels.length) {
          process.stdout.write(`difflab kernels registered on ${selected.name}: ${selected.addedKernels.join(', ')}\n`);
        }
      }
    });

  program
    .command('train')
    .description('train a diffusion model from a run config (YAML)')
    .argument('<config>', 'run config file, e.g. configs/fashion-unet.yaml')
    .option('--out <dir>', 'run folder (default: runs/<config name>)')
    .option('--max-steps <n>', 'stop after this many steps in total', positiveInt)
    .option('--resume', 'continue from the last complete checkpoint in the run folder')
    .action(async (file: string, opts: { out?: string; maxSteps?: number; resume?: boolean }) => {
      const difflab = createDifflab();
      const config = loadRunConfig(file, difflab.plugins);
      await selectBackend(backendFor(program, config));
      const plugin = difflab.plugins.get(config.modality);
      const outDir = resolve(opts.out ?? join('runs', config.name ?? basename(file, extname(file))));
      const result = await trainRun({
        config,
        plugin,
        outDir,
        configFile: resolve(file),
        baseDir: dirname(resolve(file)),
        ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
        ...(opts.resume ? { resume: true } : {}),
        onSample: plugin.writeSamples
          ? async (step, weights, info) => {
              const model = loadModel(plugin, config, info, weights);
              try {
                const r = generate(model, { n: config.train.sample_count, seed: config.seed });
                const xs = toDataSpace(model, r.x);
                const files = await plugin.writeSamples!(xs, join(outDir, 'samples', `step-${String(step).padStart(8, '0')}.png`), { data: config.data, info });
                if (xs !== r.x) xs.dispose();
                r.x.dispose();
                process.stderr.write(`samples: ${files.join(', ')}\n`);
              } finally {
                model.dispose();
              }
            }
          : undefined,
      });
      process.stdout.write(`run folder: ${result.outDir}\ncheckpoint: ${result.checkpoint ?? '(none)'}\n`);
    });

  program
    .command('sample')
    .description('generate samples from a trained run')
    .argument('<run-dir>', 'a run folder written by `difflab train`')
    .option('--sampler <id>', 'sampler id (default: the config\'s sample.sampler)')
    .option('--steps <n>', 'sampling steps', positiveInt)
    .option('--n <n>', 'number of samples', positiveInt, 16)
    .option('--seed <s>', 'random seed', nonNegativeInt, 0)
    .option('--class <c>', 'class id to generate (class-conditional models)', nonNegativeInt)
    .option('--guidance <w>', 'classifier-free guidance weight', Number)
    .option('--no-ema', 'use the raw weights instead of the EMA weights')
    .option('--out <file>', 'output file (default: <run-dir>/samples/sample-<seed>.png)')
    .option('--trajectory <file>', 'also write the denoising trajectory of the first sample (8 noise levels)')
    .option('--prefix <text>', 'infill: keep this start fixed and generate the rest (plugins with prompts, e.g. text)')
    .option('--suffix <text>', 'infill: keep this end fixed')
    .option('--resample <u>', 'infill with RePaint: U tries per step (U times the cost; 1 = replacement only)', positiveInt, 1)
    .action(
      async (
        runDir: string,
        opts: { sampler?: string; steps?: number; n: number; seed: number; class?: number; guidance?: number; ema: boolean; out?: string; trajectory?: string; prefix?: string; suffix?: string; resample: number },
      ) => {
        const { plugin, model, config, ckpt, weightsKind } = await openRun(program, runDir, opts.ema);
        const frames: { sigma: number; x: tfTensor; denoised: tfTensor }[] = [];
        if (!plugin.writeSamples) throw new Error(`the '${plugin.id}' plugin cannot write samples`);
        const writeCtx = { data: config.data, info: exampleInfo(model) };
        try {
          const sample = sampleOverrides(opts);
          let known: ReturnType<NonNullable<typeof plugin.knownFromPrompt>> | undefined;
          if (opts.prefix !== undefined || opts.suffix !== undefined) {
            if (!plugin.knownFromPrompt) throw new Error(`the '${plugin.id}' plugin does not take --prefix/--suffix`);
            known = plugin.knownFromPrompt(
              { ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}), ...(opts.suffix !== undefined ? { suffix: opts.suffix } : {}) },
              { data: config.data, info: writeCtx.info, net: model.net },
            );
          }
          if (opts.resample > 1 && !known) throw new Error('sample: --resample needs --prefix or --suffix (the known part to infill around)');
          const t0 = Date.now();
          const r = generate(model, {
            n: opts.n,
            seed: opts.seed,
            ...(sample ? { sample } : {}),
            ...(opts.class !== undefined ? { classId: opts.class } : {}),
            ...(known ? { known, resample: opts.resample } : {}),
            onStep: (i) => {
              // Keep sample 0 at ~8 evenly spaced steps (the sampler's tidy would free them otherwise).
              if (opts.trajectory && (i.i % Math.max(1, Math.round(i.total / 8)) === 0 || i.i + 1 === i.total)) {
                frames.push({ sigma: i.sigma, x: keep(sliceFirst(i.x)), denoised: keep(sliceFirst(i.denoised)) });
              }
              const line = `sampling: step ${i.i + 1}/${i.total}  sigma ${i.sigma.toPrecision(3)}  ${((Date.now() - t0) / 1000).toFixed(1)}s`;
              // One updating line on a terminal; a line per quarter in logs.
              if (process.stderr.isTTY) process.stderr.write(`\r${line}${i.i + 1 === i.total ? '\n' : ''}`);
              else if ((i.i + 1) % Math.max(1, Math.ceil(i.total / 4)) === 0 || i.i + 1 === i.total) process.stderr.write(`${line}\n`);
            },
          });
          const out = resolve(opts.out ?? join(runDir, 'samples', `sample-${opts.seed}.png`));
          if (known) disposeTensors([known.values, known.mask]);
          const xs = toDataSpace(model, r.x);
          const files = await plugin.writeSamples(xs, out, writeCtx);
          if (xs !== r.x) xs.dispose();
          r.x.dispose();
          if (opts.trajectory) {
            if (!plugin.writeTrajectory) throw new Error(`the '${plugin.id}' plugin cannot write trajectories`);
            // Models with a learned encoding show their frames rounded to data (e.g. tokens).
            const shown = frames.map((f) => ({ sigma: f.sigma, x: toDataSpace(model, f.x.expandDims(0)), denoised: toDataSpace(model, f.denoised.expandDims(0)) }));
            const view = model.net.encoding ? shown.map((f) => ({ sigma: f.sigma, x: f.x.squeeze([0]), denoised: f.denoised.squeeze([0]) })) : frames;
            files.push(...(await plugin.writeTrajectory(view, resolve(opts.trajectory), writeCtx)));
            if (model.net.encoding) for (const f of [...shown, ...view]) disposeTensors([f.x, f.denoised]);
            else for (const f of shown) disposeTensors([f.x, f.denoised]);
            for (const f of frames) disposeTensors([f.x, f.denoised]);
          }
          process.stdout.write(`${opts.n} samples (${r.sampler}, ${r.nfe} NFE, weights: ${weightsKind}, step ${ckpt.meta.step}): ${files.join(', ')}\n`);
        } finally {
          model.dispose();
        }
      },
    );

  program
    .command('eval')
    .description('sample a trained run and score it: FD, KID, IS (and mIS, AM) beside the real-vs-real floors')
    .argument('<run-dir>', 'a run folder written by `difflab train`')
    .option('--n <n>', 'number of samples', positiveInt, 1000)
    .option('--batch <n>', 'samples generated per sampler call', positiveInt, 100)
    .option('--sampler <id>', 'sampler id (default: the config\'s sample.sampler)')
    .option('--steps <n>', 'sampling steps', positiveInt)
    .option('--seed <s>', 'random seed', nonNegativeInt, 0)
    .option('--class <c>', 'score samples of this class only', nonNegativeInt)
    .option('--balanced', 'class-conditional runs: sample every class equally (sample i gets class i mod C) and report how often the classifier hears the requested class')
    .option('--guidance <w>', 'classifier-free guidance weight', Number)
    .option('--features <model>', 'a tfjs model.json to use as the feature network (e.g. Inception-v3 for standard FID)')
    .option('--no-ema', 'use the raw weights instead of the EMA weights')
    .option('--json <file>', 'also write the report as JSON')
    .action(
      async (
        runDir: string,
        opts: { n: number; batch: number; sampler?: string; steps?: number; seed: number; class?: number; balanced?: boolean; guidance?: number; features?: string; ema: boolean; json?: string },
      ) => {
        const { plugin, model, config, ckpt, weightsKind, dataBaseDir } = await openRun(program, runDir, opts.ema);
        try {
          if (opts.balanced && opts.class !== undefined) throw new Error('eval: --balanced and --class exclude each other');
          if (opts.balanced && model.numClasses === undefined) throw new Error(`eval --balanced: ${runDir} is not class-conditional`);
          const numClasses = model.numClasses ?? 1;
          /** Classes of samples start..start+count-1 under --balanced. */
          const classesFor = (start: number, count: number) => Array.from({ length: count }, (_, i) => (start + i) % numClasses);
          if (plugin.scoreSamples) {
            // The plugin's own metrics (e.g. text: n-gram perplexity, distinct-n) on samples generated in batches.
            const sample = sampleOverrides(opts);
            const parts: tfTensor[] = [];
            let nfe = 0;
            let samplerId = '';
            const t0 = Date.now();
            for (let start = 0; start < opts.n; start += opts.batch) {
              const count = Math.min(opts.batch, opts.n - start);
              const r = generate(model, { n: count, seed: opts.seed * 1_000_003 + start, ...(sample ? { sample } : {}), ...(opts.class !== undefined ? { classId: opts.class } : {}), ...(opts.balanced ? { classIds: classesFor(start, count) } : {}) });
              parts.push(r.x);
              nfe = r.nfe;
              samplerId = r.sampler;
              process.stderr.write(`eval: ${start + count}/${opts.n} samples  ${((Date.now() - t0) / 1000).toFixed(0)}s\n`);
            }
            const all = parts.length === 1 ? (parts[0] as tfTensor) : concat(parts);
            if (parts.length > 1) disposeTensors(parts);
            const log = (m: string) => process.stderr.write(`${m}\n`);
            const scores = await plugin.scoreSamples(all, {
              data: config.data,
              info: exampleInfo(model),
              net: model.net,
              openData: (split) => plugin.openData(config.data, { split, baseDir: dataBaseDir, rng: new Rng(opts.seed), log }),
              seed: opts.seed,
              sigmaMin: diffusionFromConfig(config.diffusion).schedule.sigmaMin,
              log,
            });
            all.dispose();
            process.stdout.write(`${opts.n} samples from ${runDir} (step ${ckpt.meta.step}, ${weightsKind} weights, ${samplerId}, ${nfe} NFE)\n`);
            for (const line of scores.lines) process.stdout.write(`${line}\n`);
            if (opts.json) {
              writeFileAtomic(opts.json, `${JSON.stringify({ run: runDir, step: ckpt.meta.step, weights: weightsKind, sampler: samplerId, nfe, ...scores.values }, null, 2)}\n`);
            }
            return;
          }
          if (!plugin.featureExtractor) throw new Error(`the '${plugin.id}' plugin has no feature network for metrics`);
          const extractor = await plugin.featureExtractor({ ...exampleInfo(model), data: config.data }, opts.features);
          const open = (split: 'train' | 'test') =>
            plugin.openData(config.data, { split, baseDir: dataBaseDir, rng: new Rng(opts.seed), log: (m) => process.stderr.write(`${m}\n`) });
          const [train, test] = [await open('train'), await open('test')];
          const sample = sampleOverrides(opts);
          const t0 = Date.now();
          let nfe = 0;
          let samplerId = '';
          const samples = {
            size: opts.n,
            read: (start: number, count: number) => {
              const r = generate(model, {
                n: count,
                seed: opts.seed * 1_000_003 + start,
                ...(sample ? { sample } : {}),
                ...(opts.class !== undefined ? { classId: opts.class } : {}),
                ...(opts.balanced ? { classIds: classesFor(start, count) } : {}),
              });
              nfe = r.nfe;
              samplerId = r.sampler;
              const done = start + count;
              const rate = done / ((Date.now() - t0) / 1000);
              process.stderr.write(`eval: ${done}/${opts.n} samples  ${rate.toFixed(2)} samples/s  ETA ${Math.round((opts.n - done) / rate)}s\n`);
              return r.x;
            },
          };
          const report = await evaluateSamples(extractor, samples, { real: { source: train }, heldOut: { source: test } }, {
            batchSize: opts.batch,
            seed: opts.seed,
            // IS over splits of at least 10 samples (its customary 10 splits assume thousands); as the demo.
            isSplits: Math.max(1, Math.min(10, Math.floor(opts.n / 10))),
            ...(opts.balanced ? { sampleLabels: classesFor(0, opts.n) } : {}),
          });
          process.stdout.write(
            `${opts.n} samples from ${runDir} (step ${ckpt.meta.step}, ${weightsKind} weights, ${samplerId}, ${nfe} NFE${opts.class !== undefined ? `, class ${opts.class}` : ''}${opts.balanced ? `, ${numClasses} classes equally` : ''})\n`,
          );
          for (const line of formatEvaluation(report)) process.stdout.write(`${line}\n`);
          if (opts.json) {
            writeFileAtomic(
              opts.json,
              `${JSON.stringify({ run: runDir, step: ckpt.meta.step, weights: weightsKind, sampler: samplerId, nfe, ...(opts.class !== undefined ? { class: opts.class } : {}), ...(opts.balanced ? { balanced: true } : {}), ...report }, null, 2)}\n`,
            );
          }
        } finally {
          model.dispose();
        }
      },
    );

  program
    .command('likelihood')
    .description('test-set bits per dimension under the probability-flow ODE')
    .argument('<run-dir>', 'a run folder written by `difflab train`')
    .option('--n <n>', 'test examples (the first n)', positiveInt, 16)
    .option('--batch <n>', 'examples per ODE solve', positiveInt, 8)
    .option('--steps <n>', 'RK4 steps of the ODE', positiveInt, 32)
    .option('--probes <n>', 'Hutchinson probes per example', positiveInt, 2)
    .option('--seed <s>', 'random seed (dequantization noise, probes)', nonNegativeInt, 0)
    .option('--no-ema', 'use the raw weights instead of the EMA weights')
    .option('--json <file>', 'also write the results as JSON')
    .action(async (runDir: string, opts: { n: number; batch: number; steps: number; probes: number; seed: number; ema: boolean; json?: string }) => {
      const { plugin, model, config, dataBaseDir } = await openRun(program, runDir, opts.ema);
      try {
        const data = await plugin.openData(config.data, {
          split: 'test',
          baseDir: dataBaseDir,
          rng: new Rng(opts.seed),
          log: (m) => process.stderr.write(`${m}\n`),
        });
        const n = Math.min(opts.n, data.size);
        const bpd: number[] = [];
        const discrete: number[] = [];
        let boundKind: string | undefined;
        const se: number[] = [];
        const t0 = Date.now();
        for (let start = 0; start < n; start += opts.batch) {
          const idx = Array.from({ length: Math.min(opts.batch, n - start) }, (_, i) => start + i);
          const batch = data.batch(idx, new Rng(opts.seed));
          const r = await dataLikelihood(model, batch.x, {
            steps: opts.steps,
            probes: opts.probes,
            seed: opts.seed + start,
            ...(data.quantizationStep ? { quantizationStep: data.quantizationStep } : {}),
          });
          tfDispose(batch);
          boundKind = r.kind;
          bpd.push(...r.bitsPerDim);
          if (r.discreteBitsPerDim) discrete.push(...r.discreteBitsPerDim);
          se.push(...r.standardError);
          process.stderr.write(`likelihood: ${start + idx.length}/${n} examples  ${((Date.now() - t0) / 1000).toFixed(0)}s\n`);
        }
        const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
        // Standard error of the mean over examples (it includes the probes' variance).
        const sem = (a: number[]) => Math.sqrt(a.reduce((x, y) => x + (y - mean(a)) ** 2, 0) / Math.max(1, a.length - 1) / a.length);
        const headline = discrete.length ? discrete : bpd;
        const result = {
          run: runDir,
          examples: n,
          ode_steps: opts.steps,
          probes: opts.probes,
          bits_per_dim: mean(headline),
          bits_per_dim_sem: sem(headline),
          kind: boundKind ?? (discrete.length ? 'discrete (uniform dequantization; an upper bound)' : 'continuous'),
          continuous_bits_per_dim: mean(bpd),
          per_example: headline,
        };
        process.stdout.write(
          `test bits/dim: ${result.bits_per_dim.toFixed(3)} ± ${result.bits_per_dim_sem.toFixed(3)} (${result.kind}; ${n} examples, ${opts.steps} RK4 steps, ${opts.probes} Hutchinson probes)\n`,
        );
        if (opts.json) writeFileAtomic(opts.json, `${JSON.stringify(result, null, 2)}\n`);
      } finally {
        model.dispose();
      }
    });

  registerDenoiseCommand(program);
  registerBenchCommand(program);
  registerDatasetsCommand(program);

  return program;
}

/** The `sample` config overrides that --sampler, --steps and --guidance ask for. */
function sampleOverrides(opts: { sampler?: string; steps?: number; guidance?: number }): Parameters<typeof generate>[1]['sample'] {
  return {
    ...(opts.sampler ? { sampler: opts.sampler } : {}),
    ...(opts.steps ? { steps: opts.steps } : {}),
    ...(opts.guidance !== undefined ? { guidance: opts.guidance } : {}),
  } as Parameters<typeof generate>[1]['sample'];
}

/** Row 0 of a batch, without its batch dimension. */
function sliceFirst(t: tfTensor): tfTensor {
  return t.slice([0], [1]).squeeze([0]);
}

function tfDispose(batch: { x: { dispose(): void }; labels?: { dispose(): void } }): void {
  batch.x.dispose();
  batch.labels?.dispose();
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors already printed their message.
      process.exit(err.exitCode);
    }
    fail(err);
  }
}

await main();
