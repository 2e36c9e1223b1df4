import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { DataContext, DataSource, ExampleBatch } from '../../core/plugin.js';
import type { Rng } from '../../core/random.js';
import { normalizeLevel, patternFields, type AudioDataConfig } from './config.js';
import { resample } from './resample.js';
import { WavError, readWavFile, type WavProblem } from './wav.js';

/**
 * Audio data: WAV files decoded once into one Float32Array store (every clip
 * at data.sample_rate, mono, loudness-normalized, at its own length), and a
 * DataSource whose batches cut or pad each clip to data.length samples:
 * x [B, length, 1] float32, labels [B] int32 when labelled.
 */

/** Bad audio data or a bad data layout: one line, naming the file or folder. */
export class AudioDataError extends Error {
  override readonly name = 'AudioDataError';
}

/** Why a file was bad (the kinds skip_bad_files counts). */
export type BadFileKind = WavProblem | 'name' | 'channels';

const BAD_KIND_WORDS: Readonly<Record<BadFileKind, string>> = {
  'not-wav': 'not RIFF/WAVE',
  truncated: 'truncated',
  'no-samples': 'no samples',
  unsupported: 'unsupported encoding',
  corrupt: 'corrupt header',
  unreadable: 'unreadable',
  name: 'name does not match data.pattern',
  channels: 'multi-channel (data.channels: error)',
};

class BadFile extends Error {
  constructor(
    message: string,
    readonly kind: BadFileKind,
  ) {
    super(message);
  }
}

export interface AudioDataSource extends DataSource {
  readonly exampleShape: readonly [number, 1];
  /** Every clip is stored (and batched) at this rate. */
  readonly sampleRate: number;
  /** Class names by label id, when labelled (numeric names sort numerically: FSDD digit d has id d). */
  readonly classNames?: readonly string[];
  /** Label id of each example, when labelled. */
  readonly labelIds?: Int32Array;
  /** The file of each example. */
  readonly files: readonly string[];
  /** Length in samples of each stored clip (before cropping / padding to `length`). */
  readonly clipLengths: Int32Array;
  /** Files skipped by skip_bad_files, in total and by kind. */
  readonly skippedFiles: number;
  readonly badFiles: Readonly<Partial<Record<BadFileKind, number>>>;
  /** Files that were resampled to sampleRate. */
  readonly resampledFiles: number;
  /** Mean and standard deviation of the values of all examples, each centre-cropped / padded to `length` (sigma_data). */
  readonly mean: number;
  readonly std: number;
  readonly description: string;
  /** The stored clip of example i (a view: do not modify). */
  clip(i: number): Float32Array;
}

export interface AudioOpenOptions {
  /** Working directory for relative paths (default process.cwd()). */
  readonly cwd?: string;
  /** Log progress every this many files (default 1000). */
  readonly progressEvery?: number;
}

/** Resolves a data path: absolute as is; relative against the working directory when it exists there, else against baseDir. */
export function resolveAudioPath(path: string, baseDir: string, cwd: string = process.cwd()): string {
  if (isAbsolute(path)) return path;
  const fromCwd = resolve(cwd, path);
  if (existsSync(fromCwd)) return fromCwd;
  return resolve(baseDir, path);
}

export interface AudioFileEntry {
  /** Absolute path. */
  readonly path: string;
  /** Path relative to the listed folder (or as written in a list file), '/'-separated. */
  readonly rel: string;
}

export interface AudioListing {
  readonly files: readonly AudioFileEntry[];
  /** Non-WAV files in a folder, ignored. */
  readonly ignored: number;
  readonly kind: 'folder' | 'list';
}

function sortedEntries(dir: string): { name: string; path: string; dir: boolean }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AudioDataError(`${dir}: cannot read audio folder (${code ?? String(err)})`);
  }
  const out: { name: string; path: string; dir: boolean }[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      continue; // a dangling link
    }
    out.push({ name, path, dir: isDir });
  }
  // Code-point order: the same on every machine and locale.
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const isWavName = (name: string) => extname(name).toLowerCase() === '.wav';

