/**
 * `npm run bench:samplers`: difflab's samplers against k-diffusion's on exact
 * Gaussian-mixture denoisers (src/core/analytic.ts on the difflab side, the
 * same mixture written in torch on the k-diffusion side).
 *
 * For each sampler and NFE budget in {5, 10, 20, 50, 100}, both libraries
 * start from the same initial noise x = sigma_max * z and use the same Karras
 * sigmas (rho 7, computed once by difflab's karrasSigmas), and the samples are
 * scored by one TypeScript implementation against the exact distribution:
 *   - swd: sliced 2-Wasserstein distance to an exact sample of the same size
 *     (random directions uniform on the sphere); floor = the SWD between two
 *     independent exact samples;
 *   - mean_err: ||mean_hat - mean||_2 against the exact mixture mean;
 *   - cov_err: ||Cov_hat - Cov||_F (2-D) or ||diag Cov_hat - diag Cov||_2 (784-D);
 *   - trace_rel_err: (tr Cov_hat - tr Cov) / tr Cov.
 * NFE accounting: each sampler gets the largest step count whose denoiser calls
 * fit the budget (difflab: its registry's stepsForNfe, checked against the
 * calls counted in every run; k-diffusion: calls counted in a probe run), so
 * Heun-type samplers, at 2 calls per step but 1 on the last, get 3/5/10/25/50
 * steps = 5/9/19/49/99 NFE, k-diffusion's convention.
 * Parity: for samplers both libraries have (difflab's registry names the
 * k-diffusion function), a second run on a prefix of the same initial noise,
 * with difflab's sigmas, where k-diffusion replays the exact noise arrays
 * difflab drew (one per rng.normalTensor call, in order). It runs in float64
 * and again in float32; parity_max_abs_diff = max |x_difflab - x_kdiffusion64|,
 * and the float32 run shows how much float32 arithmetic alone moves the result.
 *
 * Writes bench/results/samplers.{json,md,png} and prints the Markdown table.
 * Options: --quick (small sizes, budgets 5/10/20), --samplers a,b (difflab ids),
 * --datasets gmm2d,gmm784, --no-kdiff, --seed N. Env: DIFFLAB_BACKEND picks the
 * tfjs backend, DIFFLAB_BENCH_NO_KDIFF=1 skips k-diffusion,
 * DIFFLAB_BENCH_TORCH_THREADS sets torch's threads (default 1).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GaussianMixture, type MixtureComponentSpec } from '../src/core/analytic.js';
import { selectBackend } from '../src/core/backend/select.js';
import { Rng } from '../src/core/random.js';
import { countNfe, getSampler, SAMPLER_IDS, samplerInfo, stepsForNfe, type AnySamplerOptions } from '../src/core/samplers/index.js';
import { karrasSigmas } from '../src/core/schedules/discretize.js';
import type { Denoiser } from '../src/core/types.js';
import { writeLogLogChart, type LegendEntry, type Panel, type Series } from './lib/chart.js';
import {
  ensureVenv,
  KDIFF_SAMPLERS,
  probeSteps,
  runKdiffusion,
  type DatasetSpec,
  type KdiffInfo,
  type KdiffSampler,
  type RunResult,
  type RunSpec,
} from './lib/kdiffusion.js';
import {
  maxAbsDiff,
  median,
  momentErrors,
  rowMaxAbsDiff,
  randomDirections,
  slicedW2,
  sortedProjections,
  type CovMetric,
  type ExactMoments,
  type Samples,
} from './lib/metrics.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = resolve(here, 'results');

// ---------------------------------------------------------------------------- options

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    samplers: { type: 'string' },
    datasets: { type: 'string' },
    'no-kdiff': { type: 'boolean', default: false },
    seed: { type: 'string', default: '20240607' },
  },
});
const QUICK = opts.quick === true;
const SEED = Number(opts.seed);
const BUDGETS = QUICK ? [5, 10, 20] : [5, 10, 20, 50, 100];
const SUMMARY_BUDGET = 10;
const SUMMARY_DATASET = 'gmm2d';
const SUMMARY_METRIC = 'swd' as const;
/** Parity verdict: agreement to 1e-4, or within 10x of k-diffusion's own float32-vs-float64 difference. */
const PARITY_ABS_TOL = 1e-4;
const PARITY_FLOOR_FACTOR = 10;
const PARITY_DIVERGED = 1e-2;
/** Independent exact samples scored against the reference for the floor (mean and range). */
const FLOOR_SAMPLES = 5;

/** Errors of exact samples of the same size (means over FLOOR_SAMPLES; the SWD with its range). */
interface Floor {
  swd: number;
  swd_min: number;
  swd_max: number;
  swd_samples: number[];
  mean_err: number;
  cov_err: number;
  trace_rel_err: number;
  cov_metric: CovMetric;
  pairs: number;
}
const TORCH_THREADS = Number(process.env['DIFFLAB_BENCH_TORCH_THREADS'] ?? 1);

// ---------------------------------------------------------------------------- datasets

