import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/core/backend/select.js';
import { formatIssues } from '../src/core/config/load.js';
import type { DataContext, Split } from '../src/core/plugin.js';
import { Rng } from '../src/core/random.js';
import {
  audioDataSchema,
  compilePattern,
  decodeWavBytes,
  KAISER_BEST,
  openAudioData,
  readWavFile,
  resample,
  resampledLength,
  sortClassNames,
  type AudioDataConfigInput,
  type AudioDataSource,
} from '../src/plugins/audio/index.js';
import { sineCodes16, wavBytes } from './fixtures/audio/wav-bytes.js';
import { expectNoTensorLeak } from './helpers/tensors.js';

const FSDD = '../shared/datasets/fsdd/recordings';
const haveFsdd = existsSync(FSDD);
if (!haveFsdd) console.warn(`skipping the real-FSDD audio data tests: ${FSDD} is absent`);

beforeAll(async () => {
  await useBackend('wasm');
});

const tmp = () => mkdtempSync(join(tmpdir(), 'difflab-audio-data-'));

function ctx(split: Split = 'train', logs: string[] = []): DataContext {
  return { split, baseDir: process.cwd(), rng: new Rng(0), log: (m) => logs.push(m) };
}

function cfg(input: AudioDataConfigInput) {
  const r = audioDataSchema.safeParse(input);
  if (!r.success) throw new Error(formatIssues('test', r.error));
  return r.data;
}

function write(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, bytes);
  return p;
}

const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));