/**
 * Lists the WAV files of a folder (sorted, depth-first; sub-folders only when
 * `recursive`), or the entries of a list file (one path per line, relative to
 * the list file's folder; blank lines and lines starting with '#' skipped).
 */
export function listAudioFiles(path: string, recursive: boolean): AudioListing {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AudioDataError(`${path}: cannot read audio data path (${code ?? String(err)})`);
  }
  if (!isDir) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new AudioDataError(`${path}: cannot read list file (${code ?? String(err)})`);
    }
    if (text.includes('\0')) throw new AudioDataError(`${path}: data.path is a binary file; give a folder of .wav files or a text file listing them`);
    const base = dirname(path);
    const files: AudioFileEntry[] = [];
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const abs = isAbsolute(line) ? line : resolve(base, line);
      files.push({ path: abs, rel: (isAbsolute(line) ? relative(base, line) : line).split(sep).join('/') });
    }
    if (files.length === 0) throw new AudioDataError(`${path}: list file names no files`);
    return { files, ignored: 0, kind: 'list' };
  }
  const files: AudioFileEntry[] = [];
  let ignored = 0;
  const walk = (dir: string, rel: string) => {
    for (const e of sortedEntries(dir)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.dir) {
        if (recursive) walk(e.path, r);
      } else if (isWavName(e.name)) files.push({ path: e.path, rel: r });
      else ignored++;
    }
  };
  walk(path, '');
  if (files.length === 0) throw new AudioDataError(`${path}: no .wav files${recursive ? '' : ' (recursive: false; sub-folders not searched)'}`);
  return { files, ignored, kind: 'folder' };
}

/** A compiled file-name pattern: `{field}`s become lazy captures, the rest matches literally. */
export function compilePattern(pattern: string): (name: string) => Record<string, string> | undefined {
  const fields = patternFields(pattern);
  const literals = pattern.split(/\{[A-Za-z_][A-Za-z0-9_]*\}/);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let src = '^';
  literals.forEach((lit, i) => {
    src += esc(lit);
    if (i < fields.length) src += '(.+?)';
  });
  const re = new RegExp(`${src}$`);
  return (name) => {
    const m = re.exec(name);
    if (!m) return undefined;
    return Object.fromEntries(fields.map((f, i) => [f, m[i + 1]!]));
  };
}

/** Sorts class names: numerically when all are numbers (FSDD digit d gets id d), else by code point. */
export function sortClassNames(names: Iterable<string>): string[] {
  const u = [...new Set(names)];
  const numeric = u.every((s) => s.trim() !== '' && Number.isFinite(Number(s)));
  return numeric ? u.sort((a, b) => Number(a) - Number(b)) : u.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

interface Candidate {
  readonly entry: AudioFileEntry;
  /** Fields from data.pattern, or undefined when the name does not match. */
  readonly fields: Record<string, string> | undefined;
  readonly className?: string;
}

function describeEntries(c: AudioDataConfig, entries: readonly AudioFileEntry[], root: string): Candidate[] {
  const match = c.pattern !== null ? compilePattern(c.pattern) : undefined;
  return entries.map((entry) => {
    const fields = match ? match(basename(entry.path)) : {};
    let className: string | undefined;
    if (c.labels === 'folder') {
      const seg = entry.rel.split('/');
      if (seg.length < 2) {
        throw new AudioDataError(`${root}: labels 'folder' needs every file in a class sub-folder, but ${entry.rel} is at the top level`);
      }
      className = seg[0]!;
    } else if (typeof c.labels === 'object' && fields) className = fields[c.labels.field];
    return { entry, fields, ...(className !== undefined ? { className } : {}) };
  });
}

/** Which split a file belongs to by its fields (undefined: no split rule). */
function splitOf(c: AudioDataConfig, cand: Candidate): 'train' | 'test' | undefined {
  if (c.split === 'none' || !cand.fields) return undefined;
  const v = cand.fields[c.split.by]!;
  if ('test_range' in c.split) {
    const num = Number(v);
    if (v.trim() === '' || !Number.isFinite(num)) {
      throw new AudioDataError(`${cand.entry.path}: data.split.by field {${c.split.by}} is '${v}', not a number (test_range needs numbers)`);
    }
    return num >= c.split.test_range[0] && num <= c.split.test_range[1] ? 'test' : 'train';
  }
  return c.split.test_values.includes(v) ? 'test' : 'train';
}

/** Averages channels (equal weights: the usual mono downmix). */
function downmix(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0]!;
  const n = channels[0]!.length;
  const out = new Float32Array(n);
  const k = 1 / channels.length;
  for (const ch of channels) for (let i = 0; i < n; i++) out[i]! += ch[i]!;
  for (let i = 0; i < n; i++) out[i]! *= k;
  return out;
}

