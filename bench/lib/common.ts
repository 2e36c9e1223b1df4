/** Helpers shared by the side-by-side benchmarks (bench:backend, bench:train-image, bench:train-audio, bench:train-text, bench:quality-image). */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKEND_NAMES, isBackendName, selectBackend, type BackendName } from '../../src/core/backend/select.js';
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

/** What every side-by-side bench's result row starts with; each bench adds its own rate and timing fields. */
export interface BenchRowBase {
  readonly engine: string;
  readonly threads: number;
  readonly status: 'ok' | 'skipped' | 'failed';
  /** Why a row was skipped or failed. */
  readonly reason?: string;
}

export type TorchOutcome = { ok: true; python: string } | { ok: false; reason: string };

/**
 * Creates (once) bench/.venv with torch==2.13.0 and returns its python, or why it could not.
 * DIFFLAB_TORCH_PYTHON names another python with torch instead (e.g. a CUDA build on a GPU machine).
 */
export function ensureTorch(): TorchOutcome {
  const given = process.env['DIFFLAB_TORCH_PYTHON'];
  if (given) {
    const r = spawnSync(given, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0) return { ok: true, python: given };
    return { ok: false, reason: `DIFFLAB_TORCH_PYTHON=${given} does not import torch: ${(r.stderr ?? '').trim().split('\n').pop() ?? r.error?.message}` };
  }
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

/** The 1-minute load average (what the benchmarks record at the start of each row). */
export function loadavg1(): number {
  return loadavg()[0] as number;
}

/** One kernel's share of a `tf.profile` run: summed kernel time and call count. */
export interface KernelRow {
  kernel: string;
  ms: number;
  calls: number;
}

/** A `tf.profile` result grouped by kernel name, slowest first. */
export function byKernel(info: { kernels: readonly { name: string; kernelTimeMs: unknown }[] }): KernelRow[] {
  const by = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const e = by.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls += 1;
    by.set(k.name, e);
  }
  return [...by.entries()].map(([kernel, e]) => ({ kernel, ...e })).sort((p, q) => q.ms - p.ms);
}

/** Prints the top `top` kernels of a profile with their share of the total kernel time. */
export function printKernels(title: string, prof: readonly KernelRow[] | undefined, top = 8): void {
  if (!prof) return;
  const total = prof.reduce((s, k) => s + k.ms, 0);
  console.log(`${title} (${total.toFixed(0)} ms of kernel time):`);
  for (const k of prof.slice(0, top)) {
    console.log(`  ${k.kernel.padEnd(28)} ${k.ms.toFixed(1).padStart(8)} ms  ${((100 * k.ms) / total).toFixed(1).padStart(5)} %  (${k.calls} calls)`);
  }
}

export type TorchRun<J> = { ok: true; json: J } | { ok: false; reason: string };

/**
 * Runs a bench/torch script with the venv's python and parses the JSON object
 * on the last line of its stdout; the script's stderr (progress lines) is
 * passed through. A non-zero exit gives the last line of stderr as the reason.
 */
export function runTorchScript<J>(python: string, script: string, args: readonly string[], timeoutMs = 15 * 60_000): TorchRun<J> {
  const r = spawnSync(python, [join(benchDir, 'torch', script), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const errLines = (r.stderr ?? '').split('\n').filter((l) => l.trim() && !l.startsWith('USDT:'));
  for (const l of errLines) if (l.startsWith('  ')) process.stderr.write(`${l}\n`);
  if (r.status !== 0) {
    const why = errLines.pop()?.trim() ?? r.error?.message ?? `exit ${r.status ?? r.signal}`;
    return { ok: false, reason: why };
  }
  try {
    return { ok: true, json: JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as J };
  } catch (err) {
    return { ok: false, reason: `${script}: no JSON on the last line of its output (${firstLine(err)})` };
  }
}

// ---------------------------------------------------------------------------- shared report pieces

/** Prints a Markdown table, columns padded to their widest cell. */
export function printTable(header: readonly string[], lines: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(line(l));
}

/** The 1-minute load average at the start of a bench, with a note when other processes share the CPU. */
export function noteLoad(cores: number): number {
  const load = loadavg1();
  if (load > 0.5 * cores) {
    console.log(`note: 1-minute load average is ${load.toFixed(2)} on ${cores} cores; other processes share the CPU, so times are inflated`);
  }
  return load;
}

/** The `machine` block of every results JSON. */
export function machineInfo(loadBefore: number, torch?: { torch?: string; mkldnn?: boolean; device?: string }): Record<string, unknown> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    tfjs: tf.version.tfjs,
    native_tensorflow: nativeTensorFlowVersion() ?? null,
    ...(torch ? { torch: torch.torch ?? null, torch_mkldnn: torch.mkldnn ?? null, ...(torch.device ? { torch_device: torch.device } : {}) } : {}),
    date: new Date().toISOString(),
    loadavg1_before: loadBefore,
    loadavg1_after: loadavg1(),
  };
}