interface Dataset {
  readonly name: string;
  readonly description: string;
  readonly mixture: GaussianMixture;
  readonly pySpec: DatasetSpec;
  readonly d: number;
  /** Samples per run (and size of the exact reference samples). */
  readonly n: number;
  /** Rows of the parity runs (a prefix of the same initial noise). */
  readonly parityRows: number;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  readonly rho: number;
  readonly covMetric: CovMetric;
  readonly projections: number;
  /**
   * Noise source of k-diffusion's Brownian-tree samplers (dpmpp_sde, dpmpp_2m_sde,
   * dpmpp_3m_sde) in the benchmark rows: 'default' = their torchsde Brownian tree,
   * 'iid' = a fresh Gaussian per noise_sampler call (the tree costs ~1.5 s per
   * query at [1000, 784] here). For 2m/3m SDE, whose queries cover disjoint
   * intervals, both give the same distribution; for dpmpp_sde the two
   * sub-step noises become independent instead of Brownian-consistent.
   */
  readonly kdiffNoise: 'default' | 'iid';
}

type Comp = { weight: number; mean: number[]; std?: number; cov?: number[][] };
type Rest = Omit<Dataset, 'name' | 'description' | 'mixture' | 'pySpec' | 'd'>;

function build(name: string, description: string, d: number, comps: Comp[], rest: Rest): Dataset {
  const specs: MixtureComponentSpec[] = comps.map((c) => ({
    weight: c.weight,
    mean: c.mean,
    cov: c.cov ? { kind: 'full', matrix: c.cov } : { kind: 'isotropic', variance: (c.std as number) ** 2 },
  }));
  return {
    name,
    description,
    mixture: new GaussianMixture(specs),
    pySpec: { name, mixture: { dim: d, components: comps } },
    d,
    ...rest,
  };
}

/** 2-D: six anisotropic full-covariance Gaussians on a ring of radius 2, unequal weights. */
function gmm2d(): Dataset {
  const comps: Comp[] = [];
  const weights = [1, 2, 1, 3, 1, 2];
  for (let k = 0; k < 6; k++) {
    const a = (2 * Math.PI * k) / 6;
    const [c, s] = [Math.cos(a), Math.sin(a)];
    const [vr, vt] = [0.01, 0.09]; // radial and tangential variances
    comps.push({
      weight: weights[k] as number,
      mean: [2 * c, 2 * s],
      cov: [
        [vr * c * c + vt * s * s, (vr - vt) * c * s],
        [(vr - vt) * c * s, vr * s * s + vt * c * c],
      ],
    });
  }
  return build('gmm2d', '2-D, 6 full-covariance components on a radius-2 ring (std 0.1 radial, 0.3 tangential), weights 1:2:1:3:1:2', 2, comps, {
    n: QUICK ? 2000 : 10000,
    parityRows: QUICK ? 500 : 2000,
    sigmaMin: 0.002,
    sigmaMax: 40,
    rho: 7,
    covMetric: 'frobenius',
    projections: 500,
    kdiffNoise: 'default',
  });
}

/** 784-D: ten isotropic Gaussians, means uniform in [-0.8, 0.8]^784, stds 0.2..0.4, unequal weights. */
function gmm784(): Dataset {
  const d = 784;
  const rng = new Rng(SEED ^ 0x784);
  const comps: Comp[] = [];
  for (let k = 0; k < 10; k++) {
    comps.push({
      weight: 1 + (k % 3),
      mean: Array.from({ length: d }, () => -0.8 + 1.6 * rng.uniform()),
      std: 0.2 + (0.2 * k) / 9,
    });
  }
  return build('gmm784', '784-D, 10 isotropic components, means uniform in [-0.8, 0.8]^784, stds 0.2..0.4, weights 1:2:3:1:...', d, comps, {
    n: QUICK ? 300 : 1000,
    parityRows: QUICK ? 50 : 100,
    sigmaMin: 0.002,
    sigmaMax: 80,
    rho: 7,
    covMetric: 'diag-l2',
    projections: QUICK ? 64 : 256,
    kdiffNoise: 'iid',
  });
}

function exactMoments(ds: Dataset): ExactMoments {
  const mean = ds.mixture.mean();
  const full = ds.mixture.covariance();
  const d = ds.d;
  let trace = 0;
  for (let i = 0; i < d; i++) trace += full[i * d + i] as number;
  if (ds.covMetric === 'frobenius') return { mean, cov: full, trace };
  const diag = new Float64Array(d);
  for (let i = 0; i < d; i++) diag[i] = full[i * d + i] as number;
  return { mean, cov: diag, trace };
}

// ---------------------------------------------------------------------------- difflab side

/** An Rng that keeps a copy of every normal array it hands out (normalTensor goes through normalArray). */
class RecordingRng extends Rng {
  readonly draws: Float32Array[] = [];
  override normalArray(n: number): Float32Array {
    const a = super.normalArray(n);
    this.draws.push(a.slice());
    return a;
  }
}

function counted(den: Denoiser): { fn: Denoiser; calls: () => number } {
  let calls = 0;
  return {
    fn: (x, sigma, cond) => {
      calls++;
      return den(x, sigma, cond);
    },
    calls: () => calls,
  };
}

interface DifflabRun {
  readonly samples: Float32Array;
  readonly nfe: number;
  readonly wall_s: number;
  readonly draws: Float32Array[];
}

