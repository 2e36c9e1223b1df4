import * as tf from '@tensorflow/tfjs';
import { hannWindow } from '../spectrogram.js';

/**
 * A log-mel spectrogram computed with tf ops on batches of waveforms, so
 * that generated samples [B, L, 1] go through the classifier exactly as real
 * clips do, on any backend, without leaving the device.
 *
 * Framing is a reshape: the signal is zero-padded at the end to M * hop
 * samples, viewed as M blocks of `hop`, and frame t is blocks t .. t+r-1
 * side by side (r = nFft / hop, an integer). The DFT is then one matMul of
 * the frames [B*T, nFft] with a windowed DFT matrix [nFft, 2*bins]
 * (cosines | sines: Y = [Re X | -Im X]), and the mel power is a second
 * matMul: (Y o Y) [B*T, 2*bins] times the filterbank stacked twice
 * [2*bins, nMels] adds Re^2 and Im^2 while it applies the filters. Both are
 * plain matMuls, which every tfjs backend (wasm's XNNPACK included) runs
 * fast; a direct DFT costs nFft/log2(nFft) more multiplies than an FFT, which
 * at nFft = 256 is nothing next to the CNN behind it.
 *
 * Scaling matches `stftDb` in ../spectrogram.ts: magnitudes are divided by
 * sum(w)/2, so a full-scale sine on a bin reads 0 dB; mel powers are
 * floored at `floorDb` (silence and zero padding read exactly `floorDb`).
 *
 * Mel scale: HTK's mel(f) = 2595 log10(1 + f / 700) (Young et al., The HTK
 * Book; O'Shaughnessy 1987), triangular filters with peak 1 on nMels + 2
 * points equally spaced in mel between fMin and fMax, on the FFT bin
 * frequencies (librosa's `filters.mel(htk=True, norm=None)`).
 */
export interface LogMelConfig {
  /** Sample rate the filterbank is laid out for (Hz). */
  readonly sampleRate: number;
  /** Window and DFT length (samples). */
  readonly nFft: number;
  /** Samples between frames; nFft must be a multiple of it. */
  readonly hop: number;
  readonly nMels: number;
  readonly fMin: number;
  readonly fMax: number;
  /** Lowest value of the output (dB): mel powers below it are clamped. */
  readonly floorDb: number;
}

export const DEFAULT_LOG_MEL: LogMelConfig = { sampleRate: 8000, nFft: 256, hop: 128, nMels: 40, fMin: 20, fMax: 4000, floorDb: -80 };

export const hzToMel = (f: number): number => 2595 * Math.log10(1 + f / 700);
export const melToHz = (m: number): number => 700 * (10 ** (m / 2595) - 1);

/** Triangular mel filters [bins, nMels] (row-major) on the bins f * sampleRate / nFft, f = 0 .. nFft/2. */
export function melFilterbank(c: Pick<LogMelConfig, 'sampleRate' | 'nFft' | 'nMels' | 'fMin' | 'fMax'>): Float32Array {
  const bins = c.nFft / 2 + 1;
  const pts = Array.from({ length: c.nMels + 2 }, (_, i) => melToHz(hzToMel(c.fMin) + ((hzToMel(c.fMax) - hzToMel(c.fMin)) * i) / (c.nMels + 1)));
  const fb = new Float32Array(bins * c.nMels);
  for (let f = 0; f < bins; f++) {
    const hz = (f * c.sampleRate) / c.nFft;
    for (let m = 0; m < c.nMels; m++) {
      const [lo, mid, hi] = [pts[m]!, pts[m + 1]!, pts[m + 2]!];
      const w = Math.max(0, Math.min((hz - lo) / (mid - lo), (hi - hz) / (hi - mid)));
      fb[f * c.nMels + m] = w;
    }
  }
  return fb;
}