/** Scales a clip in place to a peak or RMS level; silent clips stay silent. Returns whether it was silent. */
function normalizeClip(x: Float32Array, kind: 'none' | 'peak' | 'rms', level: number | undefined): boolean {
  let peak = 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (a > peak) peak = a;
    ss += x[i]! * x[i]!;
  }
  if (peak === 0) return true;
  if (kind === 'none' || level === undefined) return false;
  const scale = kind === 'peak' ? level / peak : level / Math.sqrt(ss / x.length);
  for (let i = 0; i < x.length; i++) x[i]! *= scale;
  return false;
}

/** Offset of a clip of n samples inside (pad) or across (crop) a window of L samples. */
function placement(n: number, L: number, crop: AudioDataConfig['crop'], pad: AudioDataConfig['pad'], rng: Rng | undefined): number {
  if (n >= L) {
    const room = n - L;
    if (crop === 'start' || room === 0) return 0;
    if (crop === 'center' || !rng) return Math.floor(room / 2);
    return rng.int(room + 1);
  }
  const room = L - n;
  if (pad === 'end') return 0;
  if (pad === 'center' || !rng) return Math.floor(room / 2);
  return rng.int(room + 1);
}

/** Copies clip (cropped or padded to L) into out at offset `at`; out must be zero there. */
function fillWindow(out: Float32Array, at: number, clip: Float32Array, L: number, offset: number): void {
  if (clip.length >= L) out.set(clip.subarray(offset, offset + L), at);
  else out.set(clip, at + offset);
}

/** Samples a store may hold (1 GiB of float32). */
const MAX_STORE = 2 ** 28;

/**
 * Opens the `ctx.split` split of a WAV data set described by a validated
 * `data` section. Every kept file is decoded once; bad files are a one-line
 * error naming the file, or skipped and counted with skip_bad_files.
 */
