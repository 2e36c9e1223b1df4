import { rmSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join, relative } from 'node:path';
import type { RunConfig } from '../config/load.js';
import { generate as coreGenerate, loadModel as coreLoadModel } from '../generate.js';
import { evaluateSamples, type EvaluationReference } from '../metrics/evaluate.js';
import { extractFeatures } from '../metrics/extract.js';
import type { FeatureExtractor, FeatureSet } from '../metrics/types.js';
import type { NamedHostTensor } from '../parallel/types.js';
import type { AnyModalityPlugin, FeatureContext, PluginRegistry } from '../plugin.js';
import { Rng } from '../random.js';
import { trainRun, TrainingError } from '../training/engine.js';
import { readResults, RESULTS_VERSION, writeResults, type CellResult, type LossPoint, type SamplingResult, type StudyResults, type TrainingEval } from './results.js';
import { writeStudyReport, type StudyReportFiles } from './report.js';
import { studyFingerprint, type Study, type StudyCell } from './schema.js';

/**
 * Runs a study: trains every cell with the same budget, evaluates it over
 * the sampling matrix, and records everything in `<out>/results.json`
 * (rewritten atomically after each cell; finished cells are skipped on a
 * rerun) and `<out>/report.md` with PNG charts. Modality-agnostic: data,
 * networks and features come from the plugin; training, sampling and metrics
 * are the core's, injected so tests can replace them.
 */
export interface StudyDeps {
  readonly registry: PluginRegistry;
  readonly train?: typeof trainRun;
  readonly loadModel?: typeof coreLoadModel;
  readonly generate?: typeof coreGenerate;
  readonly extract?: typeof extractFeatures;
  readonly evaluate?: typeof evaluateSamples;
  /** Progress lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Passed to the plugin's featureExtractor (e.g. a tfjs model.json instead of its default network). */
  readonly featureModel?: string;
  /** Recorded in the results (the CLI passes the selected backend's name). */
  readonly backend?: string;
  /** Millisecond clock (default performance.now). */
  readonly now?: () => number;
}

export interface RunStudyResult {
  readonly results: StudyResults;
  readonly resultsFile: string;
  readonly report: StudyReportFiles;
  /** Ids of the cells trained by this call, and of those taken from the results file. */
  readonly ran: readonly string[];
  readonly skipped: readonly string[];
}