describe('WAV decoding', () => {
  it('16-bit PCM reads int / 32768 exactly', () => {
    const codes = [0, 1, -1, 32767, -32768, 12345, -20000];
    const w = decodeWavBytes(wavBytes({ bits: 16, rate: 8000, channels: [codes] }), 'a.wav');
    expect(w).toMatchObject({ encoding: 'pcm', bitsPerSample: 16, channels: 1, sampleRate: 8000, frames: codes.length });
    expect(Array.from(w.channelData[0]!)).toEqual(f32(codes.map((v) => v / 32768)));
  });

  it('24-bit PCM reads int / 2^23 exactly, the most negative code included (wav-decoder reads it as +1)', () => {
    const codes = [0, 1, -1, 8388607, -8388608, 1234567, -7654321];
    const w = decodeWavBytes(wavBytes({ bits: 24, rate: 16000, channels: [codes] }), 'b.wav');
    expect(Array.from(w.channelData[0]!)).toEqual(f32(codes.map((v) => v / 8388608)));
    expect(w.channelData[0]![4]).toBe(-1);
  });

  it('32-bit PCM reads int / 2^31 (float32-rounded)', () => {
    const codes = [0, 1, -1, 2147483647, -2147483648, 123456789, -987654321];
    const w = decodeWavBytes(wavBytes({ bits: 32, rate: 8000, channels: [codes] }), 'c.wav');
    expect(Array.from(w.channelData[0]!)).toEqual(f32(codes.map((v) => v / 2147483648)));
  });

  it('32-bit float reads the stored values, also beyond [-1, 1]', () => {
    const values = f32([0, 0.5, -0.25, 1.5, -1e-3, 0.1]);
    const w = decodeWavBytes(wavBytes({ format: 3, bits: 32, rate: 8000, channels: [values] }), 'd.wav');
    expect(w.encoding).toBe('float');
    expect(Array.from(w.channelData[0]!)).toEqual(values);
  });

  it('stereo and WAVE_FORMAT_EXTENSIBLE headers, with odd-sized chunks before data', () => {
    const left = [100, -200, 300, -32768];
    const right = [-5, 6, -7, 32767];
    const odd = { id: 'LIST', bytes: Uint8Array.from([1, 2, 3, 4, 5]) };
    const w = decodeWavBytes(wavBytes({ bits: 16, rate: 44100, channels: [left, right], extraChunks: [odd] }), 's.wav');
    expect(w.channels).toBe(2);
    expect(Array.from(w.channelData[0]!)).toEqual(f32(left.map((v) => v / 32768)));
    expect(Array.from(w.channelData[1]!)).toEqual(f32(right.map((v) => v / 32768)));
    const ext = decodeWavBytes(wavBytes({ extensible: true, bits: 24, rate: 48000, channels: [[1, -8388608], [8388607, 0]], extraChunks: [odd] }), 'e.wav');
    expect(ext.formatTag).toBe(0xfffe);
    expect(Array.from(ext.channelData[0]!)).toEqual(f32([1 / 8388608, -1]));
    expect(Array.from(ext.channelData[1]!)).toEqual(f32([8388607 / 8388608, 0]));
    const extFloat = decodeWavBytes(wavBytes({ extensible: true, format: 3, bits: 32, rate: 8000, channels: [[0.25, -0.75]] }), 'f.wav');
    expect(Array.from(extFloat.channelData[0]!)).toEqual([0.25, -0.75]);
  });

  it('every kind of bad file is a one-line error naming the file', () => {
    const good = wavBytes({ bits: 16, rate: 8000, channels: [[1, 2, 3, 4]] });
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty.wav', new Uint8Array(0), /not a RIFF\/WAVE file \(empty file\)/],
      ['text.wav', new TextEncoder().encode('hello, this is not audio at all'), /not a RIFF\/WAVE file \(starts with 'hell'\)/],
      ['avi.wav', Uint8Array.from([...good.subarray(0, 8), ...new TextEncoder().encode('AVI '), ...good.subarray(12)]), /not a RIFF\/WAVE file \(starts with 'RIFF', form 'AVI '\)/],
      ['short.wav', good.subarray(0, 6), /truncated WAV file \(6 bytes/],
      ['cut-header.wav', good.subarray(0, 30), /truncated WAV file \(ends inside the 'fmt ' chunk\)/],
      ['cut-data.wav', good.subarray(0, good.length - 3), /truncated WAV file \('data' chunk declares 8 bytes, 5 present\)/],
      ['nodata.wav', good.subarray(0, 36), /truncated WAV file \(no 'data' chunk in 36 bytes\)/],
      ['zero.wav', wavBytes({ bits: 16, rate: 8000, channels: [[]] }), /has no samples/],
      ['adpcm.wav', wavBytes({ format: 2, bits: 16, rate: 8000, channels: [[1, 2]] }), /unsupported WAV encoding \(format 0x0002 MS ADPCM/],
      ['mulaw.wav', wavBytes({ format: 7, bits: 8, rate: 8000, channels: [[1, 2]] }), /unsupported WAV encoding \(format 0x0007 mu-law/],
      ['f16.wav', wavBytes({ format: 3, bits: 16, rate: 8000, channels: [[1, 2]] }), /unsupported WAV encoding \(16-bit float/],
      ['datafirst.wav', wavBytes({ bits: 16, rate: 8000, channels: [[1, 2]], dataFirst: true }), /corrupt WAV file \('data' chunk before the 'fmt ' chunk\)/],
      ['nan.wav', wavBytes({ format: 3, bits: 32, rate: 8000, channels: [[0, Number.NaN]] }), /non-finite sample NaN at frame 1/],
    ];
    for (const [name, bytes, re] of cases) {
      let msg = '';
      try {
        decodeWavBytes(bytes, `/x/${name}`);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg, name).toMatch(new RegExp(`^/x/${name.replace('.', '\\.')}: `));
      expect(msg, name).toMatch(re);
      expect(msg.includes('\n'), name).toBe(false);
    }
  });

  it('readWavFile names a missing file', () => {
    expect(() => readWavFile('/nonexistent/a.wav')).toThrow(/^\/nonexistent\/a\.wav: cannot read \(ENOENT\)$/);
  });
});

describe('resampling', () => {
  /** Max |y - A sin(2 pi f t)| over output samples at least `margin` input samples from either end. */
  function sineError(y: Float32Array, freq: number, rate: number, amplitude: number, margin: number): number {
    let err = 0;
    for (let i = margin; i < y.length - margin; i++) err = Math.max(err, Math.abs(y[i]! - amplitude * Math.sin((2 * Math.PI * freq * i) / rate)));
    return err;
  }
  const sine = (n: number, freq: number, rate: number, a: number) => Float32Array.from({ length: n }, (_, i) => a * Math.sin((2 * Math.PI * freq * i) / rate));

  it('16 kHz -> 8 kHz keeps a tone below the new Nyquist frequency (frequency and amplitude)', () => {
    for (const freq of [440, 1000, 3000]) {
      const y = resample(sine(16000, freq, 16000, 0.5), 16000, 8000);
      expect(y.length).toBe(8000);
      expect(sineError(y, freq, 8000, 0.5, 200), `${freq} Hz`).toBeLessThan(2e-3);
    }
  });

  it('16 kHz -> 8 kHz removes a tone above the new Nyquist frequency (no aliasing)', () => {
    const y = resample(sine(16000, 6000, 16000, 0.5), 16000, 8000);
    // Without the low-pass filter, 6 kHz would alias to a 2 kHz tone of amplitude 0.5.
    expect(sineError(y, 0, 8000, 0, 200)).toBeLessThan(1e-4);
  });

  it('8 kHz -> 16 kHz and a non-integer ratio (22050 -> 8000) keep a tone', () => {
    const up = resample(sine(8000, 1000, 8000, 0.8), 8000, 16000);
    expect(up.length).toBe(16000);
    expect(sineError(up, 1000, 16000, 0.8, 400)).toBeLessThan(2e-3);
    const odd = resample(sine(22050, 700, 22050, 0.3), 22050, 8000);
    expect(odd.length).toBe(resampledLength(22050, 22050, 8000));
    expect(sineError(odd, 700, 8000, 0.3, 200)).toBeLessThan(2e-3);
  });

  it('equal rates copy; bad rates are errors', () => {
    const x = Float32Array.from([1, 2, 3]);
    const y = resample(x, 8000, 8000);
    expect(Array.from(y)).toEqual([1, 2, 3]);
    expect(y).not.toBe(x);
    expect(() => resample(x, 0, 8000)).toThrow('resample: from rate must be a positive integer, got 0');
    expect(KAISER_BEST.zeros).toBe(64);
  });
});

/** A folder of FSDD-style names: {digit}_{speaker}_{index}.wav with short 16-bit clips whose first sample encodes the file. */
function fsddLike(dir: string, digits: number[], speakers: string[], indices: number[], frames = 12): string[] {
  const names: string[] = [];
  for (const d of digits) {
    for (const [s, speaker] of speakers.entries()) {
      for (const i of indices) {
        const codes = Array.from({ length: frames }, (_, k) => (k === 0 ? d * 1000 + s * 100 + i : 50));
        const name = `${d}_${speaker}_${i}.wav`;
        write(dir, name, wavBytes({ bits: 16, rate: 8000, channels: [codes] }));
        names.push(name);
      }
    }
  }
  return names;
}

const FSDD_CFG = {
  pattern: '{digit}_{speaker}_{index}.wav',
  labels: { field: 'digit' },
  split: { by: 'index', test_range: [0, 4] as [number, number] },
  normalize: 'none' as const,
};

describe('audio data sets', () => {
  it('labels and the official FSDD split come from the file names', async () => {
    const dir = tmp();
    fsddLike(dir, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], ['jackson', 'theo'], [0, 4, 5, 49]);
    const open = (split: Split) => openAudioData(cfg({ path: dir, length: 16, crop: 'start', pad: 'end', ...FSDD_CFG }), ctx(split));
    const train = await open('train');
    const test = await open('test');
    expect(train.size).toBe(11 * 2 * 2);
    expect(test.size).toBe(11 * 2 * 2);
    // Numeric class names sort numerically: '10' after '9', and digit d has id d.
    expect(train.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(train.numClasses).toBe(11);
    const check = (src: AudioDataSource, wanted: number[]) => {
      src.files.forEach((f, i) => {
        const [d, speaker, idx] = f.split('/').pop()!.replace('.wav', '').split('_');
        expect(wanted).toContain(Number(idx));
        expect(src.labelIds![i]).toBe(Number(d));
        const s = speaker === 'jackson' ? 0 : 1;
        expect(Math.round(src.clip(i)[0]! * 32768)).toBe(Number(d) * 1000 + s * 100 + Number(idx));
      });
    };
    check(train, [5, 49]);
    check(test, [0, 4]);
    // A split by speaker, with explicit test values.
    const bySpeaker = await openAudioData(cfg({ path: dir, length: 16, ...FSDD_CFG, split: { by: 'speaker', test_values: ['theo'] } }), ctx('test'));
    expect(bySpeaker.files.every((f) => f.includes('_theo_'))).toBe(true);
    expect(bySpeaker.size).toBe(11 * 4);
  });

  it('class sub-folders, list files and non-recursive folders', async () => {
    const dir = tmp();
    for (const cls of ['cat', 'dog']) for (const i of [0, 1, 2]) write(dir, `${cls}/sub/${i}.wav`, wavBytes({ bits: 16, rate: 8000, channels: [[i + 1, 0, 0]] }));
    write(dir, 'notes.txt', new TextEncoder().encode('not audio'));
    const logs: string[] = [];
    // Without data.split or data.test_path, the test split reads every file (and says so).
    const folder = await openAudioData(cfg({ path: dir, length: 16, labels: 'folder', normalize: 'none' }), ctx('test', logs));
    expect(folder.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(folder.labelIds!)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(logs.join('\n')).toContain('ignored 1 non-WAV file(s)');
    expect(logs.join('\n')).toContain("data.split is 'none'");
    const list = join(dir, 'files.txt');
    writeFileSync(list, '# two files\ndog/sub/2.wav\n\ncat/sub/0.wav\n');
    const listed = await openAudioData(cfg({ path: list, length: 16, labels: 'folder', normalize: 'none' }), ctx());
    expect(listed.files.map((f) => f.slice(dir.length))).toEqual(['/dog/sub/2.wav', '/cat/sub/0.wav']);
    expect(Array.from(listed.labelIds!)).toEqual([1, 0]);
    await expect(openAudioData(cfg({ path: dir, length: 16, recursive: false }), ctx())).rejects.toThrow(`${dir}: no .wav files (recursive: false; sub-folders not searched)`);
  });

  it('test_path: the test split reads its own folder, with the class ids of data.path', async () => {
    const dir = tmp();
    for (const cls of ['a', 'b', 'c']) write(dir, `train/${cls}/1.wav`, wavBytes({ bits: 16, rate: 8000, channels: [[1, 2]] }));
    write(dir, 'test/c/9.wav', wavBytes({ bits: 16, rate: 8000, channels: [[3, 4]] }));
    const c = cfg({ path: join(dir, 'train'), test_path: join(dir, 'test'), length: 16, labels: 'folder' });
    const test = await openAudioData(c, ctx('test'));
    expect(test.files).toEqual([join(dir, 'test/c/9.wav')]);
    expect(Array.from(test.labelIds!)).toEqual([2]);
    expect(test.numClasses).toBe(3);
    write(dir, 'test/d/1.wav', wavBytes({ bits: 16, rate: 8000, channels: [[3, 4]] }));
    await expect(openAudioData(c, ctx('test'))).rejects.toThrow(`${join(dir, 'test/d/1.wav')}: class 'd' does not occur in data.path ${join(dir, 'train')} (classes: a, b, c)`);
    expect(() => cfg({ path: 'x', test_path: 'y', pattern: '{i}.wav', split: { by: 'i', test_values: [1] } })).toThrow('test: test_path: set split or test_path, not both');
  });

  it('multi-channel files are averaged, or bad files with channels: error', async () => {
    const dir = tmp();
    const p = write(dir, 'st.wav', wavBytes({ bits: 16, rate: 8000, channels: [[1000, -2000], [3000, 2000]] }));
    const mono = await openAudioData(cfg({ path: dir, length: 16, normalize: 'none' }), ctx());
    expect(Array.from(mono.clip(0))).toEqual(f32([2000 / 32768, 0]));
    await expect(openAudioData(cfg({ path: dir, length: 16, channels: 'error' }), ctx())).rejects.toThrow(
      `${p}: has 2 channels and data.channels is 'error' (use 'downmix' to average them)`,
    );
  });

  it('files at other rates are resampled, and that is said once per data set', async () => {
    const dir = tmp();
    write(dir, 'a.wav', wavBytes({ bits: 16, rate: 16000, channels: [sineCodes16(16000, 500, 16000)] }));
    write(dir, 'b.wav', wavBytes({ bits: 16, rate: 16000, channels: [sineCodes16(8000, 500, 16000)] }));
    write(dir, 'c.wav', wavBytes({ bits: 16, rate: 8000, channels: [sineCodes16(4000, 500, 8000)] }));
    const logs: string[] = [];
    const src = await openAudioData(cfg({ path: dir, length: 4000, sample_rate: 8000, normalize: 'none' }), ctx('train', logs));
    expect(Array.from(src.clipLengths)).toEqual([8000, 4000, 4000]);
    expect(src.resampledFiles).toBe(2);
    const said = logs.filter((l) => l.includes('resampled'));
    expect(said).toEqual(['audio data: resampled 2 of 3 file(s) to 8000 Hz (from 16000 Hz) with a Kaiser-windowed sinc filter']);
    // The resampled 500 Hz tone keeps its frequency and amplitude (0.5 * 32767 / 32768).
    const a = src.clip(0);
    let err = 0;
    for (let i = 200; i < 7800; i++) err = Math.max(err, Math.abs(a[i]! - ((0.5 * 32767) / 32768) * Math.sin((2 * Math.PI * 500 * i) / 8000)));
    expect(err).toBeLessThan(2e-3);
  });

  it('peak and RMS normalization', async () => {
    const dir = tmp();
    write(dir, 'a.wav', wavBytes({ bits: 16, rate: 8000, channels: [[1000, -4000, 2000, 0]] }));
    const peak = await openAudioData(cfg({ path: dir, length: 16, normalize: 'peak' }), ctx());
    expect(Math.max(...Array.from(peak.clip(0), Math.abs))).toBeCloseTo(0.95, 6);
    expect(peak.clip(0)[1]).toBeCloseTo(-0.95, 6);
    const rms = await openAudioData(cfg({ path: dir, length: 16, normalize: 'rms', normalize_level: 0.2 }), ctx());
    const c = rms.clip(0);
    expect(Math.sqrt(c.reduce((s, v) => s + v * v, 0) / c.length)).toBeCloseTo(0.2, 6);
  });

  it('crops and pads to the clip length: start / centre / end, and random offsets from the batch rng', async () => {
    const dir = tmp();
    const long = Array.from({ length: 20 }, (_, i) => (i + 1) * 100);
    const short = Array.from({ length: 10 }, (_, i) => -(i + 1) * 100);
    write(dir, 'a_long.wav', wavBytes({ bits: 16, rate: 8000, channels: [long] }));
    write(dir, 'b_short.wav', wavBytes({ bits: 16, rate: 8000, channels: [short] }));
    const codes = async (src: AudioDataSource, rng = new Rng(1)): Promise<[number[], number[]]> =>
      expectNoTensorLeak(async (): Promise<[number[], number[]]> => {
        const b = src.batch([0, 1], rng);
        expect(b.x.shape).toEqual([2, 16, 1]);
        const d = Array.from(await b.x.data(), (v) => Math.round(v * 32768));
        tf.dispose([b.x, b.labels]);
        return [d.slice(0, 16), d.slice(16)];
      }, 'batch');
    const open = (crop: string, pad: string) => openAudioData(cfg({ path: dir, length: 16, normalize: 'none', crop: crop as 'start', pad: pad as 'end' }), ctx());
    const z = (n: number) => Array(n).fill(0);
    let [l, s] = await codes(await open('start', 'end'));
    expect(l).toEqual(long.slice(0, 16));
    expect(s).toEqual([...short, ...z(6)]);
    [l, s] = await codes(await open('center', 'center'));
    expect(l).toEqual(long.slice(2, 18));
    expect(s).toEqual([...z(3), ...short, ...z(3)]);
    const random = await open('random', 'random');
    expect(random.exampleShape).toEqual([16, 1]);
    const starts = new Set<number>();
    const pads = new Set<number>();
    const rng = new Rng(5);
    for (let k = 0; k < 60; k++) {
      [l, s] = await codes(random, rng);
      const st = long.indexOf(l[0]!);
      expect(l).toEqual(long.slice(st, st + 16));
      starts.add(st);
      const p = s.findIndex((v) => v !== 0);
      expect(s).toEqual([...z(p), ...short, ...z(6 - p)]);
      pads.add(p);
    }
    // Every offset 0..4 (crop) and 0..6 (pad) occurs, and the same rng seed gives the same batch.
    expect([...starts].sort()).toEqual([0, 1, 2, 3, 4]);
    expect([...pads].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(await codes(random, new Rng(9))).toEqual(await codes(random, new Rng(9)));
  });

  it('a bad file is a one-line error naming it; skip_bad_files skips and counts every kind', async () => {
    const dir = tmp();
    fsddLike(dir, [1, 2], ['ann'], [7]);
    const good = wavBytes({ bits: 16, rate: 8000, channels: [[1, 2, 3, 4]] });
    const bad: [string, Uint8Array][] = [
      ['3_ann_7.wav', new TextEncoder().encode('ID3 this is an mp3')], // not RIFF/WAVE
      ['4_ann_7.wav', good.subarray(0, good.length - 2)], // truncated
      ['5_ann_7.wav', wavBytes({ bits: 16, rate: 8000, channels: [[]] })], // zero samples
      ['6_ann_7.wav', wavBytes({ format: 0x11, bits: 4, rate: 8000, channels: [[1, 2]] })], // IMA ADPCM
      ['7_ann_7.wav', wavBytes({ bits: 12, rate: 8000, channels: [[1, 2]] })], // 12-bit PCM
      ['readme.wav', good], // name does not match the pattern
    ];
    for (const [n, b] of bad) write(dir, n, b);
    const base = { path: dir, length: 16, ...FSDD_CFG, split: 'none' as const };
    const err = await openAudioData(cfg(base), ctx()).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`${join(dir, '3_ann_7.wav')}: not a RIFF/WAVE file (starts with 'ID3 ')`);
    const logs: string[] = [];
    const src = await openAudioData(cfg({ ...base, skip_bad_files: true }), ctx('train', logs));
    expect(src.size).toBe(2);
    expect(src.skippedFiles).toBe(6);
    expect(src.badFiles).toEqual({ 'not-wav': 1, truncated: 1, 'no-samples': 1, unsupported: 2, name: 1 });
    const line = logs.find((l) => l.includes('skipped'))!;
    expect(line).toContain('skipped 6 bad file(s): 1 not RIFF/WAVE, 1 truncated, 1 no samples, 2 unsupported encoding, 1 name does not match data.pattern');
    // Each kind alone, without skip_bad_files: its own one-line message naming the file.
    const expected: Record<string, RegExp> = {
      '4_ann_7.wav': /truncated WAV file/,
      '5_ann_7.wav': /WAV file has no samples/,
      '6_ann_7.wav': /unsupported WAV encoding \(format 0x0011 IMA ADPCM/,
      '7_ann_7.wav': /unsupported WAV encoding \(12-bit PCM/,
      'readme.wav': /file name does not match data\.pattern "\{digit\}_\{speaker\}_\{index\}\.wav"/,
    };
    for (const [name, re] of Object.entries(expected)) {
      const list = join(dir, `only-${name}.txt`);
      writeFileSync(list, `1_ann_7.wav\n${name}\n`);
      const e = (await openAudioData(cfg({ ...base, path: list }), ctx()).catch((x: Error) => x)) as Error;
      expect(e.message.startsWith(`${join(dir, name)}: `), name).toBe(true);
      expect(e.message, name).toMatch(re);
      expect(e.message.includes('\n')).toBe(false);
    }
  });

  it('config errors name the key', () => {
    const issues = (input: unknown) => {
      const r = audioDataSchema.safeParse(input);
      return r.success ? '' : formatIssues('cfg.yaml', r.error, ['data']);
    };
    expect(issues({ path: 'x', labels: { field: 'digit' } })).toBe('cfg.yaml: data.labels.field: labels needs data.pattern with a {digit} field');
    expect(issues({ path: 'x', pattern: '{a}_{b}.wav', split: { by: 'c', test_range: [0, 4] } })).toBe(
      'cfg.yaml: data.split.by: split: pattern "{a}_{b}.wav" has no {c} field (it has {a}, {b})',
    );
    expect(issues({ path: 'x', pattern: '{a}{b}.wav' })).toContain('data.pattern: pattern has two fields with nothing between them');
    expect(issues({ path: 'x', crop: 'middle' })).toContain('data.crop: Invalid option');
    expect(issues({ path: 'x', lenght: 5 })).toBe('cfg.yaml: data.lenght: unknown key');
    expect(issues({ path: 'x', normalize: 'none', normalize_level: 0.5 })).toBe('cfg.yaml: data.normalize_level: has no effect with normalize: none');
    expect(compilePattern('{d}_{s}_{i}.wav')('3_george_12.wav')).toEqual({ d: '3', s: 'george', i: '12' });
    expect(compilePattern('{d}_{s}_{i}.wav')('3_george_12.WAV')).toBeUndefined();
    expect(sortClassNames(['b', 'a', 'b'])).toEqual(['a', 'b']);
  });
});

describe.skipIf(!haveFsdd)('the real Free Spoken Digit Dataset', () => {
  it('opens with the official split: 2,700 train and 300 test clips of 10 digits at 8 kHz', async () => {
    const open = (split: Split) => openAudioData(cfg({ path: FSDD, length: 8000, sample_rate: 8000, ...FSDD_CFG, normalize: 'peak' }), ctx(split));
    const train = await open('train');
    const test = await open('test');
    expect(train.size).toBe(2700);
    expect(test.size).toBe(300);
    expect(train.numClasses).toBe(10);
    expect(train.resampledFiles).toBe(0);
    const counts = new Array(10).fill(0);
    for (const l of test.labelIds!) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(30));
    // Clips are 0.14 to 2.28 s long.
    const lengths = Array.from(train.clipLengths);
    expect(Math.min(...lengths)).toBeGreaterThan(0.1 * 8000);
    expect(Math.max(...lengths)).toBeLessThan(2.5 * 8000);
    expect(train.std).toBeGreaterThan(0.02);
    expect(train.std).toBeLessThan(0.5);
  });
});