export async function openAudioData(cfg: AudioDataConfig, ctx: DataContext, opts: AudioOpenOptions = {}): Promise<AudioDataSource> {
  const root = resolveAudioPath(cfg.path, ctx.baseDir, opts.cwd);
  const listing = listAudioFiles(root, cfg.recursive);
  const all = describeEntries(cfg, listing.files, root);
  const labelled = cfg.labels !== 'none';
  // Class ids come from the whole `path` listing (both splits), so train and test agree on them.
  const classNames = labelled ? sortClassNames(all.flatMap((c) => (c.className !== undefined ? [c.className] : []))) : undefined;
  if (classNames && classNames.length === 0) throw new AudioDataError(`${root}: no file names match data.pattern "${cfg.pattern}", so there are no labels`);
  const classId = new Map(classNames?.map((n, i) => [n, i]));

  let candidates: Candidate[];
  let from = root;
  if (ctx.split === 'test' && cfg.test_path !== null) {
    from = resolveAudioPath(cfg.test_path, ctx.baseDir, opts.cwd);
    const testListing = listAudioFiles(from, cfg.recursive);
    candidates = describeEntries(cfg, testListing.files, from);
    for (const c of candidates) {
      if (c.className !== undefined && !classId.has(c.className)) {
        throw new AudioDataError(`${c.entry.path}: class '${c.className}' does not occur in data.path ${root} (classes: ${classNames!.join(', ')})`);
      }
    }
  } else if (cfg.split !== 'none') {
    // Unmatched names have no split field: they stay in, and are reported as bad files below.
    candidates = all.filter((c) => {
      const s = splitOf(cfg, c);
      return s === undefined || s === ctx.split;
    });
  } else {
    candidates = all;
    if (ctx.split === 'test') ctx.log(`audio data: data.split is 'none' and no data.test_path: the test split reads the same files as train`);
  }
  if (listing.ignored > 0) ctx.log(`audio data ${root}: ignored ${listing.ignored} non-WAV file(s)`);

  const L = cfg.length;
  const rate = cfg.sample_rate;
  const level = normalizeLevel(cfg);
  const want = Math.min(cfg.limit ?? Infinity, candidates.length);
  const progressEvery = opts.progressEvery ?? 1000;
  const clips: Float32Array[] = [];
  const files: string[] = [];
  const labels: number[] = [];
  const bad: Partial<Record<BadFileKind, number>> = {};
  let skipped = 0;
  let firstSkip = '';
  let resampled = 0;
  const sourceRates = new Set<number>();
  let silent = 0;
  let over = 0;
  let total = 0;
  let seen = 0;
  for (const cand of candidates) {
    if (clips.length >= want) break;
    seen++;
    try {
      if (!cand.fields) throw new BadFile(`${cand.entry.path}: file name does not match data.pattern "${cfg.pattern}"`, 'name');
      let decoded;
      try {
        decoded = readWavFile(cand.entry.path);
      } catch (err) {
        if (err instanceof WavError) throw new BadFile(err.message, err.kind);
        throw err;
      }
      if (decoded.channels > 1 && cfg.channels === 'error') {
        throw new BadFile(`${cand.entry.path}: has ${decoded.channels} channels and data.channels is 'error' (use 'downmix' to average them)`, 'channels');
      }
      let x = downmix(decoded.channelData);
      if (decoded.sampleRate !== rate) {
        x = resample(x, decoded.sampleRate, rate);
        resampled++;
        sourceRates.add(decoded.sampleRate);
        if (x.length === 0) throw new BadFile(`${cand.entry.path}: WAV file has no samples at ${rate} Hz`, 'no-samples');
      }
      if (normalizeClip(x, cfg.normalize, level)) silent++;
      for (let i = 0; i < x.length; i++) {
        if (Math.abs(x[i]!) > 1) {
          over++;
          break;
        }
      }
      total += x.length;
      if (total > MAX_STORE) {
        throw new AudioDataError(`${root}: the clips need more than ${MAX_STORE} samples of memory (1 GiB); set data.limit or lower data.sample_rate`);
      }
      clips.push(x);
      files.push(cand.entry.path);
      if (classNames) labels.push(classId.get(cand.className!)!);
    } catch (err) {
      if (!(err instanceof BadFile)) throw err;
      if (!cfg.skip_bad_files) throw new AudioDataError(err.message);
      skipped++;
      bad[err.kind] = (bad[err.kind] ?? 0) + 1;
      if (!firstSkip) firstSkip = err.message;
    }
    if (seen % progressEvery === 0) ctx.log(`audio data ${from}: read ${seen} of ${candidates.length} files (${clips.length} kept)`);
  }
  if (skipped > 0) {
    const kinds = Object.entries(bad).map(([k, n]) => `${n} ${BAD_KIND_WORDS[k as BadFileKind]}`);
    ctx.log(`audio data ${from}: skipped ${skipped} bad file(s): ${kinds.join(', ')} (first: ${firstSkip})`);
  }
  if (clips.length === 0) throw new AudioDataError(`${from}: no readable WAV files in the ${ctx.split} split`);
  if (resampled > 0) {
    // Once per data set, not per file.
    ctx.log(
      `audio data: resampled ${resampled} of ${clips.length} file(s) to ${rate} Hz (from ${[...sourceRates].sort((a, b) => a - b).join(', ')} Hz) with a Kaiser-windowed sinc filter`,
    );
  }
  if (silent > 0) ctx.log(`audio data: ${silent} silent clip(s) (all zeros) kept as silence`);
  if (over > 0) ctx.log(`audio data: ${over} clip(s) exceed |x| = 1 after ${cfg.normalize} normalization (WAV output will clip them)`);

  // One store, one offset per clip.
  const store = new Float32Array(total);
  const offsets = new Float64Array(clips.length + 1);
  const clipLengths = new Int32Array(clips.length);
  clips.forEach((c, i) => {
    store.set(c, offsets[i]!);
    offsets[i + 1] = offsets[i]! + c.length;
    clipLengths[i] = c.length;
  });
  clips.length = 0;
  const clipAt = (i: number) => store.subarray(offsets[i]!, offsets[i + 1]!);

  // sigma_data: statistics of what the network sees (centred windows of length L, zero padding included).
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < clipLengths.length; i++) {
    const c = clipAt(i);
    const off = placement(c.length, L, 'center', 'center', undefined);
    const seg = c.length >= L ? c.subarray(off, off + L) : c;
    for (let k = 0; k < seg.length; k++) {
      sum += seg[k]!;
      sumSq += seg[k]! * seg[k]!;
    }
  }
  const count = clipLengths.length * L;
  const mean = sum / count;
  const std = Math.sqrt(Math.max(0, sumSq / count - mean * mean));

  const size = clipLengths.length;
  const labelIds = classNames ? Int32Array.from(labels) : undefined;
  const shortClips = clipLengths.reduce((n, l) => n + (l < L ? 1 : 0), 0);
  const rel = relative(process.cwd(), from);
  const description = `audio ${rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : from} (${ctx.split}: ${size} clips at ${rate} Hz -> [${L}, 1])`;
  ctx.log(
    `${description}: ${shortClips} padded, ${size - shortClips} cropped; values mean ${mean.toFixed(4)}, std ${std.toFixed(4)}` +
      (classNames ? `; ${classNames.length} classes` : '; unlabelled'),
  );

  const batch = (indices: readonly number[], rng: Rng): ExampleBatch => {
    const b = indices.length;
    const x = new Float32Array(b * L);
    const y = labelIds ? new Int32Array(b) : undefined;
    for (let j = 0; j < b; j++) {
      const idx = indices[j]!;
      if (!Number.isInteger(idx) || idx < 0 || idx >= size) {
        throw new RangeError(`${description}: batch index ${idx} (position ${j}) is out of range [0, ${size})`);
      }
      const c = clipAt(idx);
      fillWindow(x, j * L, c, L, placement(c.length, L, cfg.crop, cfg.pad, rng));
      if (y) y[j] = labelIds![idx]!;
    }
    const xt = tf.tensor3d(x, [b, L, 1], 'float32');
    return y ? { x: xt, labels: tf.tensor1d(y, 'int32') } : { x: xt };
  };

  return {
    exampleShape: [L, 1],
    size,
    ...(classNames ? { numClasses: classNames.length, classNames } : {}),
    ...(labelIds ? { labelIds } : {}),
    sampleRate: rate,
    files,
    clipLengths,
    skippedFiles: skipped,
    badFiles: bad,
    resampledFiles: resampled,
    mean,
    std,
    description,
    clip: (i: number) => {
      if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`${description}: clip ${i} is out of range [0, ${size})`);
      return clipAt(i);
    },
    batch,
  };
}