/**
 * Sampler knobs that differ from the library defaults (everything else runs
 * on defaults, as on k-diffusion's side). ALD's defaults (T = 100 Langevin
 * steps per level, epsilon = 2e-5 tuned for sigma_L = 0.01) cannot fit a 5..100
 * NFE budget, and epsilon = 2e-5 diverges at sigma_L = 0.002
 * (alpha_L / sigma_L^2 = 5 > 4). Here: one Langevin step per level (NFE =
 * levels + 1) and epsilon = sigma_L^2, i.e. alpha_i = sigma_i^2, each step going
 * half-way to D(x; sigma_i) before re-noising. Chosen on the 2-D mixture from
 * T in {1, 2, 4} x epsilon / sigma_L^2 in {0.2, 0.5, 1, 1.5}: T = 1 was best at
 * every budget, 1 is the round ratio (1.5 was a little better, the paper's 0.2
 * far worse at these budgets).
 */
function knobs(id: string, ds: Dataset): AnySamplerOptions {
  if (id === 'ald') return { stepsPerLevel: 1, stepSize: ds.sigmaMin ** 2 };
  return {};
}

function runDifflab(id: string, ds: Dataset, init: Float32Array, rows: number, sigmas: number[], seed: number, record: boolean): DifflabRun {
  const sampler = getSampler(id);
  const den = counted(ds.mixture.denoiser());
  const rng = record ? new RecordingRng(seed) : new Rng(seed);
  const x = tf.tensor2d(init.subarray(0, rows * ds.d), [rows, ds.d]);
  const t0 = performance.now();
  const out = tf.tidy(() => sampler(den.fn, x, sigmas, { ...knobs(id, ds), rng }));
  const samples = out.dataSync() as Float32Array;
  const wall = (performance.now() - t0) / 1000;
  out.dispose();
  x.dispose();
  return { samples: Float32Array.from(samples), nfe: den.calls(), wall_s: wall, draws: record ? (rng as RecordingRng).draws : [] };
}

// ---------------------------------------------------------------------------- rows

type Library = 'difflab' | 'k-diffusion';

interface Row {
  library: Library;
  sampler: string;
  dataset: string;
  nfe_budget: number;
  nfe: number | null;
  steps: number | null;
  n_samples: number;
  swd: number | null;
  mean_err: number | null;
  cov_err: number | null;
  cov_metric: CovMetric;
  trace_rel_err: number | null;
  wall_s: number | null;
  parity_max_abs_diff: number | null;
  /** k-diffusion rows: noise source of Brownian-tree samplers (see Dataset.kdiffNoise). */
  kdiff_noise?: 'default' | 'iid';
  error?: string;
}

interface ParityRecord {
  sampler: string;
  kdiffusion_sampler: string;
  dataset: string;
  nfe_budget: number;
  steps: number;
  rows: number;
  /** max |difflab (float32) - k-diffusion (float64)| */
  max_abs_diff: number | null;
  /** max |k-diffusion float32 - k-diffusion float64| on the same inputs: what float32 arithmetic alone does. */
  float32_floor: number | null;
  /** max |difflab - k-diffusion float32| */
  max_abs_diff_vs_float32: number | null;
  /** Median over samples of each sample's max |difflab - k-diffusion float64|. */
  median_sample_max_abs_diff: number | null;
  /** Samples whose max |diff| exceeds PARITY_DIVERGED (ended in another place, e.g. another mixture component). */
  samples_diverged: number | null;
  /** max_abs_diff <= max(PARITY_ABS_TOL, PARITY_FLOOR_FACTOR * float32_floor) */
  agrees: boolean | null;
  noise_draws_difflab: number;
  noise_draws_kdiffusion_used: number | null;
  note?: string;
}

/** The k-diffusion sampler of the same semantics, from difflab's registry (sample_euler -> euler). */
const kdiffName = (id: string): KdiffSampler | undefined => {
  const name = samplerInfo(id).kDiffusion?.replace(/^sample_/, '');
  return name && (KDIFF_SAMPLERS as readonly string[]).includes(name) ? (name as KdiffSampler) : undefined;
};

function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return 'inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(digits) : v.toExponential(digits - 1);
}

