import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NamedHostTensor, TrainerState } from '../parallel/types.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors.js';

/**
 * Checkpoints are folders readable outside difflab:
 *
 *   checkpoints/step-00001000/
 *     model.safetensors      weights, by variable name
 *     ema.safetensors        EMA weights (absent when EMA is off)
 *     optimizer.safetensors  optimizer slots, keys "000:name" keep tfjs's order
 *     state.json             step, config, seed, shapes, metrics
 *   checkpoints/latest.json  {"step": 1000, "dir": "step-00001000"}
 *
 * A checkpoint is written into a temporary folder and renamed into place, then
 * latest.json is replaced atomically: a crash leaves the previous checkpoint
 * complete and pointed to.
 */
export const CHECKPOINT_FORMAT = 'difflab-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly version: number;
  readonly step: number;
  readonly modality: string;
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  /** The data source's dataShape / dataInfo (sources in data space, e.g. token ids and their vocabulary). */
  readonly dataShape?: readonly number[];
  readonly dataInfo?: unknown;
  readonly seed: number;
  /** The full, validated run config. */
  readonly config: unknown;
  readonly configFile?: string;
  readonly createdAt: string;
  readonly loss?: number;
  readonly extra?: Record<string, unknown>;
}

export interface Checkpoint {
  readonly dir: string;
  readonly meta: CheckpointMeta;
  readonly state: TrainerState;
  readonly ema?: NamedHostTensor[];
}

function toNamedArrays(tensors: readonly NamedHostTensor[], indexed: boolean): Record<string, { shape: readonly number[]; data: NamedArray['data'] }> {
  const out: Record<string, { shape: readonly number[]; data: NamedArray['data'] }> = {};
  tensors.forEach((t, i) => {
    const key = indexed ? `${String(i).padStart(3, '0')}:${t.name}` : t.name;
    if (key in out) throw new Error(`checkpoint: two tensors are named '${key}'`);
    out[key] = { shape: t.shape, data: t.data };
  });
  return out;
}

function fromNamedArrays(file: string, indexed: boolean, order?: readonly string[]): NamedHostTensor[] {
  const { tensors } = readSafetensors(file);
  const keys = indexed ? [...tensors.keys()].sort() : (order ?? [...tensors.keys()]);
  return keys.map((key) => {
    const t = tensors.get(key);
    if (!t) throw new Error(`${file}: missing tensor '${key}'`);
    if (t.dtype !== 'F32' && t.dtype !== 'I32') throw new Error(`${file}: tensor '${key}' has dtype ${t.dtype}`);
    const name = indexed ? key.slice(key.indexOf(':') + 1) : key;
    return { name, shape: t.shape, dtype: t.dtype === 'F32' ? 'float32' : 'int32', data: t.data as Float32Array | Int32Array };
  });
}

export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Writes a checkpoint under `<runDir>/checkpoints`, points latest.json at it and prunes old ones. */
export function saveCheckpoint(
  runDir: string,
  data: { meta: Omit<CheckpointMeta, 'format' | 'version' | 'createdAt'>; state: TrainerState; ema?: readonly NamedHostTensor[] },
  keep = 2,
): string {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const name = checkpointDirName(data.state.step);
  const final = join(root, name);
  const tmp = join(root, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
  mkdirSync(tmp);
  try {
    writeSafetensors(join(tmp, 'model.safetensors'), toNamedArrays(data.state.weights, false), { format: 'pt' });
    if (data.ema) writeSafetensors(join(tmp, 'ema.safetensors'), toNamedArrays(data.ema, false), { format: 'pt' });
    writeSafetensors(join(tmp, 'optimizer.safetensors'), toNamedArrays(data.state.optimizer, true));
    const meta: CheckpointMeta = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      createdAt: new Date().toISOString(),
      ...data.meta,
    };
    writeFileAtomic(join(tmp, 'state.json'), `${JSON.stringify({ ...meta, variables: data.state.weights.map((w) => w.name) }, null, 2)}\n`);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  writeFileAtomic(join(root, 'latest.json'), `${JSON.stringify({ step: data.state.step, dir: name })}\n`);
  const old = listCheckpoints(runDir).filter((d) => d !== name);
  for (const d of old.slice(0, Math.max(0, old.length - (keep - 1)))) rmSync(join(root, d), { recursive: true, force: true });
  return final;
}

/** Complete checkpoint folders, oldest first. */
export function listCheckpoints(runDir: string): string[] {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => /^step-\d{8}$/.test(d) && existsSync(join(root, d, 'state.json')))
    .sort();
}

/** The checkpoint latest.json points to (or the newest complete one). */
export function latestCheckpointDir(runDir: string): string | undefined {
  const root = join(runDir, 'checkpoints');
  const pointer = join(root, 'latest.json');
  if (existsSync(pointer)) {
    const { dir } = JSON.parse(readFileSync(pointer, 'utf8')) as { dir: string };
    if (existsSync(join(root, dir, 'state.json'))) return join(root, dir);
  }
  const all = listCheckpoints(runDir);
  return all.length ? join(root, all[all.length - 1] as string) : undefined;
}

export function loadCheckpoint(dir: string): Checkpoint {
  const stateFile = join(dir, 'state.json');
  let meta: CheckpointMeta & { variables: string[] };
  try {
    meta = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch (err) {
    throw new Error(`${stateFile}: cannot read checkpoint state (${(err as Error).message.split('\n')[0]})`);
  }
  if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`${stateFile}: not a difflab checkpoint`);
  if (meta.version > CHECKPOINT_VERSION) throw new Error(`${stateFile}: checkpoint version ${meta.version} is newer than this difflab reads (${CHECKPOINT_VERSION})`);
  const weights = fromNamedArrays(join(dir, 'model.safetensors'), false, meta.variables);
  const optimizer = fromNamedArrays(join(dir, 'optimizer.safetensors'), true);
  const emaFile = join(dir, 'ema.safetensors');
  const ema = existsSync(emaFile) ? fromNamedArrays(emaFile, false, meta.variables) : undefined;
  return { dir, meta, state: { step: meta.step, weights, optimizer }, ...(ema ? { ema } : {}) };
}
