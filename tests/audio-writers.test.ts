import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/core/backend/select.js';
import { Rng } from '../src/core/random.js';
import {
  encodeWav16,
  fft,
  readWavFile,
  rfft,
  samplePaths,
  windowFor,
  stftDb,
  writeAudioSamples,
  writeSpectrogramStrip,
} from '../src/plugins/audio/index.js';
import { expectNoTensorLeak } from './helpers/tensors.js';

// The reference decoder itself, not difflab's wrapper around it.
const wavDecoder = createRequire(import.meta.url)('wav-decoder') as {
  decode: { sync(b: ArrayBuffer, o?: { symmetric?: boolean }): { sampleRate: number; numberOfChannels: number; channelData: Float32Array[] } };
};

beforeAll(async () => {
  await useBackend('wasm');
});

const tmp = () => mkdtempSync(join(tmpdir(), 'difflab-audio-writers-'));

describe('WAV encoder', () => {
  it('round-trips 16-bit PCM through wav-decoder: k / 32768 exactly, clamping and NaN', () => {
    const left = [0, 1 / 32768, -1 / 32768, 0.5, -0.5, -1, 12345 / 32768, 2, -3, Number.NaN, 0.99999];
    const right = left.map((v, i) => (i % 2 ? -0.25 : 0.125));
    const bytes = encodeWav16([left, right], 22050);
    expect(bytes.length).toBe(44 + left.length * 2 * 2);
    const d = wavDecoder.decode.sync(bytes.slice().buffer, { symmetric: true });
    expect(d.sampleRate).toBe(22050);
    expect(d.numberOfChannels).toBe(2);
    const expectLeft = [0, 1 / 32768, -1 / 32768, 0.5, -0.5, -1, 12345 / 32768, 32767 / 32768, -1, 0, 32767 / 32768];
    expect(Array.from(d.channelData[0]!)).toEqual(Array.from(Float32Array.from(expectLeft)));
    expect(Array.from(d.channelData[1]!)).toEqual(Array.from(Float32Array.from(right)));
    expect(() => encodeWav16([[0], [0, 1]], 8000)).toThrow('encodeWav16: channels differ in length');
    expect(() => encodeWav16([[0]], 0)).toThrow('encodeWav16: sample rate must be a positive integer, got 0');
  });
});