// ---------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const backend = await selectBackend();
  const started = Date.now();
  console.log(`bench:samplers on tfjs backend '${backend.name}' (${backend.chosenBecause})${QUICK ? ', --quick' : ''}`);

  const allDatasets = [gmm2d(), gmm784()];
  const wanted = opts.datasets?.split(',').map((s) => s.trim());
  const datasets = wanted ? allDatasets.filter((d) => wanted.includes(d.name)) : allDatasets;
  const difflabIds = (opts.samplers ? opts.samplers.split(',').map((s) => s.trim()) : [...SAMPLER_IDS]) as string[];
  for (const id of difflabIds) getSampler(id); // unknown ids fail here, before any work

  // ---- k-diffusion venv and its step counts
  let venv = opts['no-kdiff'] ? ({ ok: false, reason: '--no-kdiff' } as const) : ensureVenv();
  let kdiffSteps: Record<string, Record<string, { steps: number; nfe: number | null }>> | null = null;
  let kdiffInfo: KdiffInfo | null = null;
  if (venv.ok) {
    try {
      const probe = probeSteps(venv.python, KDIFF_SAMPLERS, BUDGETS);
      kdiffSteps = probe.steps;
      kdiffInfo = probe.info;
    } catch (err) {
      venv = { ok: false, reason: (err as Error).message };
    }
  }
  if (!venv.ok) console.log(`k-diffusion: unavailable (${venv.reason}); running difflab rows only, k-diffusion figures are null`);

  const rows: Row[] = [];
  const parity: ParityRecord[] = [];
  const floors: Record<string, Floor> = {};
  // difflab's own NFE accounting (stepsForNfe / countNfe), checked against the counted calls of every run.
  const difflabSteps = new Map<string, Map<number, { steps: number; nfe: number | null; error?: string }>>();
  for (const id of difflabIds) {
    const m = new Map<number, { steps: number; nfe: number | null; error?: string }>();
    for (const budget of BUDGETS) {
      try {
        const ds0 = datasets[0] as Dataset;
        const steps = stepsForNfe(id, budget, knobs(id, ds0));
        m.set(budget, { steps, nfe: countNfe(id, karrasSigmas(steps, ds0.sigmaMin, ds0.sigmaMax, ds0.rho), knobs(id, ds0)) });
      } catch (err) {
        m.set(budget, { steps: 0, nfe: null, error: (err as Error).message });
      }
    }
    difflabSteps.set(id, m);
  }

  for (const ds of datasets) {
    const t0 = Date.now();
    const d = ds.d;
    // Exact reference sample A scores every run; FLOOR_SAMPLES more exact samples give the floor and its spread.
    const refRng = new Rng(SEED + 1);
    const exactSample = (): Float32Array => {
      const t = ds.mixture.sample(ds.n, refRng);
      const data = Float32Array.from(t.dataSync());
      t.dispose();
      return data;
    };
    const refAData = exactSample();
    const dirs = randomDirections(d, ds.projections, SEED + 2);
    const refProj = sortedProjections(refAData, ds.n, d, dirs);
    const moments = exactMoments(ds);
    const score = (x: Samples) => {
      const m = momentErrors(x, ds.n, d, moments, ds.covMetric);
      return { swd: slicedW2(sortedProjections(x, ds.n, d, dirs), refProj), mean_err: m.meanErr, cov_err: m.covErr, trace_rel_err: m.traceRelErr };
    };
    const floorScores = Array.from({ length: FLOOR_SAMPLES }, () => score(exactSample()));
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const swds = floorScores.map((f) => f.swd);
    const floor: Floor = {
      swd: avg(swds),
      swd_min: Math.min(...swds),
      swd_max: Math.max(...swds),
      swd_samples: swds,
      mean_err: avg(floorScores.map((f) => f.mean_err)),
      cov_err: avg(floorScores.map((f) => f.cov_err)),
      trace_rel_err: avg(floorScores.map((f) => f.trace_rel_err)),
      cov_metric: ds.covMetric,
      pairs: FLOOR_SAMPLES,
    };
    floors[ds.name] = floor;
    const init = new Rng(SEED + 3).normalArray(ds.n * d).map((v) => v * ds.sigmaMax);
    const sigmasFor = (steps: number) => karrasSigmas(steps, ds.sigmaMin, ds.sigmaMax, ds.rho);
    console.log(`[${ds.name}] ${ds.description}; n=${ds.n}, sigma ${ds.sigmaMin}..${ds.sigmaMax} (Karras rho ${ds.rho}); SWD floor ${fmt(floor.swd)} (${fmt(floor.swd_min)}..${fmt(floor.swd_max)})`);

    // ---- difflab benchmark rows
    const rowIndex = new Map<string, Row>();
    for (const id of difflabIds) {
      const steps = difflabSteps.get(id) as Map<number, { steps: number; nfe: number | null; error?: string }>;
      for (const budget of BUDGETS) {
        const st = steps.get(budget) as { steps: number; nfe: number | null; error?: string };
        const row: Row = {
          library: 'difflab', sampler: id, dataset: ds.name, nfe_budget: budget, nfe: null, steps: st.steps || null, n_samples: ds.n,
          swd: null, mean_err: null, cov_err: null, cov_metric: ds.covMetric, trace_rel_err: null, wall_s: null, parity_max_abs_diff: null,
        };
        if (st.steps === 0) row.error = st.error ?? `no step count fits ${budget} NFE`;
        else {
          try {
            const r = runDifflab(id, ds, init, ds.n, sigmasFor(st.steps), SEED + 4 + budget, false);
            Object.assign(row, { nfe: r.nfe, wall_s: r.wall_s }, score(r.samples));
            if (r.nfe !== st.nfe) row.error = `counted ${r.nfe} denoiser calls, countNfe says ${st.nfe}`;
            else if (r.nfe > budget) row.error = `counted ${r.nfe} denoiser calls, over the ${budget} budget`;
          } catch (err) {
            row.error = (err as Error).message;
          }
        }
        rows.push(row);
        rowIndex.set(`difflab|${id}|${budget}`, row);
        process.stdout.write(`  difflab ${id} @${budget}: swd ${fmt(row.swd)} (${fmt(row.wall_s)} s)${row.error ? ` ERROR ${row.error}` : ''}\n`);
      }
    }

    // ---- k-diffusion rows and parity
    if (venv.ok && kdiffSteps) {
      const runs: RunSpec[] = [];
      for (const name of KDIFF_SAMPLERS) {
        for (const budget of BUDGETS) {
          const st = kdiffSteps[name]?.[String(budget)];
          if (!st || st.steps === 0) continue;
          runs.push({
            id: `bench-${name}-${budget}`, dataset: ds.name, sampler: name, sigmas: sigmasFor(st.steps), n: ds.n, seed: SEED + 4 + budget,
            noise: ds.kdiffNoise,
          });
        }
      }
      // Parity runs: difflab on the first parityRows rows with a recording rng, k-diffusion replays its noise.
      const parityDifflab = new Map<string, DifflabRun>();
      for (const id of difflabIds) {
        const kname = kdiffName(id);
        if (!kname) continue;
        for (const budget of BUDGETS) {
          const st = difflabSteps.get(id)?.get(budget);
          if (!st || st.steps === 0) continue;
          const key = `${id}|${budget}`;
          try {
            const r = runDifflab(id, ds, init, ds.parityRows, sigmasFor(st.steps), SEED + 5 + budget, true);
            parityDifflab.set(key, r);
            for (const dtype of ['float64', 'float32'] as const) {
              runs.push({
                id: `parity${dtype === 'float32' ? '32' : ''}-${kname}-${budget}`, dataset: ds.name, sampler: kname, sigmas: sigmasFor(st.steps),
                n: ds.parityRows, seed: SEED + 5 + budget, dtype, ...(r.draws.length > 0 ? { replay: r.draws } : {}),
              });
            }
          } catch (err) {
            parity.push({
              sampler: id, kdiffusion_sampler: kname, dataset: ds.name, nfe_budget: budget, steps: st.steps, rows: ds.parityRows,
              max_abs_diff: null, float32_floor: null, max_abs_diff_vs_float32: null, median_sample_max_abs_diff: null, samples_diverged: null,
              agrees: null, noise_draws_difflab: 0,
              noise_draws_kdiffusion_used: null, note: `difflab run failed: ${(err as Error).message}`,
            });
          }
        }
      }
      let results: RunResult[] = [];
      try {
        const out = runKdiffusion(venv.python, [ds.pySpec], new Map([[ds.name, { x: init, rows: ds.n }]]), runs, TORCH_THREADS);
        results = out.results;
        kdiffInfo = out.info;
      } catch (err) {
        results = runs.map((r) => ({ id: r.id, error: (err as Error).message }));
      }
      const byId = new Map(results.map((r) => [r.id, r]));
      for (const name of KDIFF_SAMPLERS) {
        for (const budget of BUDGETS) {
          const st = kdiffSteps[name]?.[String(budget)];
          const res = byId.get(`bench-${name}-${budget}`);
          const row: Row = {
            library: 'k-diffusion', sampler: name, dataset: ds.name, nfe_budget: budget, nfe: res?.nfe ?? null, steps: st?.steps || null,
            n_samples: ds.n, swd: null, mean_err: null, cov_err: null, cov_metric: ds.covMetric, trace_rel_err: null,
            wall_s: res?.wall_s ?? null, parity_max_abs_diff: null, kdiff_noise: ds.kdiffNoise,
          };
          if (!res) row.error = `no step count fits ${budget} NFE`;
          else if (res.error || !res.samples) row.error = res.error ?? 'no samples returned';
          else Object.assign(row, score(res.samples));
          rows.push(row);
          rowIndex.set(`k-diffusion|${name}|${budget}`, row);
        }
      }
      for (const [key, dl] of parityDifflab) {
        const [id, b] = key.split('|') as [string, string];
        const budget = Number(b);
        const kname = kdiffName(id) as KdiffSampler;
        const res = byId.get(`parity-${kname}-${budget}`);
        const res32 = byId.get(`parity32-${kname}-${budget}`);
        const rec: ParityRecord = {
          sampler: id, kdiffusion_sampler: kname, dataset: ds.name, nfe_budget: budget, steps: difflabSteps.get(id)?.get(budget)?.steps ?? 0,
          rows: ds.parityRows, max_abs_diff: null, float32_floor: null, max_abs_diff_vs_float32: null, median_sample_max_abs_diff: null,
          samples_diverged: null, agrees: null,
          noise_draws_difflab: dl.draws.length, noise_draws_kdiffusion_used: res?.noise_draws_used ?? (dl.draws.length ? null : 0),
        };
        const notes: string[] = [];
        if (!res || res.error || !res.samples) notes.push(`k-diffusion run failed: ${res?.error ?? 'missing'}`);
        else {
          rec.max_abs_diff = maxAbsDiff(dl.samples, res.samples);
          const perRow = rowMaxAbsDiff(dl.samples, res.samples, ds.parityRows, ds.d);
          rec.median_sample_max_abs_diff = median(perRow);
          rec.samples_diverged = perRow.filter((v) => v > PARITY_DIVERGED).length;
          if (res32?.samples) {
            rec.float32_floor = maxAbsDiff(res32.samples, res.samples);
            rec.max_abs_diff_vs_float32 = maxAbsDiff(dl.samples, res32.samples);
          }
          rec.agrees = rec.max_abs_diff <= Math.max(PARITY_ABS_TOL, PARITY_FLOOR_FACTOR * (rec.float32_floor ?? 0));
          if (!rec.agrees) {
            notes.push(
              `${rec.samples_diverged} of ${ds.parityRows} samples differ by more than ${PARITY_DIVERGED} (max ${fmt(rec.max_abs_diff, 2)}), ` +
                `median per-sample max |diff| ${fmt(rec.median_sample_max_abs_diff, 2)}, k-diffusion float32 vs float64 ${fmt(rec.float32_floor, 2)}`,
            );
          }
          if (res.nfe !== dl.nfe) notes.push(`NFE differs: difflab ${dl.nfe}, k-diffusion ${res.nfe}`);
          if (res.noise_draws_used !== null && res.noise_draws_used !== undefined && res.noise_draws_used !== dl.draws.length) {
            notes.push(`difflab drew ${dl.draws.length} noise arrays, k-diffusion used ${res.noise_draws_used}`);
          }
        }
        if (notes.length) rec.note = notes.join('; ');
        parity.push(rec);
        for (const lib of ['difflab', 'k-diffusion'] as const) {
          const row = rowIndex.get(`${lib}|${lib === 'difflab' ? id : kname}|${budget}`);
          if (row) row.parity_max_abs_diff = rec.max_abs_diff;
        }
      }
    }
    console.log(`[${ds.name}] done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }

  // ---------------------------------------------------------------------------- summary
  const best = (lib: Library, dataset: string) => {
    const cands = rows.filter((r) => r.library === lib && r.dataset === dataset && r.nfe_budget === SUMMARY_BUDGET && r[SUMMARY_METRIC] !== null && Number.isFinite(r[SUMMARY_METRIC] as number));
    if (cands.length === 0) return null;
    const b = cands.reduce((a, c) => ((c[SUMMARY_METRIC] as number) < (a[SUMMARY_METRIC] as number) ? c : a));
    return { sampler: b.sampler, value: b[SUMMARY_METRIC] as number, nfe: b.nfe, steps: b.steps, dataset, metric: SUMMARY_METRIC, nfe_budget: SUMMARY_BUDGET };
  };
  const bestDl = best('difflab', SUMMARY_DATASET);
  const bestKd = venv.ok ? best('k-diffusion', SUMMARY_DATASET) : null;
  // Per shared sampler, the worst case over datasets and budgets (null if any run failed).
  const worst = (pick: (p: ParityRecord) => number | null) => {
    const out: Record<string, number | null> = {};
    for (const p of parity) {
      const prev = out[p.sampler];
      const v = pick(p);
      out[p.sampler] = v === null || prev === null ? null : Math.max(prev ?? 0, v);
    }
    return out;
  };
  const parityMax = worst((p) => p.max_abs_diff);
  const parityFloor = worst((p) => p.float32_floor);
  const parityAgrees: Record<string, boolean | null> = {};
  for (const p of parity) {
    const prev = parityAgrees[p.sampler];
    parityAgrees[p.sampler] = p.agrees === null || prev === null ? null : (prev ?? true) && p.agrees;
  }
  const byDataset: Record<string, unknown> = {};
  for (const ds of datasets) {
    const dl = best('difflab', ds.name);
    const kd = venv.ok ? best('k-diffusion', ds.name) : null;
    byDataset[ds.name] = { difflab: dl, kdiffusion: kd, ratio: dl && kd ? dl.value / kd.value : null, swd_floor: floors[ds.name]?.swd ?? null };
  }
  const summary = {
    summary_metric: `${SUMMARY_METRIC} on ${SUMMARY_DATASET}, NFE budget ${SUMMARY_BUDGET}, best sampler per library`,
    best_difflab_nfe10: bestDl,
    best_kdiffusion_nfe10: bestKd,
    best_nfe10_vs_kdiffusion: bestDl && bestKd ? bestDl.value / bestKd.value : null,
    ...(venv.ok ? {} : { kdiffusion_null_reason: venv.reason }),
    parity_max_abs_diff: venv.ok ? parityMax : null,
    parity_float32_floor: venv.ok ? parityFloor : null,
    parity_agrees: venv.ok ? parityAgrees : null,
    parity_scope:
      'max over datasets and NFE budgets of max |x_difflab - x_kdiffusion| (difflab float32, k-diffusion float64) given identical initial noise, sigmas and noise sequence; ' +
      `float32_floor = the same max for k-diffusion run in float32 vs float64; agrees = max_abs_diff <= max(${PARITY_ABS_TOL}, ${PARITY_FLOOR_FACTOR} x float32_floor) in every record`,
    best_nfe10_by_dataset: byDataset,
    floors,
  };

  const datasetsOut = datasets.map((ds) => ({
    name: ds.name, description: ds.description, dim: ds.d, n_samples: ds.n, parity_rows: ds.parityRows,
    sigma_min: ds.sigmaMin, sigma_max: ds.sigmaMax, rho: ds.rho, discretization: 'karras', swd_projections: ds.projections, cov_metric: ds.covMetric,
  }));
  const result = {
    generated_at: new Date().toISOString(),
    quick: QUICK,
    seed: SEED,
    budgets: BUDGETS,
    backend: backend.name,
    difflab_dtype: 'float32',
    kdiffusion: venv.ok ? { ...kdiffInfo, samplers: KDIFF_SAMPLERS } : { available: false, reason: venv.reason },
    nfe_rule:
      'largest step count whose denoiser calls fit the budget: difflab by its registry (stepsForNfe/countNfe, checked against the counted calls of every run), ' +
      'k-diffusion by counting its calls in a probe run; Heun-type samplers: 2 per step, 1 on the last (onto sigma = 0)',
    difflab_knobs: Object.fromEntries(difflabIds.map((id) => [id, knobs(id, datasets[0] as Dataset)])),
    metrics: {
      swd: 'sliced 2-Wasserstein distance to an independent exact sample of the same size; directions uniform on the unit sphere',
      mean_err: '||mean_hat - mean||_2 vs the exact mixture mean',
      cov_err: "'frobenius': ||Cov_hat - Cov||_F; 'diag-l2': ||diag(Cov_hat) - diag(Cov)||_2 (784-D), vs the exact mixture covariance",
      trace_rel_err: '(tr Cov_hat - tr Cov) / tr Cov',
      wall_s: 'sampler wall time for the run (difflab: tfjs incl. reading the result back; k-diffusion: torch CPU, float64, excluding process start-up)',
    },
    datasets: datasetsOut,
    rows,
    parity,
    summary,
    elapsed_s: (Date.now() - started) / 1000,
  };

  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'samplers.json'), JSON.stringify(result, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2));
  const md = markdown(rows, parity, datasets, floors, summary, backend.name, kdiffInfo, venv.ok ? null : venv.reason);
  writeFileSync(join(RESULTS, 'samplers.md'), md);
  await chart(rows, datasets, floors, join(RESULTS, 'samplers.png'));
  console.log('\n' + md);
  console.log(`wrote ${join(RESULTS, 'samplers.json')}, samplers.md, samplers.png in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const ds of datasets) ds.mixture.dispose();
}

