/**
 * Band-limited sample-rate conversion by windowed-sinc interpolation
 * (J. O. Smith, "Digital Audio Resampling Home Page",
 * https://ccrma.stanford.edu/~jos/resample/).
 *
 * Output sample n sits at input time t_n = n * from / to. With the cutoff
 * fc = rolloff * min(1, to / from) (in cycles per input sample, times 2) the
 * ideal low-pass interpolator is
 *
 *   y[n] = sum_k x[k] h(t_n - k),   h(tau) = fc sinc(fc tau) w(tau / W),
 *
 * where sinc(u) = sin(pi u) / (pi u) and w is a Kaiser window of half-width
 * W = zeros / fc input samples (`zeros` zero crossings of the sinc on each
 * side). Down-sampling scales the sinc by fc, which both lowers the cutoff
 * below the new Nyquist frequency (anti-aliasing) and keeps unit DC gain.
 * The defaults are resampy's `kaiser_best` filter (McFee,
 * https://github.com/bmcfee/resampy): 64 zero crossings, rolloff 0.9475937,
 * Kaiser beta 14.769656 (about 140 dB of stop-band attenuation).
 *
 * With from / to reduced to M / L, t_n = q + p / L with only L distinct
 * fractional phases p, so the kernel is tabulated once per phase
 * (polyphase). Samples outside the input are zero.
 */

export interface ResampleOptions {
  /** Zero crossings of the sinc on each side of the kernel (default 64). */
  readonly zeros?: number;
  /** Cutoff as a fraction of the lower Nyquist frequency (default 0.9475937). */
  readonly rolloff?: number;
  /** Kaiser window shape (default 14.769656). */
  readonly beta?: number;
}

export const KAISER_BEST = { zeros: 64, rolloff: 0.9475937167399596, beta: 14.769656459379492 } as const;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The zeroth-order modified Bessel function of the first kind, I0(x), by its power series. */
export function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 500; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function sinc(u: number): number {
  if (u === 0) return 1;
  const a = Math.PI * u;
  return Math.sin(a) / a;
}

/** Output length of a conversion: ceil(n * to / from) (torchaudio's and resampy's choice). */
export function resampledLength(n: number, from: number, to: number): number {
  return Math.ceil((n * to) / from);
}

/** Largest polyphase table kept (phases x taps); beyond it, taps are computed per output sample. */
const MAX_TABLE = 1 << 22;

/**
 * Resamples `x` from `from` Hz to `to` Hz (positive integers). Returns a new
 * array of resampledLength(x.length, from, to) samples; equal rates return a copy.
 */
export function resample(x: Float32Array, from: number, to: number, options: ResampleOptions = {}): Float32Array {
  for (const [name, v] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`resample: ${name} rate must be a positive integer, got ${v}`);
  }
  if (from === to) return Float32Array.from(x);
  const zeros = options.zeros ?? KAISER_BEST.zeros;
  const rolloff = options.rolloff ?? KAISER_BEST.rolloff;
  const beta = options.beta ?? KAISER_BEST.beta;
  if (!Number.isInteger(zeros) || zeros < 1) throw new Error(`resample: zeros must be a positive integer, got ${zeros}`);
  if (!(rolloff > 0 && rolloff <= 1)) throw new Error(`resample: rolloff must be in (0, 1], got ${rolloff}`);
  if (!(beta >= 0)) throw new Error(`resample: beta must be >= 0, got ${beta}`);

  const g = gcd(from, to);
  const L = to / g; // output steps per M input steps
  const M = from / g;
  const fc = rolloff * Math.min(1, to / from);
  const halfWidth = zeros / fc; // input samples
  const i0Beta = besselI0(beta);
  const kernel = (tau: number): number => {
    const u = tau / halfWidth;
    if (u <= -1 || u >= 1) return 0;
    return fc * sinc(fc * tau) * (besselI0(beta * Math.sqrt(1 - u * u)) / i0Beta);
  };
  // Taps k = q + j for j in [-K, K]: covers |p/L - j| < halfWidth for every phase p/L in [0, 1).
  const K = Math.ceil(halfWidth) + 1;
  const taps = 2 * K + 1;
  const nOut = resampledLength(x.length, from, to);
  const out = new Float32Array(nOut);
  const n = x.length;

  const table = L * taps <= MAX_TABLE ? new Float64Array(L * taps) : undefined;
  if (table) {
    for (let p = 0; p < L; p++) for (let j = -K; j <= K; j++) table[p * taps + j + K] = kernel(p / L - j);
  }
  const row = table ? undefined : new Float64Array(taps);
  for (let i = 0; i < nOut; i++) {
    // Exact integer arithmetic for the position: i * M = q * L + p.
    const num = i * M;
    const q = Math.floor(num / L);
    const p = num - q * L;
    let h: Float64Array;
    let base: number;
    if (table) {
      h = table;
      base = p * taps;
    } else {
      for (let j = -K; j <= K; j++) row![j + K] = kernel(p / L - j);
      h = row!;
      base = 0;
    }
    const jLo = Math.max(-K, -q);
    const jHi = Math.min(K, n - 1 - q);
    let acc = 0;
    for (let j = jLo; j <= jHi; j++) acc += x[q + j]! * h[base + j + K]!;
    out[i] = acc;
  }
  return out;
}
