import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { writeFileAtomic } from '../../core/io/atomic.js';

/**
 * WAV files in and out.
 *
 * Reading: the RIFF/WAVE container is parsed and validated here (chunk walk
 * with RIFF's even-byte padding, `fmt ` before `data`, consistent block
 * alignment, a data chunk that fits in the file), then the samples are
 * converted by `wav-decoder` from a canonical copy holding only a 16-byte
 * `fmt ` chunk and the `data` chunk. The canonical copy is what lets
 * wav-decoder 1.3.0 read files it would otherwise misread or reject:
 * WAVE_FORMAT_EXTENSIBLE (0xFFFE, the usual header of 24-bit and
 * multi-channel files), odd-sized chunks before `data` (it ignores the pad
 * byte), and files whose `data` chunk is not the first one after `fmt `.
 * Truncated files are errors instead of being silently shortened as
 * wav-decoder does.
 *
 * Integers are scaled by 2^-(bits-1) (wav-decoder's `symmetric` mode; the
 * convention of libsndfile and torchaudio): int16 v reads as v / 32768.
 * Float files are read as stored.
 *
 * Writing: 16-bit PCM mono or interleaved multi-channel, atomically.
 */

/** A bad WAV file: one line, naming the file. `kind` says which kind of bad. */
export class WavError extends Error {
  override readonly name = 'WavError';
  constructor(
    message: string,
    readonly kind: WavProblem,
  ) {
    super(message);
  }
}

/** The kinds of bad file the data loader counts separately. */
export type WavProblem = 'not-wav' | 'truncated' | 'no-samples' | 'unsupported' | 'corrupt' | 'unreadable';

export type WavEncoding = 'pcm' | 'float';

export interface WavInfo {
  readonly encoding: WavEncoding;
  readonly bitsPerSample: number;
  readonly channels: number;
  readonly sampleRate: number;
  /** Sample frames (samples per channel). */
  readonly frames: number;
  /** Byte offset and length of the sample data in the file. */
  readonly dataOffset: number;
  readonly dataBytes: number;
  /** The fmt chunk's format tag (0x0001 PCM, 0x0003 float, 0xFFFE extensible). */
  readonly formatTag: number;
}

export interface DecodedWav extends WavInfo {
  /** One Float32Array of `frames` samples per channel. */
  readonly channelData: Float32Array[];
}

interface WavDecoderModule {
  decode: {
    sync(buffer: ArrayBuffer, opts?: { symmetric?: boolean }): { sampleRate: number; numberOfChannels: number; length: number; channelData: Float32Array[] };
  };
}

// wav-decoder is CommonJS without type declarations: load it through require with a local type.
const wavDecoder = createRequire(import.meta.url)('wav-decoder') as WavDecoderModule;

const FORMAT_NAMES: Readonly<Record<number, string>> = {
  0x0002: 'MS ADPCM',
  0x0006: 'A-law',
  0x0007: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MP3',
};

/** The 14 bytes that follow the 2-byte format code in a KSDATAFORMAT_SUBTYPE_* GUID (PCM, IEEE float). */
const SUBTYPE_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

function fourcc(b: Uint8Array, off: number): string {
  return String.fromCharCode(b[off]!, b[off + 1]!, b[off + 2]!, b[off + 3]!);
}

function printable(tag: string): string {
  return /^[\x20-\x7e]{4}$/.test(tag) ? `'${tag}'` : `bytes ${Array.from(tag, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ')}`;
}

/**
 * Parses and validates the header of a WAV file held in `bytes`. Throws a
 * one-line WavError naming `file` for anything that is not a readable
 * PCM (8/16/24/32-bit) or float (32/64-bit) RIFF/WAVE file with samples.
 */