export function checkLogMelConfig(c: LogMelConfig): void {
  const bad = (what: string) => {
    throw new Error(`log-mel front end: ${what}`);
  };
  if (!Number.isInteger(c.nFft) || c.nFft < 4 || c.nFft % 2 !== 0) bad(`nFft must be an even integer >= 4, got ${c.nFft}`);
  if (!Number.isInteger(c.hop) || c.hop < 1 || c.nFft % c.hop !== 0) bad(`hop must divide nFft (${c.nFft}), got ${c.hop}`);
  if (!Number.isInteger(c.nMels) || c.nMels < 1) bad(`nMels must be a positive integer, got ${c.nMels}`);
  if (!(c.fMin >= 0 && c.fMax > c.fMin && c.fMax <= c.sampleRate / 2)) bad(`need 0 <= fMin < fMax <= sampleRate / 2, got [${c.fMin}, ${c.fMax}] at ${c.sampleRate} Hz`);
  const fb = melFilterbank(c);
  const bins = c.nFft / 2 + 1;
  for (let m = 0; m < c.nMels; m++) {
    let s = 0;
    for (let f = 0; f < bins; f++) s += fb[f * c.nMels + m]!;
    // A filter narrower than the bin spacing would see no bin and output the floor forever.
    if (!(s > 0)) bad(`mel filter ${m} covers no DFT bin (nMels ${c.nMels} too many for nFft ${c.nFft}); use fewer mels or a longer nFft`);
  }
}

/** Owns two constant tensors (the DFT matrix and the stacked filterbank): call `dispose`. */
export class LogMelFrontEnd {
  readonly bins: number;
  private readonly dft: tf.Tensor2D;
  private readonly mel2: tf.Tensor2D;
  private readonly ratio: number;

  constructor(readonly config: LogMelConfig = DEFAULT_LOG_MEL) {
    checkLogMelConfig(config);
    const { nFft } = config;
    this.bins = nFft / 2 + 1;
    this.ratio = nFft / config.hop;
    const w = hannWindow(nFft);
    const scale = 2 / w.reduce((a, b) => a + b, 0);
    const dft = new Float32Array(nFft * 2 * this.bins);
    for (let n = 0; n < nFft; n++) {
      for (let k = 0; k < this.bins; k++) {
        // Reduce k*n mod nFft before the trig call: exact phases for large k*n.
        const phase = (2 * Math.PI * ((k * n) % nFft)) / nFft;
        dft[n * 2 * this.bins + k] = w[n]! * scale * Math.cos(phase);
        dft[n * 2 * this.bins + this.bins + k] = w[n]! * scale * Math.sin(phase);
      }
    }
    const fb = melFilterbank(config);
    const mel2 = new Float32Array(2 * this.bins * config.nMels);
    mel2.set(fb, 0);
    mel2.set(fb, this.bins * config.nMels);
    this.dft = tf.tensor2d(dft, [nFft, 2 * this.bins]);
    this.mel2 = tf.tensor2d(mel2, [2 * this.bins, config.nMels]);
  }

  /** Frames of a signal of `length` samples. */
  frames(length: number): number {
    return Math.ceil(length / this.config.hop) - this.ratio + 1;
  }

  /** Waveforms [B, L] or [B, L, 1] -> log-mel power in dB [B, T, nMels], T = frames(L). Call inside tf.tidy. */
  apply(x: tf.Tensor): tf.Tensor3D {
    if (!((x.rank === 2 || (x.rank === 3 && x.shape[2] === 1)) && (x.shape[1] as number) >= this.config.nFft)) {
      throw new Error(`log-mel front end: expected waveforms [B, L] or [B, L, 1] with L >= ${this.config.nFft}, got [${x.shape}]`);
    }
    const [b, len] = x.shape as [number, number];
    const { hop, nMels, floorDb } = this.config;
    const blocks = Math.ceil(len / hop);
    let s: tf.Tensor = tf.reshape(x, [b, len]);
    if (blocks * hop > len) s = tf.pad(s, [[0, 0], [0, blocks * hop - len]]);
    const v = tf.reshape(s, [b, blocks, hop]);
    const t = blocks - this.ratio + 1;
    const parts = Array.from({ length: this.ratio }, (_, j) => tf.slice(v, [0, j, 0], [b, t, hop]));
    const frames = parts.length === 1 ? parts[0]! : tf.concat(parts, 2);
    const y = tf.matMul(tf.reshape(frames, [b * t, this.config.nFft]) as tf.Tensor2D, this.dft);
    const power = tf.matMul(tf.square(y), this.mel2);
    const db = tf.mul(tf.log(tf.maximum(power, 10 ** (floorDb / 10))), 10 / Math.LN10);
    return tf.reshape(db, [b, t, nMels]) as tf.Tensor3D;
  }

  dispose(): void {
    this.dft.dispose();
    this.mel2.dispose();
  }
}
