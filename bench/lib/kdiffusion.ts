/**
 * The bridge to bench/python/kdiffusion_samplers.py: makes sure the venv
 * exists, writes jobs (JSON plus raw little-endian float32 arrays) into a
 * temporary folder, runs the script and reads its float64 samples back.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PY_DIR = resolve(here, '../python');
const SCRIPT = join(PY_DIR, 'kdiffusion_samplers.py');
const ENSURE = join(PY_DIR, 'ensure-kdiffusion-venv.sh');

/** The k-diffusion samplers the Python side runs (each takes a sigma array). */
export const KDIFF_SAMPLERS = [
  'euler',
  'euler_ancestral',
  'heun',
  'dpm_2',
  'dpm_2_ancestral',
  'lms',
  'dpmpp_2s_ancestral',
  'dpmpp_sde',
  'dpmpp_2m',
  'dpmpp_2m_sde',
  'dpmpp_3m_sde',
] as const;
export type KdiffSampler = (typeof KDIFF_SAMPLERS)[number];

export type Venv = { ok: true; python: string } | { ok: false; reason: string };

function lastLine(s: string): string {
  return s.trim().split('\n').pop()?.trim() ?? '';
}

/** Creates (or finds) bench/.venv-kdiffusion; never throws. */
export function ensureVenv(): Venv {
  if (process.env['DIFFLAB_BENCH_NO_KDIFF']) return { ok: false, reason: 'DIFFLAB_BENCH_NO_KDIFF is set' };
  const r = spawnSync('bash', [ENSURE], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) return { ok: false, reason: `could not run ${ENSURE}: ${r.error.message}` };
  if (r.status !== 0) {
    const err = (r.stderr ?? '')
      .split('\n')
      .filter((l) => l.trim() && !l.includes('is ignored: it is neither a file nor a directory'))
      .slice(-3)
      .join(' | ');
    return { ok: false, reason: `ensure-kdiffusion-venv.sh exited ${r.status}: ${err || 'no message'}` };
  }
  return { ok: true, python: lastLine(r.stdout) };
}

export interface KdiffInfo {
  readonly torch: string;
  readonly k_diffusion: string;
  readonly python: string;
  readonly dtype: string;
  readonly torch_threads: number;
  readonly loaded_from: string;
}

export interface ProbeResult {
  readonly steps: Record<string, Record<string, { steps: number; nfe: number | null }>>;
  readonly info: KdiffInfo;
}

export interface DatasetSpec {
  readonly name: string;
  readonly mixture: {
    readonly dim: number;
    readonly components: ReadonlyArray<{
      readonly weight: number;
      readonly mean: readonly number[];
      readonly std?: number;
      readonly cov?: ReadonlyArray<readonly number[]>;
    }>;
  };
}

export interface RunSpec {
  readonly id: string;
  readonly dataset: string;
  readonly sampler: KdiffSampler;
  readonly sigmas: readonly number[];
  /** Rows to take from the dataset's initial x (already multiplied by sigmas[0]). */
  readonly n: number;
  readonly seed: number;
  /** difflab's recorded noise draws, each n * d float32 values, replayed in order. */
  readonly replay?: readonly Float32Array[];
  /** 'iid': fresh Gaussians per noise_sampler call instead of a Brownian tree (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde). */
  readonly noise?: 'default' | 'iid';
  /** Arithmetic of the k-diffusion run (default float64). */
  readonly dtype?: 'float32' | 'float64';
}

export interface RunResult {
  readonly id: string;
  readonly error?: string;
  readonly nfe?: number;
  readonly steps?: number;
  readonly wall_s?: number;
  readonly finite?: boolean;
  readonly noise_draws_given?: number | null;
  readonly noise_draws_used?: number | null;
  /** float64 samples [n, d]. */
  samples?: Float64Array;
}

function runPython(python: string, mode: 'probe' | 'run', dir: string, job: unknown): unknown {
  const jobPath = join(dir, `${mode}.json`);
  const outPath = join(dir, `${mode}-out.json`);
  writeFileSync(jobPath, JSON.stringify(job));
  const r = spawnSync(python, [SCRIPT, mode, jobPath, outPath], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw new Error(`kdiffusion_samplers.py ${mode}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`kdiffusion_samplers.py ${mode} exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-5).join(' | ')}`);
  }
  return JSON.parse(readFileSync(outPath, 'utf8'));
}

/** Steps per NFE budget for each sampler, by counting k-diffusion's own denoiser calls. */
export function probeSteps(python: string, samplers: readonly string[], budgets: readonly number[]): ProbeResult {
  const dir = mkdtempSync(join(tmpdir(), 'difflab-kdiff-'));
  try {
    return runPython(python, 'probe', dir, { samplers, budgets }) as ProbeResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const LITTLE_ENDIAN = endianness() === 'LE';

function writeF32(path: string, arrays: readonly Float32Array[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const a of arrays) {
      if (LITTLE_ENDIAN) {
        writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      } else {
        const buf = Buffer.allocUnsafe(a.length * 4);
        for (let i = 0; i < a.length; i++) buf.writeFloatLE(a[i] as number, i * 4);
        writeSync(fd, buf);
      }
    }
  } finally {
    closeSync(fd);
  }
}

function readF64(path: string): Float64Array {
  const buf = readFileSync(path);
  if (LITTLE_ENDIAN) return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const out = new Float64Array(buf.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = buf.readDoubleLE(i * 8);
  return out;
}

/**
 * Runs the jobs in one Python process. `inits` holds each dataset's initial x
 * ([rows, d] float32, already scaled by sigma_max).
 */
export function runKdiffusion(
  python: string,
  datasets: readonly DatasetSpec[],
  inits: ReadonlyMap<string, { x: Float32Array; rows: number }>,
  runs: readonly RunSpec[],
  threads: number,
): { results: RunResult[]; info: KdiffInfo } {
  const dir = mkdtempSync(join(tmpdir(), 'difflab-kdiff-'));
  try {
    for (const [name, init] of inits) writeF32(join(dir, `x-${name}.f32`), [init.x]);
    const jobRuns = runs.map((r) => {
      const init = inits.get(r.dataset);
      if (!init) throw new Error(`no initial noise for dataset ${r.dataset}`);
      let noiseFile: string | undefined;
      if (r.replay) {
        noiseFile = `noise-${r.id}.f32`;
        writeF32(join(dir, noiseFile), r.replay);
      }
      return {
        id: r.id,
        dataset: r.dataset,
        sampler: r.sampler,
        sigmas: r.sigmas,
        n: r.n,
        seed: r.seed,
        x_file: `x-${r.dataset}.f32`,
        x_rows: init.rows,
        noise_file: noiseFile ?? null,
        noise_draws: r.replay?.length ?? 0,
        noise: r.noise ?? 'default',
        dtype: r.dtype ?? 'float64',
      };
    });
    const out = runPython(python, 'run', dir, { datasets, runs: jobRuns, threads }) as {
      results: RunResult[];
      info: KdiffInfo;
    };
    for (const res of out.results) {
      const file = (res as { out_file?: string }).out_file;
      if (!res.error && file) res.samples = readF64(join(dir, file));
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
