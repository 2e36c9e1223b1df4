import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readWavFile } from '../src/plugins/audio/index.js';
import { chooseDemoData } from '../scripts/demo.js';

/** `npm run demo` as a smoke test: 2 training steps, one clip per digit, 2 sampler steps, 10 scored samples. */

function demo(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', ...args], { encoding: 'utf8', timeout: 900_000, env: { ...process.env, DIFFLAB_BACKEND: 'wasm' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm run demo', () => {
  it('package.json runs it, and ships the data slice its config names', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string>; files: string[] };
    expect(pkg.scripts['demo']).toBe('tsx scripts/demo.ts');
    expect(pkg.files).toContain('datasets/fsdd-slice');
    expect(readFileSync('configs/audio-fsdd-demo.yaml', 'utf8')).toMatch(/^\s+path: datasets\/fsdd-slice\/recordings$/m);
  });

  it('picks --data, else the full FSDD when on disk, else the shipped slice, and says which', () => {
    const root = '/r';
    const slice = 'datasets/fsdd-slice/recordings';
    const has = (...paths: string[]) => (p: string) => paths.includes(p);
    expect(chooseDemoData(root, slice, undefined, has('/shared/datasets/fsdd/recordings', '/r/datasets/fsdd/recordings', '/r/' + slice))).toEqual({
      path: '/shared/datasets/fsdd/recordings',
      why: 'the full FSDD, found in ../shared/datasets/fsdd',
    });
    expect(chooseDemoData(root, slice, undefined, has('/r/datasets/fsdd/recordings', '/r/' + slice)).path).toBe('/r/datasets/fsdd/recordings');
    const fallback = chooseDemoData(root, slice, undefined, has('/r/' + slice));
    expect(fallback.path).toBe('/r/' + slice);
    expect(fallback.why).toMatch(/^the FSDD slice that ships with difflab.*no full FSDD found; `npx difflab datasets fetch fsdd` gets it/);
    expect(chooseDemoData(root, slice, 'mine', has(resolve('mine')))).toEqual({ path: resolve('mine'), why: 'given by --data' });
    expect(() => chooseDemoData(root, slice, undefined, has())).toThrow(/^no spoken-digit data found; looked in \/shared\/datasets\/fsdd\/recordings, /);
  });

  it('a bad option is a one-line error with a non-zero exit', () => {
    const r = demo(['--data', '/no/such/folder', '--out', join(tmpdir(), 'difflab-demo-never')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('demo: --data /no/such/folder: no such folder');
  });

  it('trains, samples every digit and unconditionally, scores, and leaves everything in one run folder', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'difflab-demo-')), 'run');
    const r = demo(['--out', out, '--max-steps', '2', '--n-per-class', '1', '--n-uncond', '1', '--steps', '2', '--eval-n', '10', '--data', 'datasets/fsdd-slice/recordings']);
    expect(r.stderr).not.toMatch(/^demo: /m);
    expect(r.code).toBe(0);
    // Progress throughout, and the data choice announced.
    expect(r.stderr).toContain('data: datasets/fsdd-slice/recordings (given by --data)');
    expect(r.stderr).toMatch(/\[1\/3\] training 2 steps/);
    expect(r.stderr).toMatch(/step 2\/2 {2}loss/);
    expect(r.stderr).toMatch(/sampling digit 9 \(1, guidance 2\): step 2\/2/);
    expect(r.stderr).toContain('[3/3] metrics');
    expect(r.stdout).toContain(`run folder     ${out}`);

    const samples = join(out, 'samples');
    const files = readdirSync(samples).sort();
    expect(files).toEqual([...Array.from({ length: 10 }, (_, d) => `digit-${d}-0.wav`), 'digits.png', 'unconditional-0.wav', 'unconditional.png']);
    for (const f of files.filter((f) => f.endsWith('.wav'))) {
      const w = readWavFile(join(samples, f));
      expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([8000, 1, 6000, 16]);
    }
    // 10 rows (digits) of one spectrogram each: 6000 samples, hop 64 -> 94 frames; 129 bins; 2-pixel borders.
    const grid = await sharp(join(samples, 'digits.png')).metadata();
    expect([grid.width, grid.height]).toEqual([94 + 2 * 2, 10 * 129 + 11 * 2]);
    expect(existsSync(join(out, 'checkpoints'))).toBe(true);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);

    const evaluation = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as {
      step: number;
      sampler: string;
      nfe: number;
      guidance: number;
      metrics: { fd: { value: number; floor: number }; is?: { value: number; floor: number }; counts: { samples: number } } | null;
      metrics_skipped?: string;
    };
    expect([evaluation.step, evaluation.sampler, evaluation.nfe, evaluation.guidance]).toEqual([2, 'heun', 3, 2]);
    if (evaluation.metrics === null) {
      // No feature network in this build: the demo says so instead of failing.
      expect(evaluation.metrics_skipped).toMatch(/feature network/);
      expect(r.stderr).toContain(`metrics skipped: ${evaluation.metrics_skipped}`);
    } else {
      expect(evaluation.metrics.counts.samples).toBe(10);
      expect(Number.isFinite(evaluation.metrics.fd.value)).toBe(true);
      expect(Number.isFinite(evaluation.metrics.fd.floor)).toBe(true);
      expect(evaluation.metrics.is?.floor).toBeGreaterThan(1);
      expect(r.stdout).toMatch(/metrics +.*evaluation\.json \(FD [\d.]+, floor [\d.]+\)/);
    }
  });
});