const median = (a: readonly number[]): number => {
  if (a.length === 0) return Number.NaN;
  const s = [...a].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Rows of several feature sets, one after another. */
export function concatFeatureSets(sets: readonly FeatureSet[]): FeatureSet {
  if (sets.length === 0) throw new Error('concatFeatureSets: no sets');
  const d = sets[0]!.featureDim;
  const n = sets.reduce((a, s) => a + s.n, 0);
  const features = new Float32Array(n * d);
  let row = 0;
  for (const s of sets) {
    features.set(s.features, row * d);
    row += s.n;
  }
  const c = sets[0]!.numClasses;
  if (c === undefined || sets.some((s) => !s.logProbs)) return { n, featureDim: d, features };
  const logProbs = new Float64Array(n * c);
  row = 0;
  for (const s of sets) {
    logProbs.set(s.logProbs!, row * c);
    row += s.n;
  }
  return { n, featureDim: d, features, logProbs, numClasses: c };
}

export async function runStudy(study: Study, deps: StudyDeps): Promise<RunStudyResult> {
  const train = deps.train ?? trainRun;
  const loadModel = deps.loadModel ?? coreLoadModel;
  const generate = deps.generate ?? coreGenerate;
  const extract = deps.extract ?? extractFeatures;
  const evaluate = deps.evaluate ?? evaluateSamples;
  const log = deps.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = deps.now ?? (() => performance.now());
  const ev = study.bench.eval;
  const budget = study.bench.budget;
  const fingerprint = studyFingerprint(study);
  const resultsFile = join(study.out, 'results.json');
  const modality = study.cells[0]!.config.modality;
  const plugin: AnyModalityPlugin = deps.registry.get(modality);

  const previous = readResults(resultsFile);
  if (previous && previous.fingerprint !== fingerprint) {
    throw new Error(
      `${resultsFile}: written for another budget, sampling matrix or eval section than ${study.file} has now; choose another out folder or move the file away`,
    );
  }
  const finished = new Map((previous?.cells ?? []).map((c) => [c.id, c]));
  const current = new Set(study.cells.map((c) => c.id));
  const stale = [...finished.keys()].filter((id) => !current.has(id));
  if (stale.length) log(`bench: dropping ${stale.length} result(s) of cells no longer in ${study.file} (matrix or base config changed)`);
  const results: StudyResults = {
    version: RESULTS_VERSION,
    name: study.name,
    benchFile: study.file,
    baseFile: study.baseFile,
    modality,
    fingerprint,
    bench: study.bench,
    backend: deps.backend ?? previous?.backend ?? 'unknown',
    startedAt: previous?.startedAt ?? new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    cells: study.cells.flatMap((c) => {
      const prev = finished.get(c.id);
      return prev ? [{ ...prev, index: c.index, label: c.label, assignments: c.assignments }] : [];
    }),
  };
  writeResults(resultsFile, results);

  // Feature extractors and reference features, shared by the cells with the same data.
  const extractors = new Map<string, Promise<FeatureExtractor | undefined>>();
  const references = new Map<string, Promise<EvaluationReference>>();
  const extractorFor = (info: FeatureContext) => {
    const key = JSON.stringify(info);
    if (!extractors.has(key)) extractors.set(key, plugin.featureExtractor ? plugin.featureExtractor(info, deps.featureModel) : Promise.resolve(undefined));
    return extractors.get(key)!;
  };
  const referenceFor = (config: RunConfig, extractor: FeatureExtractor): Promise<EvaluationReference> => {
    const key = JSON.stringify({ data: config.data, extractor: extractor.id });
    if (!references.has(key)) {
      references.set(
        key,
        (async () => {
          const open = (split: 'train' | 'test') => plugin.openData(config.data, { split, baseDir: study.baseDir, rng: new Rng(ev.seed), log });
          const [trainData, testData] = [await open('train'), await open('test')];
          const realCount = Math.min(ev.real ?? trainData.size, trainData.size);
          const indices = realCount < trainData.size ? Rng.derive(ev.seed, 0x7265616c).shuffle([...Array(trainData.size).keys()]).slice(0, realCount) : undefined;
          const t0 = now();
          const real = await extract(extractor, { source: trainData, ...(indices ? { indices } : {}) }, { batchSize: ev.batch });
          const heldOut = await extract(extractor, { source: testData }, { batchSize: ev.batch });
          log(`bench: features of ${real.n} real and ${heldOut.n} held-out examples (${extractor.id}) in ${((now() - t0) / 1000).toFixed(1)}s`);
          return { real, heldOut };
        })(),
      );
    }
    return references.get(key)!;
  };

  /** Samples `ev.n` examples with one sampler setting, timing the sampling alone, and scores them. */
  const sampleAndScore = async (
    cell: StudyCell,
    info: { exampleShape: readonly number[]; numClasses?: number },
    weights: readonly NamedHostTensor[],
    spec: { sampler: string; steps: number },
    extractor: FeatureExtractor | undefined,
  ): Promise<SamplingResult> => {
    const discretization = study.bench.sample?.discretization ?? cell.config.sample.discretization;
    const model = loadModel(plugin, cell.config, info, weights);
    try {
      const feats: FeatureSet[] = [];
      let sampleMs = 0;
      let nfe = 0;
      for (let start = 0; start < ev.n; start += ev.batch) {
        const count = Math.min(ev.batch, ev.n - start);
        const t0 = now();
        const r = generate(model, {
          n: count,
          seed: ev.seed * 1_000_003 + start,
          sample: { sampler: spec.sampler as RunConfig['sample']['sampler'], steps: spec.steps, discretization },
        });
        try {
          await r.x.data();
          sampleMs += now() - t0;
          nfe = r.nfe;
          if (extractor) feats.push(await extract(extractor, r.x, { batchSize: ev.batch }));
        } finally {
          r.x.dispose();
        }
      }
      const metrics = extractor
        ? await evaluate(extractor, concatFeatureSets(feats), await referenceFor(cell.config, extractor), { batchSize: ev.batch, seed: ev.seed })
        : undefined;
      return { sampler: spec.sampler, steps: spec.steps, discretization, nfe, n: ev.n, secondsPerSample: sampleMs / 1000 / ev.n, ...(metrics ? { metrics } : {}) };
    } finally {
      model.dispose();
    }
  };

  const ran: string[] = [];
  const skipped: string[] = [];
  let report = await writeStudyReport(results, study.out);
  for (const cell of study.cells) {
    const tag = `cell ${cell.index + 1}/${study.cells.length} {${cell.label}}`;
    if (finished.has(cell.id)) {
      log(`bench: ${tag}: already in ${resultsFile}, skipped`);
      skipped.push(cell.id);
      continue;
    }
    log(`bench: ${tag}: training (${'steps' in budget ? `${budget.steps} steps` : `${budget.seconds} s`})`);
    const runDir = join(study.out, 'cells', cell.slug);
    // A folder left by an interrupted run of this cell: start the cell over.
    rmSync(runDir, { recursive: true, force: true });
    const trainData = await plugin.openData(cell.config.data, { split: 'train', baseDir: study.baseDir, rng: new Rng(cell.config.seed), log });
    const info = { exampleShape: [...trainData.exampleShape], ...(trainData.numClasses !== undefined ? { numClasses: trainData.numClasses } : {}) };
    const extractor = study.sampling.length > 0 || study.bench.eval_every ? await extractorFor({ ...info, data: cell.config.data }) : undefined;
    const total = cell.config.train.steps;
    const duringSpec = { sampler: cell.config.sample.sampler, steps: cell.config.sample.steps };

    const curve: LossPoint[] = [];
    const stepSeconds: number[] = [];
    const evalsDuringTraining: TrainingEval[] = [];
    let evalSec = 0;
    let trainSec = 0;
    let lastT = 0;
    let lastStep = 0;
    let winSum = 0;
    let winN = 0;
    let stoppedBy: 'steps' | 'seconds' = 'steps';
    let stopNow = false;
    let finalWeights: NamedHostTensor[] | undefined;
    let failure: string | undefined;
    const flush = () => {
      if (winN > 0) curve.push({ step: lastStep, loss: winSum / winN, t: trainSec, at: Date.now() });
      winSum = 0;
      winN = 0;
    };
    const hookEvery = 'seconds' in budget ? 1 : gcd(study.bench.eval_every && extractor ? study.bench.eval_every : total, total);
    const cellStart = now();
    let workers = 1;
    try {
      const r = await train({
        // The hook below sees the (EMA) weights: after every step under a time budget (to stop on time), else at
        // every evaluation step and the last one.
        config: { ...cell.config, train: { ...cell.config.train, sample_every: hookEvery } },
        plugin,
        outDir: runDir,
        baseDir: study.baseDir,
        log,
        onStep: (m) => {
          trainSec = m.elapsedSec - evalSec;
          stepSeconds.push(trainSec - lastT);
          lastT = trainSec;
          lastStep = m.step;
          winSum += m.loss;
          winN++;
          if (m.step % cell.config.train.log_every === 0) flush();
        },
        onSample: async (step, weights) => {
          const spent = 'seconds' in budget && trainSec >= budget.seconds;
          const last = step >= total || spent;
          if (study.bench.eval_every && extractor && (step % study.bench.eval_every === 0 || last)) {
            const t0 = now();
            const r = await sampleAndScore(cell, info, weights, duringSpec, extractor);
            evalsDuringTraining.push({ ...r, step, trainSeconds: trainSec });
            log(`bench: ${tag}: step ${step} (${trainSec.toFixed(1)} s of training): FD ${r.metrics!.fd.value.toFixed(4)}`);
            evalSec += (now() - t0) / 1000;
          }
          if (last) finalWeights = weights.map((t) => ({ ...t, data: t.data.slice() }));
          if (spent && step < total) stopNow = true;
        },
        // The engine checkpoints the step it stops at, so a cell cut by the time budget keeps its final model.
        shouldStop: () => stopNow,
      });
      workers = r.workers;
      if (stopNow) stoppedBy = 'seconds';
    } catch (err) {
      if (err instanceof TrainingError) {
        // A diverging cell is a result of the study (e.g. a schedule that does not train): record it, go on.
        failure = err.message.split('\n')[0]!;
        log(`bench: ${tag}: training failed: ${failure}`);
      } else {
        throw err;
      }
    }
    flush();
    if (!finalWeights && failure === undefined) throw new Error(`${study.file}: ${tag}: training ended without weights (step ${lastStep})`);
    const train_ = {
      steps: lastStep,
      seconds: trainSec,
      secondsPerStep: trainSec / Math.max(lastStep, 1),
      medianStepSeconds: median(stepSeconds),
      stoppedBy,
      finalLoss: curve[curve.length - 1]?.loss ?? Number.NaN,
      curve,
      wallSeconds: (now() - cellStart) / 1000,
      workers,
    };
    log(`bench: ${tag}: ${lastStep} steps in ${trainSec.toFixed(1)} s (${(train_.secondsPerStep * 1000).toFixed(0)} ms/step), final loss ${train_.finalLoss.toFixed(4)}`);

    const sampling: SamplingResult[] = [];
    const specs = finalWeights ? (study.sampling.length ? study.sampling : [duringSpec]) : [];
    for (const spec of specs) {
      const r = await sampleAndScore(cell, info, finalWeights!, spec, extractor);
      sampling.push(r);
      log(
        `bench: ${tag}: ${spec.sampler} ${spec.steps} steps (${r.nfe} NFE): ${(r.secondsPerSample * 1000).toFixed(2)} ms/sample` +
          (r.metrics ? `, FD ${r.metrics.fd.value.toFixed(4)} (floor ${r.metrics.fd.floor.toFixed(4)})` : ''),
      );
    }
    const result: CellResult = {
      id: cell.id,
      index: cell.index,
      label: cell.label,
      assignments: cell.assignments,
      config: cell.config,
      runDir: relative(study.out, runDir),
      train: train_,
      features: extractor?.id ?? null,
      evalsDuringTraining,
      sampling,
      machine: { backend: deps.backend ?? 'unknown', cpus: availableParallelism(), cpuModel: cpus()[0]?.model.trim() ?? 'unknown' },
      ...(failure !== undefined ? { error: failure } : {}),
      completedAt: new Date().toISOString(),
    };
    results.cells = [...results.cells.filter((c) => c.id !== cell.id), result].sort((a, b) => a.index - b.index);
    results.updatedAt = result.completedAt;
    writeResults(resultsFile, results);
    report = await writeStudyReport(results, study.out);
    ran.push(cell.id);
  }
  return { results, resultsFile, report, ran, skipped };
}