describe('FFT and spectrograms', () => {
  function dft(x: number[]): { re: number[]; im: number[] } {
    const n = x.length;
    const re: number[] = [];
    const im: number[] = [];
    for (let k = 0; k < n; k++) {
      let r = 0;
      let i = 0;
      for (let t = 0; t < n; t++) {
        r += x[t]! * Math.cos((2 * Math.PI * k * t) / n);
        i -= x[t]! * Math.sin((2 * Math.PI * k * t) / n);
      }
      re.push(r);
      im.push(i);
    }
    return { re, im };
  }

  it('fft and rfft equal the DFT by definition', () => {
    const rng = new Rng(3);
    for (const n of [2, 4, 8, 64]) {
      const x = Array.from({ length: n }, () => rng.normal());
      const ref = dft(x);
      const re = Float64Array.from(x);
      const im = new Float64Array(n);
      fft(re, im);
      for (let k = 0; k < n; k++) {
        expect(re[k]).toBeCloseTo(ref.re[k]!, 9);
        expect(im[k]).toBeCloseTo(ref.im[k]!, 9);
      }
      const half = rfft(x);
      expect(half.re.length).toBe(n / 2 + 1);
      for (let k = 0; k <= n / 2; k++) {
        expect(half.re[k]).toBeCloseTo(ref.re[k]!, 9);
        expect(half.im[k]).toBeCloseTo(ref.im[k]!, 9);
      }
    }
    expect(() => rfft([1, 2, 3])).toThrow('rfft: length must be a power of two, got 3');
  });

  it('the spectrogram of a pure sine peaks at its frequency bin, at 0 dB for full scale', () => {
    const rate = 8000;
    const nFft = 256;
    for (const [freq, amp] of [
      [1000, 1],
      [437.5, 0.1],
      [3000, 0.5],
    ] as const) {
      const x = Float32Array.from({ length: 4000 }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
      const s = stftDb(x, { nFft, hop: 64 });
      expect(s.bins).toBe(nFft / 2 + 1);
      expect(s.frames).toBe(Math.floor(4000 / 64) + 1);
      const bin = (freq * nFft) / rate; // 32, 14, 96: on a bin
      for (const t of [10, 30, 50]) {
        const row = s.db.subarray(t * s.bins, (t + 1) * s.bins);
        const peak = row.indexOf(Math.max(...row));
        expect(peak, `${freq} Hz frame ${t}`).toBe(bin);
        expect(row[peak]).toBeCloseTo(20 * Math.log10(amp), 2);
        // A periodic Hann window spreads an on-bin sine over 3 bins only: 3 bins away it is gone.
        expect(row[peak + 3]!).toBeLessThan(row[peak]! - 60);
      }
    }
  });
});

describe('writers', () => {
  it('writeAudioSamples: one 16-bit WAV per clip and a PNG grid of spectrograms of the right size', async () => {
    const dir = tmp();
    const B = 5;
    const len = 1000;
    const rng = new Rng(4);
    const values = Float32Array.from({ length: B * len }, () => Math.round(rng.normal() * 0.2 * 32768) / 32768);
    const x = tf.tensor3d(values, [B, len, 1]);
    const w = await expectNoTensorLeak(() => writeAudioSamples(x, join(dir, 'samples', 'step-00000010.png'), { sampleRate: 8000 }), 'writeAudioSamples');
    x.dispose();
    expect(w.png).toBe(join(dir, 'samples', 'step-00000010.png'));
    expect(w.wavs.map((p) => p.slice(dir.length + 9))).toEqual([0, 1, 2, 3, 4].map((i) => `step-00000010-${i}.wav`));
    expect(readdirSync(join(dir, 'samples')).sort()).toEqual(['step-00000010.png', ...w.wavs.map((p) => p.slice(dir.length + 9))].sort());
    for (let i = 0; i < B; i++) {
      const back = readWavFile(w.wavs[i]!);
      expect(back.sampleRate).toBe(8000);
      expect(Array.from(back.channelData[0]!)).toEqual(Array.from(values.subarray(i * len, (i + 1) * len)));
    }
    // 3 columns x 2 rows of 129-bin x 16-frame spectrograms (nFft 256, hop 64), 2-pixel borders.
    const meta = await sharp(w.png).metadata();
    expect(meta.format).toBe('png');
    expect([meta.width, meta.height, meta.channels]).toEqual([3 * 16 + 4 * 2, 2 * 129 + 3 * 2, 3]);
    expect([w.width, w.height]).toEqual([meta.width, meta.height]);
    // The default window follows the rate: ~32 ms, a power of two.
    expect([8000, 4000, 16000, 22050].map(windowFor)).toEqual([256, 128, 512, 512]);
    expect(samplePaths('/a/b.wav', 12).wavs[11]).toBe('/a/b-11.wav');
    expect(samplePaths('/a/b', 1)).toEqual({ png: '/a/b.png', wavs: ['/a/b-0.wav'] });
    await expect(writeAudioSamples({ data: [1, 2], shape: [1, 1, 2] }, join(dir, 'bad.png'), { sampleRate: 8000 })).rejects.toThrow(
      `${join(dir, 'bad.png')}: audio samples must be [B, T, 1] (or [B, T]), got shape [1, 1, 2]`,
    );
  });

  it('writeSpectrogramStrip: noisy and denoised rows, one column per frame; brighter where the sine is', async () => {
    const dir = tmp();
    const len = 2048;
    const sine = Float32Array.from({ length: len }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 8000));
    const frames = [80, 5, 0.5].map((sigma) => ({
      sigma,
      x: tf.tensor2d(Float32Array.from(sine, (v, i) => v + sigma * Math.sin(i * 12.9898) * 0.7), [len, 1]),
      denoised: tf.tensor3d(sine, [1, len, 1]),
    }));
    const path = join(dir, 'traj.png');
    const w = await writeSpectrogramStrip(frames, path);
    tf.dispose(frames.flatMap((f) => [f.x, f.denoised]));
    const frameCount = len / 64 + 1;
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([3 * frameCount + 4 * 2, 2 * 129 + 3 * 2]);
    expect(w).toEqual({ path, width: info.width, height: info.height });
    // In the bottom (denoised) row, the 1 kHz row (bin 32 from the bottom) is brighter than 2 kHz (bin 64).
    const lum = (x: number, y: number) => {
      const o = (y * info.width + x) * 3;
      return data[o]! + data[o + 1]! + data[o + 2]!;
    };
    const bottom = 2 + 129 + 2 + 128; // last pixel row of the bottom cells
    const x0 = 2 + 10;
    expect(lum(x0, bottom - 32)).toBeGreaterThan(lum(x0, bottom - 64) + 100);
  });
});
