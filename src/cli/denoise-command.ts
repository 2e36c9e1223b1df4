import { resolve } from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { denoiseFrom, estimateNoiseSigmaMad, overlapAdd, windowStarts } from '../core/denoise.js';
import { Rng } from '../core/random.js';
import { normalizeLevel, readWavFile, resample, WavError, writeWav16, type AudioDataConfig } from '../plugins/audio/index.js';
import { nonNegativeInt, openRun, positiveInt, positiveNumber } from './run.js';

/**
 * `difflab denoise <run-dir> --in noisy.wav --out clean.wav`: DiffWave's
 * zero-shot speech denoising (Kong et al. 2021, https://arxiv.org/abs/2009.09761,
 * Sec. 5.5) with any trained audio run. The WAV is read with the audio
 * plugin's reader, mixed to mono, resampled to the run's rate and brought to
 * the run's loudness normalization; the noise level is given (--sigma) or
 * estimated; the reverse process then starts at that level
 * (src/core/denoise.ts) on windows of the model's length, which are
 * cross-faded back together, and the result is written as a 16-bit WAV at
 * the run's rate and the input's loudness. Registered on the main program
 * by `registerDenoiseCommand(program)`.
 */

interface DenoiseOpts {
  in: string;
  out: string;
  sigma?: number;
  sampler?: string;
  steps?: number;
  seed: number;
  batch: number;
  ema: boolean;
}