export function parseWavHeader(bytes: Uint8Array, file: string): WavInfo {
  const n = bytes.length;
  if (n < 12) {
    const riffPrefix = n > 0 && 'RIFF'.startsWith(String.fromCharCode(...bytes.subarray(0, Math.min(4, n))));
    if (n === 0) throw new WavError(`${file}: not a RIFF/WAVE file (empty file)`, 'not-wav');
    if (riffPrefix) throw new WavError(`${file}: truncated WAV file (${n} bytes, shorter than the 12-byte RIFF header)`, 'truncated');
    throw new WavError(`${file}: not a RIFF/WAVE file (${n} bytes)`, 'not-wav');
  }
  const head = fourcc(bytes, 0);
  if (head === 'RIFX') throw new WavError(`${file}: unsupported WAV encoding (big-endian RIFX)`, 'unsupported');
  if (head === 'RF64') throw new WavError(`${file}: unsupported WAV encoding (RF64, 64-bit sizes)`, 'unsupported');
  if (head !== 'RIFF' || fourcc(bytes, 8) !== 'WAVE') {
    throw new WavError(`${file}: not a RIFF/WAVE file (starts with ${printable(head)}${head === 'RIFF' ? `, form ${printable(fourcc(bytes, 8))}` : ''})`, 'not-wav');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 12;
  let fmt: Omit<WavInfo, 'frames' | 'dataOffset' | 'dataBytes'> | undefined;
  for (;;) {
    if (off + 8 > n) {
      throw new WavError(
        fmt ? `${file}: truncated WAV file (no 'data' chunk in ${n} bytes)` : `${file}: truncated WAV file (no 'fmt ' chunk in ${n} bytes)`,
        'truncated',
      );
    }
    const id = fourcc(bytes, off);
    const size = view.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16) throw new WavError(`${file}: corrupt WAV file ('fmt ' chunk of ${size} bytes, needs 16)`, 'corrupt');
      if (body + 16 > n) throw new WavError(`${file}: truncated WAV file (ends inside the 'fmt ' chunk)`, 'truncated');
      fmt = parseFmt(view, bytes, body, size, n, file);
    } else if (id === 'data') {
      if (!fmt) throw new WavError(`${file}: corrupt WAV file ('data' chunk before the 'fmt ' chunk)`, 'corrupt');
      const available = n - body;
      if (size > available) {
        throw new WavError(`${file}: truncated WAV file ('data' chunk declares ${size} bytes, ${available} present)`, 'truncated');
      }
      const blockAlign = (fmt.channels * fmt.bitsPerSample) / 8;
      const frames = Math.floor(size / blockAlign);
      if (frames === 0) throw new WavError(`${file}: WAV file has no samples ('data' chunk of ${size} bytes)`, 'no-samples');
      return { ...fmt, frames, dataOffset: body, dataBytes: frames * blockAlign };
    }
    // RIFF chunks are padded to an even number of bytes (the pad byte is not counted in `size`).
    off = body + size + (size & 1);
  }
}

function parseFmt(view: DataView, bytes: Uint8Array, body: number, size: number, n: number, file: string): Omit<WavInfo, 'frames' | 'dataOffset' | 'dataBytes'> {
  const formatTag = view.getUint16(body, true);
  const channels = view.getUint16(body + 2, true);
  const sampleRate = view.getUint32(body + 4, true);
  const blockAlign = view.getUint16(body + 12, true);
  const bitsPerSample = view.getUint16(body + 14, true);
  let code = formatTag;
  if (formatTag === 0xfffe) {
    // WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, then the SubFormat GUID at byte 24.
    if (size < 40) throw new WavError(`${file}: corrupt WAV file (extensible 'fmt ' chunk of ${size} bytes, needs 40)`, 'corrupt');
    if (body + 40 > n) throw new WavError(`${file}: truncated WAV file (ends inside the 'fmt ' chunk)`, 'truncated');
    code = view.getUint16(body + 24, true);
    const tailOk = SUBTYPE_TAIL.every((v, i) => bytes[body + 26 + i] === v);
    if (!tailOk) throw new WavError(`${file}: unsupported WAV encoding (extensible format with a non-standard SubFormat GUID)`, 'unsupported');
  }
  let encoding: WavEncoding;
  if (code === 0x0001) encoding = 'pcm';
  else if (code === 0x0003) encoding = 'float';
  else {
    const name = FORMAT_NAMES[code];
    throw new WavError(`${file}: unsupported WAV encoding (format 0x${code.toString(16).padStart(4, '0')}${name ? ` ${name}` : ''}; only PCM and IEEE float are read)`, 'unsupported');
  }
  const okBits = encoding === 'pcm' ? [8, 16, 24, 32] : [32, 64];
  if (!okBits.includes(bitsPerSample)) {
    throw new WavError(`${file}: unsupported WAV encoding (${bitsPerSample}-bit ${encoding === 'pcm' ? 'PCM' : 'float'}; supported: ${okBits.join(', ')})`, 'unsupported');
  }
  if (channels === 0) throw new WavError(`${file}: corrupt WAV file (0 channels)`, 'corrupt');
  if (sampleRate === 0) throw new WavError(`${file}: corrupt WAV file (sample rate 0)`, 'corrupt');
  if (blockAlign !== (channels * bitsPerSample) / 8) {
    throw new WavError(`${file}: corrupt WAV file (block align ${blockAlign}, expected ${(channels * bitsPerSample) / 8} for ${channels} x ${bitsPerSample}-bit)`, 'corrupt');
  }
  return { encoding, bitsPerSample, channels, sampleRate, formatTag };
}

