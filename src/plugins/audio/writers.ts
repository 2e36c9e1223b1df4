import { extname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { stftDb, type StftOptions } from './spectrogram.js';
import { writeWav16 } from './wav.js';

/**
 * Audio writers: 16-bit PCM WAV files of generated clips, a PNG grid of their
 * log-magnitude spectrograms, and spectrogram strips of a denoising
 * trajectory. Everything is written atomically (temporary file + rename).
 */

/** Waveforms as plain data: values row-major in `shape` order. */
export interface WaveArray {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

export type WaveLike = tf.Tensor | WaveArray;

async function toPlain(x: WaveLike): Promise<WaveArray> {
  if (x instanceof tf.Tensor) return { data: await x.data(), shape: x.shape };
  return x;
}

/** How dB values become colours: relative to a full-scale sine (comparable across clips), or to each clip's own loudest bin. */
export type DbReference = 'fullscale' | 'max';

export interface SpectrogramImageOptions extends StftOptions {
  /** dB below the reference that maps to the darkest colour (default 80). */
  readonly range?: number;
  readonly reference?: DbReference;
  /** Border in pixels between and around cells (default 2). */
  readonly border?: number;
}

/** Anchors of matplotlib's 'magma' colour map at 0, 1/4, 1/2, 3/4, 1 (linear in between). */
const MAGMA: readonly (readonly [number, number, number])[] = [
  [0, 0, 4],
  [81, 18, 124],
  [183, 55, 121],
  [252, 137, 97],
  [252, 253, 191],
];

function colour(v: number, out: Uint8Array, at: number): void {
  const u = Math.min(1, Math.max(0, Number.isNaN(v) ? 0 : v)) * (MAGMA.length - 1);
  const i = Math.min(MAGMA.length - 2, Math.floor(u));
  const f = u - i;
  const a = MAGMA[i]!;
  const b = MAGMA[i + 1]!;
  for (let c = 0; c < 3; c++) out[at + c] = Math.round(a[c]! + (b[c]! - a[c]!) * f);
}

/** An RGB picture of one clip's spectrogram: time left to right, frequency bottom (0 Hz) to top (Nyquist). */
export interface SpectrogramCell {
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
}

export function spectrogramCell(x: ArrayLike<number>, opts: SpectrogramImageOptions = {}): SpectrogramCell {
  const s = stftDb(x, opts);
  const range = opts.range ?? 80;
  if (!(range > 0)) throw new Error(`spectrogram: range must be > 0 dB, got ${range}`);
  let top = 0;
  if ((opts.reference ?? 'fullscale') === 'max') {
    top = -Infinity;
    for (let i = 0; i < s.db.length; i++) if (s.db[i]! > top) top = s.db[i]!;
  }
  const width = s.frames;
  const height = s.bins;
  const rgb = new Uint8Array(width * height * 3);
  for (let t = 0; t < width; t++) {
    for (let f = 0; f < height; f++) {
      const row = height - 1 - f;
      colour((s.db[t * height + f]! - top + range) / range, rgb, (row * width + t) * 3);
    }
  }
  return { rgb, width, height };
}

/** Lays out rows of equally sized cells with a white border and writes an RGB PNG. */
async function writeCells(rows: readonly (readonly SpectrogramCell[])[], path: string, border: number): Promise<{ width: number; height: number }> {
  if (!Number.isInteger(border) || border < 0 || border > 64) throw new Error(`${path}: border must be an integer 0..64, got ${border}`);
  const first = rows.find((r) => r.length > 0)?.[0];
  if (!first) throw new Error(`${path}: nothing to draw`);
  const { width: w, height: h } = first;
  const cols = Math.max(...rows.map((r) => r.length));
  const width = cols * w + (cols + 1) * border;
  const height = rows.length * h + (rows.length + 1) * border;
  const canvas = new Uint8Array(width * height * 3).fill(255);
  rows.forEach((row, r) =>
    row.forEach((cell, c) => {
      if (cell.width !== w || cell.height !== h) throw new Error(`${path}: cell [${r}][${c}] is ${cell.width}x${cell.height}, cell [0][0] is ${w}x${h}`);
      const y0 = border + r * (h + border);
      const x0 = border + c * (w + border);
      for (let y = 0; y < h; y++) canvas.set(cell.rgb.subarray(y * w * 3, (y + 1) * w * 3), ((y0 + y) * width + x0) * 3);
    }),
  );
  const png = await sharp(canvas, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer();
  writeFileAtomic(path, png);
  return { width, height };
}

/** Splits [B, T, 1] / [B, T] waveforms into B clips. */
function clipsOf(x: WaveArray, path: string): Float32Array[] {
  const s = x.shape;
  const ok = (s.length === 3 && s[2] === 1) || s.length === 2;
  if (!ok) throw new Error(`${path}: audio samples must be [B, T, 1] (or [B, T]), got shape [${s.join(', ')}]`);
  const [b, t] = s as [number, number];
  if (b < 1 || t < 1) throw new Error(`${path}: audio samples need at least one non-empty clip, got shape [${s.join(', ')}]`);
  if (x.data.length !== b * t) throw new Error(`${path}: ${x.data.length} values do not fill shape [${s.join(', ')}]`);
  return Array.from({ length: b }, (_, i) => Float32Array.from({ length: t }, (_, k) => x.data[i * t + k]!));
}

/** The files writeAudioSamples writes for a requested path: `<stem>.png` and `<stem>-<i>.wav`, stem = path without .png / .wav. */
export function samplePaths(path: string, n: number): { png: string; wavs: string[] } {
  const ext = extname(path).toLowerCase();
  const stem = ext === '.png' || ext === '.wav' ? path.slice(0, -ext.length) : path;
  const digits = String(Math.max(0, n - 1)).length;
  return { png: `${stem}.png`, wavs: Array.from({ length: n }, (_, i) => `${stem}-${String(i).padStart(digits, '0')}.wav`) };
}

/**
 * The rate a run's WAVs are written at: its `data.sample_rate`, from the
 * WriteContext that every difflab caller of writeSamples passes. A caller
 * that passes none (plain JavaScript) gets an error rather than WAVs that
 * play at a guessed speed.
 */
export function writeSampleRate(ctx: { readonly data?: { readonly sample_rate?: unknown } } | undefined, path: string): number {
  const rate = ctx?.data?.sample_rate;
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1) {
    const got = ctx === undefined ? 'no context' : `data.sample_rate = ${String(rate)}`;
    throw new Error(`${path}: the audio writer needs the run's data config (writeSamples(x, path, { data, info }) with an integer data.sample_rate), got ${got}`);
  }
  return rate;
}

export interface AudioSampleOptions extends SpectrogramImageOptions {
  readonly sampleRate: number;
  /** Spectrograms per row (default ceil(sqrt(B))). */
  readonly cols?: number;
  /** One path per clip for the WAV files, instead of `<stem>-<i>.wav` (e.g. names that say each clip's class). */
  readonly wavPaths?: readonly string[];
}

export interface WrittenAudio {
  /** The spectrogram grid. */
  readonly png: string;
  readonly wavs: readonly string[];
  readonly width: number;
  readonly height: number;
  /** Samples outside [-1, 1) that the 16-bit WAVs clipped. */
  readonly clipped: number;
}

/** The power-of-two STFT length nearest to a 32 ms window (256 at 8 kHz, 128 at 4 kHz): speech's usual analysis frame. */
export function windowFor(sampleRate: number): number {
  return 2 ** Math.max(2, Math.round(Math.log2(0.032 * sampleRate)));
}

/**
 * Writes a batch of waveforms x [B, T, 1] (diffusion space = sample values)
 * as B 16-bit PCM WAV files `<stem>-<i>.wav` and one PNG grid `<stem>.png`
 * of their spectrograms (dB relative to full scale unless `reference`;
 * a 32 ms window unless `nFft`).
 */
export async function writeAudioSamples(x: WaveLike, path: string, opts: AudioSampleOptions): Promise<WrittenAudio> {
  const clips = clipsOf(await toPlain(x), path);
  const { png, wavs: numbered } = samplePaths(path, clips.length);
  if (opts.wavPaths && opts.wavPaths.length !== clips.length) throw new Error(`${path}: ${opts.wavPaths.length} WAV paths for ${clips.length} clips`);
  const wavs = opts.wavPaths ?? numbered;
  let clipped = 0;
  clips.forEach((c, i) => {
    for (let k = 0; k < c.length; k++) if (c[k]! < -1 || c[k]! >= 1) clipped++;
    writeWav16(wavs[i]!, [c], opts.sampleRate);
  });
  const cols = opts.cols ?? Math.ceil(Math.sqrt(clips.length));
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`${path}: cols must be a positive integer, got ${cols}`);
  const cells = clips.map((c) => spectrogramCell(c, { ...opts, nFft: opts.nFft ?? windowFor(opts.sampleRate) }));
  const rows: SpectrogramCell[][] = [];
  cells.forEach((cell, i) => (rows[Math.floor(i / cols)] ??= []).push(cell));
  const { width, height } = await writeCells(rows, png, opts.border ?? 2);
  return { png, wavs, width, height, clipped };
}

/**
 * Writes the trajectory of one sample as a spectrogram strip PNG: the top
 * row is the noisy state x at each noise level (each relative to its own
 * loudest bin, since x is far louder than full scale at large sigma), the
 * bottom row the denoised estimate D(x; sigma) in dB of full scale. Each
 * frame is [T, 1] (or [1, T, 1]).
 */
export async function writeSpectrogramStrip(
  frames: readonly { x: WaveLike; denoised: WaveLike }[],
  path: string,
  opts: SpectrogramImageOptions = {},
): Promise<{ path: string; width: number; height: number }> {
  if (frames.length === 0) throw new Error(`${path}: a trajectory needs at least one frame`);
  const one = async (f: WaveLike, i: number, which: string): Promise<Float32Array> => {
    const p = await toPlain(f);
    const s = p.shape[0] === 1 && p.shape.length === 3 ? p.shape.slice(1) : p.shape;
    if (!(s.length === 2 && s[1] === 1) && s.length !== 1) throw new Error(`${path}: frame ${i} ${which} must be [T, 1] (or [1, T, 1]), got [${p.shape.join(', ')}]`);
    return Float32Array.from(p.data);
  };
  const noisy: SpectrogramCell[] = [];
  const clean: SpectrogramCell[] = [];
  for (let i = 0; i < frames.length; i++) {
    noisy.push(spectrogramCell(await one(frames[i]!.x, i, 'x'), { ...opts, reference: 'max' }));
    clean.push(spectrogramCell(await one(frames[i]!.denoised, i, 'denoised'), { ...opts, reference: 'fullscale' }));
  }
  const { width, height } = await writeCells([noisy, clean], path, opts.border ?? 2);
  return { path, width, height };
}
