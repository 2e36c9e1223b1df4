/** Helpers shared by the side-by-side benchmarks (bench:backend, bench:train-image). */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostBatch, StepOptions, StepResult, Trainer } from '../../src/core/parallel/types.js';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';
}

export function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

export type TorchOutcome = { ok: true; python: string } | { ok: false; reason: string };

/** Creates (once) bench/.venv with torch==2.13.0 and returns its python, or why it could not. */
export function ensureTorch(): TorchOutcome {
  const r = spawnSync('bash', [join(benchDir, 'torch', 'ensure-venv.sh')], { encoding: 'utf8', timeout: 20 * 60_000 });
  const last = r.stdout?.trim().split('\n').pop()?.trim() ?? '';
  if (r.status === 0 && last) return { ok: true, python: last };
  const why = (r.stderr ?? '').trim().split('\n').filter(Boolean).pop() ?? r.error?.message ?? `exit ${r.status}`;
  return { ok: false, reason: `could not create bench/.venv with torch==2.13.0: ${why}` };
}

export interface TimedSteps {
  readonly timesMs: number[];
  readonly medianMs: number;
  /** Mean per step of the slowest replica's phases (it sets the pace; wait is the others' idle time at the barrier). */
  readonly breakdown: { computeMs: number; waitMs: number; reduceMs: number; applyMs: number };
  readonly lastLoss: number | undefined;
}

/** Warm-up steps, then `steps` timed trainer steps; batches are drawn outside the timed region. */
export async function timeTrainerSteps(
  trainer: Trainer,
  engine: string,
  warmup: number,
  steps: number,
  batchFor: (i: number, warm: boolean) => HostBatch,
  stepOptions: StepOptions = {},
): Promise<TimedSteps> {
  for (let i = 0; i < warmup; i++) await trainer.step(batchFor(i, true), stepOptions);
  const timesMs: number[] = [];
  const results: StepResult[] = [];
  for (let i = 0; i < steps; i++) {
    const batch = batchFor(warmup + i, false);
    const t0 = performance.now();
    results.push(await trainer.step(batch, stepOptions));
    timesMs.push(performance.now() - t0);
    process.stderr.write(`  ${engine}: step ${i + 1}/${steps} ${timesMs[i]?.toFixed(0)} ms\n`);
  }
  const mean = (f: (r: StepResult) => number): number => results.reduce((s, r) => s + f(r), 0) / results.length;
  return {
    timesMs,
    medianMs: median(timesMs),
    breakdown: {
      computeMs: mean((r) => Math.max(...r.timings.map((x) => x.computeMs))),
      waitMs: mean((r) => Math.max(...r.timings.map((x) => x.waitMs))),
      reduceMs: mean((r) => Math.max(...r.timings.map((x) => x.reduceMs))),
      applyMs: mean((r) => Math.max(...r.timings.map((x) => x.applyMs))),
    },
    lastLoss: results[results.length - 1]?.loss,
  };
}