export function registerDenoiseCommand(program: Command, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Command {
  return program
    .command('denoise')
    .description("zero-shot denoising of a WAV file with a trained audio run (DiffWave sec. 5.5): the reverse process started at the input's noise level")
    .argument('<run-dir>', 'an audio run folder written by `difflab train`')
    .requiredOption('--in <file>', 'noisy input WAV')
    .requiredOption('--out <file>', 'denoised output WAV (16-bit, at the run\'s sample rate)')
    .option('--sigma <s>', 'std of the input\'s noise in WAV units (full scale = 1); default: estimated from the input', positiveNumber)
    .option('--sampler <id>', 'sampler id (default: the config\'s sample.sampler)')
    .option('--steps <n>', 'steps of the run\'s discretization over its whole noise range (default: the config\'s sample.steps); those below sigma are run', positiveInt)
    .option('--seed <s>', 'random seed (stochastic samplers, padding noise)', nonNegativeInt, 0)
    .option('--batch <n>', 'windows denoised per sampler call', positiveInt, 4)
    .option('--no-ema', 'use the raw weights instead of the EMA weights')
    .action(async (runDir: string, opts: DenoiseOpts) => {
      // Messages name the input as the user wrote it.
      const inFile = opts.in;
      const outFile = resolve(opts.out);
      const { plugin, model, config, ckpt, weightsKind } = await openRun(program, runDir, opts.ema);
      try {
        const shape = model.exampleShape;
        if (plugin.id !== 'audio' || shape.length !== 2 || shape[1] !== 1) {
          throw new Error(`${runDir}: denoise needs an audio run with mono examples [L, 1]; this is a '${plugin.id}' run of [${shape.join(', ')}]`);
        }
        const data = config.data as AudioDataConfig;
        const rate = data.sample_rate;
        const L = shape[0]!;

        // 1. Read, mix down and resample as the data loader does (src/plugins/audio/data.ts).
        let wav;
        try {
          wav = readWavFile(inFile);
        } catch (err) {
          if (err instanceof WavError) throw new Error(err.message);
          throw err;
        }
        if (wav.channels > 1 && data.channels === 'error') {
          throw new Error(`${inFile}: has ${wav.channels} channels and the run's data.channels is 'error'`);
        }
        let x = mono(wav.channelData);
        if (wav.sampleRate !== rate) {
          x = resample(x, wav.sampleRate, rate);
          log(`denoise: resampled ${inFile} from ${wav.sampleRate} Hz to the run's ${rate} Hz`);
        }
        const T = x.length;
        // 8: the noise estimate's wavelet filter length (and a floor for anything worth denoising).
        if (T < 8) throw new Error(`${inFile}: ${T} sample(s) at ${rate} Hz; denoising needs at least 8`);

        // 2. The noise level, in WAV units.
        let sigmaWav: number;
        if (opts.sigma !== undefined) {
          sigmaWav = opts.sigma;
        } else {
          sigmaWav = estimateNoiseSigmaMad(x);
          if (!(sigmaWav > 0)) throw new Error(`${inFile}: the estimated noise level is 0 (a noise-free or digitally silent clip); pass --sigma to denoise anyway`);
        }

        // 3. The run's loudness normalization, with the gain computed from this clip as openData computes it per clip.
        const gain = normalizationGain(x, data, sigmaWav, inFile);
        const sigma = sigmaWav * gain;
        log(
          `denoise: noise std ${fmt(sigmaWav)} in WAV units (${opts.sigma !== undefined ? 'given by --sigma' : 'estimated: median |finest db4 wavelet detail| / 0.6745, Donoho & Johnstone 1994'}), ` +
            `${fmt(sigma)} after the run's ${data.normalize} normalization (gain ${fmt(gain)})`,
        );

        // 4. Windows of the model's length: a quarter overlap, cross-faded (src/core/denoise.ts).
        const starts = windowStarts(T, L, Math.floor(L / 4));
        const padRng = Rng.derive(opts.seed, 0x706164);
        const windows = starts.map((s0) => {
          const w = new Float32Array(L);
          for (let k = 0; k < L; k++) {
            // Beyond a short clip's end the window is filled with noise of the clip's level: the reverse
            // process reads every sample as clean signal + noise of std sigma, and the padding's clean
            // signal is silence, as in the zero-padded training windows.
            w[k] = s0 + k < T ? x[s0 + k]! * gain : sigma * padRng.normal();
          }
          return w;
        });
        const out: Float32Array[] = [];
        const t0 = Date.now();
        let info = { sampler: '', steps: 0, nfe: 0 };
        for (let b = 0; b < windows.length; b += opts.batch) {
          const chunk = windows.slice(b, b + opts.batch);
          const y = tf.tensor3d(concat(chunk), [chunk.length, L, 1]);
          const batchNo = b / opts.batch;
          const batches = Math.ceil(windows.length / opts.batch);
          const r = denoiseFrom(model, y, sigma, {
            ...(opts.sampler ? { sampler: opts.sampler } : {}),
            ...(opts.steps ? { steps: opts.steps } : {}),
            seed: opts.seed * 1_000_003 + batchNo,
            onStep: (i) => {
              const line = `denoise: windows ${b + 1}-${b + chunk.length}/${windows.length}  step ${i.i + 1}/${i.total}  sigma ${i.sigma.toPrecision(3)}  ${((Date.now() - t0) / 1000).toFixed(1)}s`;
              if (process.stderr.isTTY) process.stderr.write(`\r${line}${i.i + 1 === i.total && batchNo + 1 === batches ? '\n' : ''}`);
              else if ((i.i + 1) % Math.max(1, Math.ceil(i.total / 4)) === 0 || i.i + 1 === i.total) log(line);
            },
          });
          y.dispose();
          const d = (await r.x.data()) as Float32Array;
          r.x.dispose();
          for (let j = 0; j < chunk.length; j++) out.push(d.slice(j * L, (j + 1) * L));
          info = { sampler: r.sampler, steps: r.sigmas.length - 1, nfe: r.nfe };
        }

        // 5. Cross-fade, crop, undo the normalization gain (the output keeps the input's loudness), write.
        const clean = overlapAdd(out, starts, L, T);
        let clipped = 0;
        for (let i = 0; i < T; i++) {
          clean[i] = clean[i]! / gain;
          if (clean[i]! < -1 || clean[i]! >= 1) clipped++;
        }
        writeWav16(outFile, [clean], rate);
        process.stdout.write(
          `${outFile}: ${T} samples at ${rate} Hz (${(T / rate).toFixed(2)} s) denoised from sigma ${fmt(sigma)}: ${info.sampler}, ${info.steps} steps, ` +
            `${info.nfe} NFE x ${windows.length} window(s) of ${L}; ${weightsKind} weights, step ${ckpt.meta.step}${clipped ? `; ${clipped} sample(s) clipped to [-1, 1)` : ''}\n`,
        );
      } finally {
        model.dispose();
      }
    });
}

function fmt(v: number): string {
  return v.toPrecision(3);
}

/** Averages channels (the data loader's 'downmix'). */
function mono(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 1) return Float32Array.from(channels[0]!);
  const n = channels[0]!.length;
  const out = new Float32Array(n);
  for (const ch of channels) for (let i = 0; i < n; i++) out[i]! += ch[i]! / channels.length;
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The factor the run's `data.normalize` would scale this clip by: to a peak
 * level from the clip's peak (as for training clips, noise included), or to
 * an RMS level from the clean part's RMS, sqrt(mean(x^2) - sigma^2), since
 * independent noise adds sigma^2 to the mean square; 1 for 'none'.
 */
function normalizationGain(x: Float32Array, data: AudioDataConfig, sigmaWav: number, file: string): number {
  let peak = 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) {
    peak = Math.max(peak, Math.abs(x[i]!));
    ss += x[i]! * x[i]!;
  }
  if (peak === 0) throw new Error(`${file}: every sample is 0; there is nothing to denoise`);
  const level = normalizeLevel(data);
  if (level === undefined) return 1;
  if (data.normalize === 'peak') return level / peak;
  const ms = ss / x.length;
  const clean = ms - sigmaWav * sigmaWav;
  if (!(clean > 0)) throw new Error(`${file}: the noise (std ${fmt(sigmaWav)}) carries all of the clip's energy (RMS ${fmt(Math.sqrt(ms))}), so its RMS normalization is undefined; pass a smaller --sigma`);
  return level / Math.sqrt(clean);
}
