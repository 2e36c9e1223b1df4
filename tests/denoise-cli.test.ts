import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDifflab, parseRunConfig, readYamlFile, Rng, trainRun, useBackend } from '../src/index.js';
import { audioPlugin, readWavFile, resampledLength, writeWav16 } from '../src/plugins/audio/index.js';

/**
 * `difflab sample` and `difflab denoise` end to end on a tiny audio run:
 * the demo config at 4 kHz (the slice's files are 8 kHz) with 512-sample
 * windows and a 3-layer DiffWave, trained for 2 steps.
 */

const registry = createDifflab().plugins;
const RATE = 4000;
const LENGTH = 512;
let run = '';
let dir = '';

function difflab(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, DIFFLAB_BACKEND: 'wasm' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  await useBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'difflab-denoise-cli-'));
  run = join(dir, 'run');
  const raw = readYamlFile('configs/audio-fsdd-demo.yaml') as Record<string, Record<string, unknown>>;
  raw['data'] = { ...raw['data'], sample_rate: RATE, length: LENGTH, limit: 8 };
  raw['model'] = { arch: 'diffwave', residual_channels: 8, layers: 3, dilation_cycle: 3, embedding_dim: 16, embedding_hidden: 16, class_conditional: true };
  raw['train'] = { ...raw['train'], steps: 2, batch_size: 4, workers: 1, log_every: 1, checkpoint_every: 2, sample_every: 0 };
  const config = parseRunConfig(raw, 'configs/audio-fsdd-demo.yaml (tiny)', registry);
  await trainRun({ config, plugin: audioPlugin, outDir: run, baseDir: 'configs', log: () => {} });
}, 300_000);

describe('difflab sample on an audio run', () => {
  it("writes WAVs at the run's data.sample_rate (the writers' context), with the spectrogram grid", () => {
    const out = join(dir, 'sampled', 'digits.png');
    const r = difflab(['sample', run, '--n', '2', '--steps', '2', '--class', '4', '--out', out]);
    expect(r.stderr).not.toContain('difflab:');
    expect(r.code).toBe(0);
    expect(readdirSync(join(dir, 'sampled')).sort()).toEqual(['digits-0.wav', 'digits-1.wav', 'digits.png']);
    for (const f of ['digits-0.wav', 'digits-1.wav']) {
      const w = readWavFile(join(dir, 'sampled', f));
      expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([RATE, 1, LENGTH, 16]);
    }
  });
});

describe('difflab denoise', () => {
  /** A slice recording (8 kHz) with white noise of std 0.05 added. */
  function noisyWav(name: string, frames: number): string {
    const clean = readWavFile('datasets/fsdd-slice/recordings/' + readdirSync('datasets/fsdd-slice/recordings').sort()[0]);
    const rng = new Rng(9);
    const x = Float32Array.from({ length: frames }, (_, i) => (clean.channelData[0]![i % clean.frames] ?? 0) + 0.05 * rng.normal());
    const path = join(dir, name);
    writeWav16(path, [x], clean.sampleRate);
    return path;
  }

  it('denoises a clip longer than the model in cross-faded windows: a 16-bit WAV at the run rate, of the resampled length', () => {
    const noisy = noisyWav('long.wav', 4000);
    const out = join(dir, 'clean', 'long.wav');
    const r = difflab(['denoise', run, '--in', noisy, '--out', out, '--steps', '6', '--batch', '2']);
    expect(r.stderr).not.toContain('difflab:');
    expect(r.code).toBe(0);
    // The noise level was estimated and printed, in WAV units and after normalization.
    expect(r.stderr).toMatch(/denoise: noise std 0\.0\d+ in WAV units \(estimated: median \|finest db4 wavelet detail\| \/ 0\.6745/);
    expect(r.stderr).toContain(`resampled ${noisy} from 8000 Hz to the run's ${RATE} Hz`);
    const w = readWavFile(out);
    const frames = resampledLength(4000, 8000, RATE);
    expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([RATE, 1, frames, 16]);
    // 2000 samples in windows of 512 overlapping by at least 128.
    expect(r.stdout).toContain(`${out}: ${frames} samples at ${RATE} Hz`);
    expect(r.stdout).toMatch(/x 5 window\(s\) of 512/);
    expect(w.channelData[0]!.every(Number.isFinite)).toBe(true);
  });

  it('pads a clip shorter than the model, with --sigma given', () => {
    const noisy = noisyWav('short.wav', 300);
    const out = join(dir, 'clean', 'short.wav');
    const r = difflab(['denoise', run, '--in', noisy, '--out', out, '--sigma', '0.05', '--sampler', 'euler', '--steps', '4']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('denoise: noise std 0.0500 in WAV units (given by --sigma)');
    const w = readWavFile(out);
    expect([w.sampleRate, w.frames]).toEqual([RATE, resampledLength(300, 8000, RATE)]);
    expect(r.stdout).toMatch(/euler, \d+ steps, \d+ NFE x 1 window\(s\) of 512/);
  });

  it('bad input is a one-line error naming the file, with a non-zero exit', () => {
    const text = join(dir, 'not-a.wav');
    writeFileSync(text, 'hello, I am not audio\n');
    for (const [args, message] of [
      [['--in', text], text],
      [['--in', join(dir, 'missing.wav')], `${join(dir, 'missing.wav')}: cannot read (ENOENT)`],
    ] as const) {
      const r = difflab(['denoise', run, ...args, '--out', join(dir, 'x.wav')]);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^difflab: /);
      expect(lines[0]).toContain(message);
    }
    const silent = join(dir, 'silent.wav');
    writeWav16(silent, [new Float32Array(800)], RATE);
    const r = difflab(['denoise', run, '--in', silent, '--out', join(dir, 'x.wav')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe(`difflab: ${silent}: the estimated noise level is 0 (a noise-free or digitally silent clip); pass --sigma to denoise anyway`);
    const high = difflab(['denoise', run, '--in', noisyWav('loud.wav', 300), '--out', join(dir, 'x.wav'), '--sigma', '1000']);
    expect(high.code).not.toBe(0);
    expect(high.stderr.trim().split('\n').pop()).toMatch(/^difflab: denoise: sigma [\d.e+]+ is above the model's largest noise level \(sigma_max 80\)$/);
  });
});