/** Writes a results JSON (creating its folder) and says where. */
export function writeReport(file: string, report: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}

/** torch.profiler's top ops of one training step, as the PyTorch scripts report them. */
export function printTorchProfile(threads: number, prof: readonly { op: string; self_ms: number; calls: number }[] | undefined, top = 8): void {
  if (!prof) return;
  const total = prof.reduce((s, k) => s + k.self_ms, 0);
  console.log(`PyTorch ${threads} threads, one training step, top ops by self CPU time (${total.toFixed(0)} ms in these):`);
  for (const k of prof.slice(0, top)) console.log(`  ${k.op.padEnd(40)} ${k.self_ms.toFixed(1).padStart(8)} ms  (${k.calls} calls)`);
}

/** The data-parallel trainer's mean step breakdown (slowest replica). */
export function printBreakdown(b: Readonly<Record<string, number>> | undefined, optimizer: string, digits = 0): void {
  if (!b) return;
  console.log(
    `data-parallel step breakdown (mean ms, slowest replica): compute ${fmt(b['computeMs'], digits)}, ` +
      `barrier wait ${fmt(b['waitMs'], digits)}, all-reduce ${fmt(b['reduceMs'], 1)}, ${optimizer} ${fmt(b['applyMs'], 1)}`,
  );
}

// ---------------------------------------------------------------------------- native TensorFlow and other extra backends

/** The TensorFlow version of the loaded tfjs-node backend, if one is loaded. */
export function nativeTensorFlowVersion(): string | undefined {
  if (!tf.engine().registryFactory['tensorflow']) return undefined;
  const v = (tf.findBackend('tensorflow') as { binding?: { TF_Version?: unknown } } | null)?.binding?.TF_Version;
  return typeof v === 'string' ? v : undefined;
}

export type BackendOutcome = { ok: true; name: BackendName; reason: string } | { ok: false; name: BackendName; reason: string };

/**
 * Activates `name`, or the native TensorFlow backend when none is named
 * (tfjs-node-gpu first, then tfjs-node, as difflab prefers them); says why
 * not when it is unavailable (e.g. `npm run install:native` not run).
 */
export async function activateBackend(name?: BackendName): Promise<BackendOutcome> {
  const candidates: BackendName[] = name ? [name] : ['tfjs-node-gpu', 'tfjs-node'];
  const reasons: string[] = [];
  for (const c of candidates) {
    try {
      const sel = await selectBackend(c);
      return { ok: true, name: c, reason: sel.reason };
    } catch (err) {
      reasons.push(firstLine(err));
    }
  }
  return { ok: false, name: candidates[candidates.length - 1] as BackendName, reason: reasons[reasons.length - 1] ?? 'not available' };
}

/** `--backend NAME` values of a bench: validated backend names. */
export function backendArg(flag: string, value: string | undefined): BackendName {
  if (value === undefined || !isBackendName(value)) throw new Error(`${flag} needs a backend name (${BACKEND_NAMES.join(', ')}), got ${value ?? 'nothing'}`);
  return value;
}

/**
 * One command-line flag of a bench: an integer of at least `min`, a switch
 * (sets `value`, default true), a path (resolved against the working folder),
 * a string, or a handler given a reader of the flag's value.
 */
export type BenchFlag<A> =
  | { readonly int: keyof A; readonly min: number }
  | { readonly set: keyof A; readonly value?: unknown }
  | { readonly path: keyof A }
  | { readonly string: keyof A }
  | ((args: A, value: () => string) => void);

/**
 * Parses a bench's flags onto a copy of its defaults; a bad flag or value is
 * one error naming the bench, the flag and the value.
 */
export function parseBenchFlags<A extends object>(bench: string, argv: readonly string[], defaults: A, flags: Readonly<Record<string, BenchFlag<A>>>): A {
  const a = { ...defaults } as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    const spec = flags[flag];
    if (!spec) throw new Error(`bench:${bench}: unknown flag '${flag}' (flags: ${Object.keys(flags).join(', ')})`);
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench:${bench}: ${flag} needs a value`);
      return v;
    };
    if (typeof spec === 'function') spec(a as A, value);
    else if ('int' in spec) {
      const raw = value();
      const n = Number(raw);
      if (!Number.isInteger(n) || n < spec.min) throw new Error(`bench:${bench}: ${flag} needs an integer >= ${spec.min}, got '${raw}'`);
      a[spec.int as string] = n;
    } else if ('set' in spec) a[spec.set as string] = 'value' in spec ? spec.value : true;
    else if ('path' in spec) a[spec.path as string] = resolve(value());
    else a[spec.string as string] = value();
  }
  return a as A;
}