/** The canonical RIFF/WAVE bytes wav-decoder is given: a plain 16-byte 'fmt ' chunk, then 'data'. */
function canonicalWav(bytes: Uint8Array, info: WavInfo): ArrayBuffer {
  const out = new ArrayBuffer(44 + info.dataBytes);
  const v = new DataView(out);
  const u = new Uint8Array(out);
  u.set([0x52, 0x49, 0x46, 0x46], 0); // RIFF
  v.setUint32(4, 36 + info.dataBytes, true);
  u.set([0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20], 8); // WAVEfmt
  v.setUint32(16, 16, true);
  v.setUint16(20, info.encoding === 'pcm' ? 1 : 3, true);
  v.setUint16(22, info.channels, true);
  v.setUint32(24, info.sampleRate, true);
  const blockAlign = (info.channels * info.bitsPerSample) / 8;
  v.setUint32(28, info.sampleRate * blockAlign, true);
  v.setUint16(32, blockAlign, true);
  v.setUint16(34, info.bitsPerSample, true);
  u.set([0x64, 0x61, 0x74, 0x61], 36); // data
  v.setUint32(40, info.dataBytes, true);
  u.set(bytes.subarray(info.dataOffset, info.dataOffset + info.dataBytes), 44);
  return out;
}

/** Decodes WAV bytes (validated by parseWavHeader) to float32 channels. Throws a one-line WavError naming `file`. */
export function decodeWavBytes(bytes: Uint8Array, file: string): DecodedWav {
  const info = parseWavHeader(bytes, file);
  let decoded: ReturnType<WavDecoderModule['decode']['sync']>;
  try {
    decoded = wavDecoder.decode.sync(canonicalWav(bytes, info), { symmetric: true });
  } catch (err) {
    throw new WavError(`${file}: cannot decode WAV samples (${err instanceof Error ? err.message : String(err)})`, 'corrupt');
  }
  if (decoded.length !== info.frames || decoded.numberOfChannels !== info.channels) {
    throw new WavError(`${file}: cannot decode WAV samples (decoder returned ${decoded.numberOfChannels} x ${decoded.length}, expected ${info.channels} x ${info.frames})`, 'corrupt');
  }
  const channelData = decoded.channelData;
  if (info.encoding === 'pcm' && info.bitsPerSample === 24) {
    // wav-decoder 1.3.0 sign-extends 24-bit samples with `xx > 0x800000` instead of `>=`, so the most
    // negative value -2^23 reads as +2^23 / 2^23 = +1.0. No other 24-bit code reads as exactly 1.0.
    for (const ch of channelData) for (let i = 0; i < ch.length; i++) if (ch[i] === 1) ch[i] = -1;
  }
  if (info.encoding === 'float') {
    for (let c = 0; c < channelData.length; c++) {
      const ch = channelData[c]!;
      for (let i = 0; i < ch.length; i++) {
        if (!Number.isFinite(ch[i]!)) {
          throw new WavError(`${file}: corrupt WAV file (non-finite sample ${ch[i]} at frame ${i}, channel ${c})`, 'corrupt');
        }
      }
    }
  }
  return { ...info, channelData };
}

/** Reads and decodes a WAV file. Throws a one-line WavError naming the file. */
export function readWavFile(file: string): DecodedWav {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WavError(`${file}: cannot read (${code ?? (err instanceof Error ? err.message : String(err))})`, 'unreadable');
  }
  return decodeWavBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
}

/**
 * Encodes channels of float samples as a 16-bit PCM WAV file (canonical
 * 44-byte header, interleaved frames). Values are clamped to [-1, 1) and
 * scaled by 32768 (the inverse of the reader's v / 32768), rounded to the
 * nearest integer; NaN writes 0.
 */
export function encodeWav16(channels: readonly ArrayLike<number>[], sampleRate: number): Uint8Array {
  if (channels.length < 1 || channels.length > 65535) throw new Error(`encodeWav16: needs 1..65535 channels, got ${channels.length}`);
  if (!Number.isInteger(sampleRate) || sampleRate < 1 || sampleRate > 0xffffffff) throw new Error(`encodeWav16: sample rate must be a positive integer, got ${sampleRate}`);
  const frames = channels[0]!.length;
  if (channels.some((c) => c.length !== frames)) throw new Error('encodeWav16: channels differ in length');
  const nch = channels.length;
  const dataBytes = frames * nch * 2;
  if (36 + dataBytes > 0xffffffff) throw new Error(`encodeWav16: ${frames} frames do not fit a RIFF file (4 GiB)`);
  const out = new Uint8Array(44 + dataBytes);
  const v = new DataView(out.buffer);
  out.set([0x52, 0x49, 0x46, 0x46], 0);
  v.setUint32(4, 36 + dataBytes, true);
  out.set([0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20], 8);
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, nch, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * nch * 2, true);
  v.setUint16(32, nch * 2, true);
  v.setUint16(34, 16, true);
  out.set([0x64, 0x61, 0x74, 0x61], 36);
  v.setUint32(40, dataBytes, true);
  let off = 44;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < nch; c++) {
      const x = channels[c]![i]!;
      const s = Number.isNaN(x) ? 0 : Math.max(-32768, Math.min(32767, Math.round(x * 32768)));
      v.setInt16(off, s, true);
      off += 2;
    }
  }
  return out;
}

/** Writes a 16-bit PCM WAV file atomically (temporary file + rename). */
export function writeWav16(path: string, channels: readonly ArrayLike<number>[], sampleRate: number): void {
  writeFileAtomic(path, encodeWav16(channels, sampleRate));
}