// ---------------------------------------------------------------------------- markdown

function markdown(
  rows: Row[], parity: ParityRecord[], datasets: Dataset[], floors: Record<string, Floor>,
  summary: {
    best_difflab_nfe10: { sampler: string; value: number } | null;
    best_kdiffusion_nfe10: { sampler: string; value: number } | null;
    best_nfe10_vs_kdiffusion: number | null;
    parity_max_abs_diff: Record<string, number | null> | null;
  },
  backend: string, info: KdiffInfo | null, kdiffReason: string | null,
): string {
  const out: string[] = [];
  out.push(`### Samplers on exact Gaussian-mixture denoisers: difflab vs k-diffusion`);
  out.push('');
  out.push(
    `difflab: tfjs \`${backend}\`, float32. k-diffusion: ${info ? `${info.k_diffusion} on torch ${info.torch} CPU, float64, ${info.torch_threads} thread(s)` : `not run (${kdiffReason})`}. ` +
      `Same initial noise and Karras sigmas (rho 7) for both; NFE = counted denoiser calls, largest step count within the budget (2-evaluation samplers use 5/9/19/49/99). ` +
      `SWD = sliced 2-Wasserstein distance to an independent exact sample of the same size.`,
  );
  for (const ds of datasets) {
    const fl = floors[ds.name];
    out.push('');
    out.push(`**${ds.name}** — ${ds.description}; ${ds.n} samples, sigma ${ds.sigmaMin}..${ds.sigmaMax}, ${ds.projections} projections. ` +
      `Floor (${fl?.pairs} independent exact samples scored the same way): SWD ${fmt(fl?.swd)} (range ${fmt(fl?.swd_min)}–${fmt(fl?.swd_max)}), ` +
      `mean err ${fmt(fl?.mean_err)}, cov err ${fmt(fl?.cov_err)} (${ds.covMetric === 'frobenius' ? 'Frobenius' : 'L2 of the diagonal'}); ` +
      `SWD differences inside that range are sampling noise.`);
    out.push('');
    out.push(`| library | sampler | NFE used | ${BUDGETS.map((b) => `SWD @${b}`).join(' | ')} | mean err @10 | cov err @10 | time @10 (s) | parity max |diff| |`);
    out.push(`|---|---|---|${BUDGETS.map(() => '---:').join('|')}|---:|---:|---:|---:|`);
    const keys = [...new Set(rows.filter((r) => r.dataset === ds.name).map((r) => `${r.library}|${r.sampler}`))];
    for (const key of keys) {
      const [lib, sampler] = key.split('|') as [Library, string];
      const rs = rows.filter((r) => r.dataset === ds.name && r.library === lib && r.sampler === sampler);
      const at = (b: number) => rs.find((r) => r.nfe_budget === b);
      const r10 = at(SUMMARY_BUDGET);
      const par = rs.map((r) => r.parity_max_abs_diff).filter((v): v is number => v !== null);
      const cell = (r: Row | undefined) => (r?.error ? 'err' : fmt(r?.swd));
      out.push(
        `| ${lib} | ${sampler} | ${rs.map((r) => r.nfe ?? '–').join('/')} | ${BUDGETS.map((b) => cell(at(b))).join(' | ')} | ${fmt(r10?.mean_err)} | ${fmt(r10?.cov_err)} | ${fmt(r10?.wall_s, 2)} | ${par.length ? fmt(Math.max(...par), 2) : '–'} |`,
      );
    }
  }
  out.push('');
  out.push(
    `Best at NFE 10 (SWD, gmm2d): difflab ${summary.best_difflab_nfe10 ? `${summary.best_difflab_nfe10.sampler} ${fmt(summary.best_difflab_nfe10.value)}` : '–'}, ` +
      `k-diffusion ${summary.best_kdiffusion_nfe10 ? `${summary.best_kdiffusion_nfe10.sampler} ${fmt(summary.best_kdiffusion_nfe10.value)}` : '–'}, ratio ${fmt(summary.best_nfe10_vs_kdiffusion)}.`,
  );
  if (summary.parity_max_abs_diff && parity.length) {
    out.push('');
    out.push(
      `**Parity** (same initial noise, sigmas and noise sequence; ${datasets.map((d) => `${d.parityRows} ${d.name}`).join(' / ')} samples): ` +
        `max |difflab − k-diffusion float64|, next to k-diffusion's own float32 − float64 difference on the same inputs. ` +
        `Agrees = within ${PARITY_ABS_TOL} or ${PARITY_FLOOR_FACTOR}× that float32 floor.`,
    );
    out.push('');
    const shared = [...new Set(parity.map((p) => p.sampler))];
    out.push(`| sampler | dataset | ${BUDGETS.map((b) => `@${b}`).join(' | ')} | float32 floor (max) | samples off by > ${PARITY_DIVERGED} | agrees |`);
    out.push(`|---|---|${BUDGETS.map(() => '---:').join('|')}|---:|---:|---|`);
    for (const id of shared) {
      for (const ds of datasets) {
        const ps = parity.filter((p) => p.sampler === id && p.dataset === ds.name);
        if (!ps.length) continue;
        const at = (b: number) => ps.find((p) => p.nfe_budget === b);
        const floors32 = ps.map((p) => p.float32_floor).filter((v): v is number => v !== null);
        const ok = ps.every((p) => p.agrees === true) ? 'yes' : ps.some((p) => p.agrees === null) ? '–' : 'no';
        const diverged = ps.map((p) => p.samples_diverged).filter((v): v is number => v !== null);
        out.push(
          `| ${id} | ${ds.name} | ${BUDGETS.map((b) => fmt(at(b)?.max_abs_diff, 2)).join(' | ')} | ${floors32.length ? fmt(Math.max(...floors32), 2) : '–'} | ` +
            `${diverged.length ? `${diverged.reduce((a, b) => a + b, 0)} / ${ps.length * ds.parityRows}` : '–'} | ${ok} |`,
        );
      }
    }
    const notes = parity.filter((p) => p.note);
    if (notes.length) out.push('', `Notes: ${notes.map((p) => `${p.sampler}@${p.nfe_budget}/${p.dataset}: ${p.note}`).join('; ')}.`);
  }
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------- chart

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd'];

async function chart(rows: Row[], datasets: Dataset[], floors: Record<string, Floor>, path: string): Promise<void> {
  // Shared samplers share a color (k-diffusion names mapped to difflab ids).
  const canon = (r: Row) => (r.library === 'k-diffusion' ? r.sampler.replace(/_/g, '-') : r.sampler);
  const names = [...new Set(rows.map(canon))];
  const color = new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length] as string]));
  const legend: LegendEntry[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.library}|${r.sampler}`;
    if (seen.has(key)) continue;
    seen.add(key);
    legend.push({
      label: `${r.library === 'difflab' ? 'difflab' : 'k-diff'} ${r.sampler}`,
      color: color.get(canon(r)) as string,
      ...(r.library === 'k-diffusion' ? { dash: '5 3', marker: 'square' as const } : { marker: 'circle' as const }),
    });
  }
  const panels: Panel[] = datasets.map((ds) => {
    const series: Series[] = [];
    const keys = [...new Set(rows.filter((r) => r.dataset === ds.name).map((r) => `${r.library}|${r.sampler}`))];
    for (const key of keys) {
      const rs = rows.filter((r) => r.dataset === ds.name && `${r.library}|${r.sampler}` === key && r.nfe !== null && r.swd !== null);
      const first = rs[0];
      if (!first) continue;
      series.push({
        label: key,
        color: color.get(canon(first)) as string,
        ...(first.library === 'k-diffusion' ? { dash: '5 3', marker: 'square' as const } : { marker: 'circle' as const }),
        points: rs.map((r) => [r.nfe as number, r.swd as number] as const),
      });
    }
    return {
      title: `${ds.name} (d=${ds.d}, n=${ds.n})`,
      xLabel: 'NFE (denoiser calls)',
      yLabel: 'sliced W2 to exact sample',
      series,
      hlines: [
        {
          y: floors[ds.name]?.swd ?? NaN,
          label: `floor: exact vs exact sample (mean, band = range of ${FLOOR_SAMPLES})`,
          band: [floors[ds.name]?.swd_min ?? NaN, floors[ds.name]?.swd_max ?? NaN],
        },
      ],
      xTicks: BUDGETS,
    };
  });
  await writeLogLogChart(path, panels, legend, { title: 'Sampler error vs NFE — difflab (solid) vs k-diffusion (dashed), exact GMM denoisers' });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
