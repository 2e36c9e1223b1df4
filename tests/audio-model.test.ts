import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { latestCheckpointDir, loadCheckpoint } from '../src/index.js';
import { readWavFile } from '../src/plugins/audio/index.js';

/**
 * The committed audio model (models/audio-fsdd: configs/audio-fsdd.yaml
 * trained for the session-sized run in docs/audio.md): it ships with the
 * package, loads, and `difflab sample` draws a guided digit from it right
 * after install.
 */
const MODEL = 'models/audio-fsdd';

describe('the committed audio-fsdd model', () => {
  it('is a complete, resumable checkpoint within the 20 MB budget, recorded with a config path relative to itself', () => {
    const dir = latestCheckpointDir(MODEL)!;
    expect(dir).toBeDefined();
    const ckpt = loadCheckpoint(dir);
    expect(ckpt.meta.modality).toBe('audio');
    expect(ckpt.meta.exampleShape).toEqual([4800, 1]);
    expect(ckpt.meta.numClasses).toBe(10);
    expect(ckpt.meta.configFile).toBe('../../configs/audio-fsdd.yaml');
    expect(ckpt.ema).toBeDefined();
    expect(ckpt.state.optimizer.length).toBeGreaterThan(0);
    const bytes = ['model', 'ema', 'optimizer'].reduce((n, f) => n + statSync(join(dir, `${f}.safetensors`)).size, 0);
    expect(bytes).toBeLessThan(20 * 1024 * 1024);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('models');
  });

  it('difflab sample draws a guided seven from it: an 8 kHz, 0.6 s WAV and its spectrogram', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'difflab-model-')), 'sevens.png');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'sample', MODEL, '--class', '7', '--guidance', '2', '--n', '1', '--steps', '2', '--out', out], {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, DIFFLAB_BACKEND: 'wasm' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
    const w = readWavFile(out.replace(/\.png$/, '-0.wav'));
    expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([8000, 1, 4800, 16]);
  });
});
