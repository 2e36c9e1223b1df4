/**
 * Short-time Fourier transform for pictures of audio: a radix-2 FFT, the
 * real-input FFT built on it, and log-magnitude spectrograms.
 */

function checkPow2(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0) throw new Error(`${what} must be a power of two, got ${n}`);
}

/** Twiddle factors and bit-reversal permutation of an n-point FFT, cached by n. */
const plans = new Map<number, { cos: Float64Array; sin: Float64Array; rev: Uint32Array }>();

function plan(n: number) {
  let p = plans.get(n);
  if (!p) {
    const cos = new Float64Array(n / 2);
    const sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      cos[k] = Math.cos((2 * Math.PI * k) / n);
      sin[k] = -Math.sin((2 * Math.PI * k) / n);
    }
    const rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0, v = i; b < bits; b++, v >>= 1) r = (r << 1) | (v & 1);
      rev[i] = r;
    }
    p = { cos, sin, rev };
    plans.set(n, p);
  }
  return p;
}

/**
 * In-place iterative radix-2 decimation-in-time FFT (Cooley & Tukey 1965):
 * X[k] = sum_n x[n] e^{-2 pi i k n / N}. `re`, `im` have length N, a power of two.
 */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  checkPow2(n, 'fft: length');
  if (im.length !== n) throw new Error(`fft: re has ${n} values, im ${im.length}`);
  const { cos, sin, rev } = plan(n);
  for (let i = 0; i < n; i++) {
    const j = rev[i]!;
    if (j > i) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const step = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * step]!;
        const wi = sin[k * step]!;
        const a = start + k;
        const b = a + half;
        const tr = re[b]! * wr - im[b]! * wi;
        const ti = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
}

/**
 * FFT of N real samples through one N/2-point complex FFT: pack
 * z[m] = x[2m] + i x[2m+1], transform, and untangle the even and odd halves,
 *   E[k] = (Z[k] + conj Z[N/2-k]) / 2,  O[k] = (Z[k] - conj Z[N/2-k]) / (2i),
 *   X[k] = E[k] + e^{-2 pi i k / N} O[k],  k = 0..N/2.
 * Returns the N/2 + 1 non-negative-frequency bins (the rest are conjugates).
 */
export function rfft(x: ArrayLike<number>): { re: Float64Array; im: Float64Array } {
  const n = x.length;
  checkPow2(n, 'rfft: length');
  if (n < 2) throw new Error('rfft: length must be at least 2');
  const h = n / 2;
  const zr = new Float64Array(h);
  const zi = new Float64Array(h);
  for (let m = 0; m < h; m++) {
    zr[m] = x[2 * m]!;
    zi[m] = x[2 * m + 1]!;
  }
  if (h > 1) fft(zr, zi);
  const re = new Float64Array(h + 1);
  const im = new Float64Array(h + 1);
  for (let k = 0; k <= h; k++) {
    const a = k % h;
    const b = (h - k) % h;
    const er = (zr[a]! + zr[b]!) / 2;
    const ei = (zi[a]! - zi[b]!) / 2;
    const or = (zi[a]! + zi[b]!) / 2;
    const oi = -(zr[a]! - zr[b]!) / 2;
    const wr = Math.cos((2 * Math.PI * k) / n);
    const wi = -Math.sin((2 * Math.PI * k) / n);
    re[k] = er + wr * or - wi * oi;
    im[k] = ei + wr * oi + wi * or;
  }
  return { re, im };
}

/** The periodic Hann window of length n (the STFT convention of librosa and torch.stft). */
export function hannWindow(n: number): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
  return w;
}

export interface StftOptions {
  /** Window and FFT length, a power of two (default 256: 32 ms at 8 kHz). */
  readonly nFft?: number;
  /** Samples between frames (default nFft / 4). */
  readonly hop?: number;
}

export interface Spectrogram {
  /** Magnitudes in dB, frame-major: db[t * bins + f]. */
  readonly db: Float32Array;
  readonly frames: number;
  /** nFft / 2 + 1 frequency bins, bin f at f * sampleRate / nFft Hz. */
  readonly bins: number;
  readonly nFft: number;
  readonly hop: number;
}

/**
 * Log-magnitude STFT: Hann-windowed frames of nFft samples every `hop`
 * samples (frames centred on t * hop, the signal zero-padded at both ends, as
 * librosa's `center=True`), magnitudes in dB relative to a full-scale sine:
 * 20 log10(|X| / (sum(w) / 2)), floored at -200 dB. A sine of amplitude 1
 * exactly on a bin reads 0 dB there.
 */
export function stftDb(x: ArrayLike<number>, options: StftOptions = {}): Spectrogram {
  const nFft = options.nFft ?? 256;
  checkPow2(nFft, 'stft: nFft');
  if (nFft < 4) throw new Error(`stft: nFft must be at least 4, got ${nFft}`);
  const hop = options.hop ?? nFft / 4;
  if (!Number.isInteger(hop) || hop < 1) throw new Error(`stft: hop must be a positive integer, got ${hop}`);
  const n = x.length;
  if (n < 1) throw new Error('stft: empty signal');
  const w = hannWindow(nFft);
  const ref = w.reduce((a, b) => a + b, 0) / 2;
  const frames = Math.floor(n / hop) + 1;
  const bins = nFft / 2 + 1;
  const db = new Float32Array(frames * bins);
  const frame = new Float64Array(nFft);
  const floor = 1e-10;
  for (let t = 0; t < frames; t++) {
    const start = t * hop - nFft / 2;
    for (let i = 0; i < nFft; i++) {
      const j = start + i;
      frame[i] = j >= 0 && j < n ? x[j]! * w[i]! : 0;
    }
    const { re, im } = rfft(frame);
    for (let f = 0; f < bins; f++) {
      const mag = Math.hypot(re[f]!, im[f]!) / ref;
      db[t * bins + f] = 20 * Math.log10(Math.max(mag, floor));
    }
  }
  return { db, frames, bins, nFft, hop };
}
