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
  it('package.json runs it, and ships the data slice its config names (relative to the config, so it works from node_modules too)', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string>; files: string[] };
    expect(pkg.scripts['demo']).toBe('tsx scripts/demo.ts');
    expect(pkg.files).toContain('datasets/fsdd-slice');
    expect(readFileSync('configs/audio-fsdd-demo.yaml', 'utf8')).toMatch(/^\s+path: \.\.\/datasets\/fsdd-slice\/recordings$/m);
    expect(existsSync(resolve('configs', '../datasets/fsdd-slice/recordings'))).toBe(true);
  });

  it("picks --data, else the config's folder (from the working folder, then the config's folder), and says which", () => {
    const slice = '../datasets/fsdd-slice/recordings';
    const has = (...paths: string[]) => (p: string) => paths.includes(p);
    const shipped = chooseDemoData('/pkg/configs/demo.yaml', slice, undefined, has('/pkg/datasets/fsdd-slice/recordings'));
    expect(shipped.path).toBe('/pkg/datasets/fsdd-slice/recordings');
    expect(shipped.why).toMatch(/^one speaker's digits, the FSDD slice that ships with difflab; --data DIR trains on another folder/);
    // A path that exists from the working folder wins, as in the audio plugin; another config's data is named as such.
    expect(chooseDemoData('/pkg/configs/demo.yaml', 'mine', undefined, has(resolve('mine'), '/pkg/configs/mine'))).toEqual({ path: resolve('mine'), why: "the config's data.path, mine" });
    expect(chooseDemoData('/pkg/configs/demo.yaml', slice, 'mine', has(resolve('mine')))).toEqual({ path: resolve('mine'), why: 'given by --data' });
    expect(() => chooseDemoData('/pkg/configs/demo.yaml', slice, undefined, has())).toThrow(
      /^\/pkg\/configs\/demo\.yaml: data\.path \.\.\/datasets\/fsdd-slice\/recordings not found \(looked in /,
    );
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
      expect([w.sampleRate, w.channels, w.frames, w.bitsPerSample]).toEqual([4000, 1, 2000, 16]);
    }
    // 10 rows (digits) of one spectrogram each: 2000 samples at 4 kHz, a 32 ms window (128) and hop 32 -> 63 frames; 65 bins; 2-pixel borders.
    const grid = await sharp(join(samples, 'digits.png')).metadata();
    expect([grid.width, grid.height]).toEqual([63 + 2 * 2, 10 * 65 + 11 * 2]);
    expect(existsSync(join(out, 'checkpoints'))).toBe(true);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);

    const evaluation = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as {
      step: number;
      sampler: string;
      nfe: number;
      guidance: number;
      metrics: {
        fd: { value: number; floor: number };
        is?: { value: number; floor: number };
        classAccuracy?: { value: number; floor: number };
        counts: { samples: number };
      } | null;
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
      // One sample per digit, each scored against the digit it was asked for.
      expect(evaluation.metrics.classAccuracy!.value * 10).toBeCloseTo(Math.round(evaluation.metrics.classAccuracy!.value * 10), 9);
      expect(evaluation.metrics.classAccuracy!.floor).toBeGreaterThan(0);
      expect(r.stdout).toMatch(/metrics +.*evaluation\.json \(FD [\d.]+, floor [\d.]+; the classifier hears the requested digit in \d+ % of them \(real clips: \d+ %\)\)/);
    }

    // The folder holds a run now: refused without --resume; with it, training continues from step 2.
    const again = demo(['--out', out, '--max-steps', '3', '--data', 'datasets/fsdd-slice/recordings']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`demo: ${out} already holds a trained run; choose another --out, or pass --resume to continue it`);
    const resumed = demo(['--out', out, '--resume', '--max-steps', '3', '--n-per-class', '1', '--n-uncond', '0', '--steps', '1', '--eval-n', '10', '--data', 'datasets/fsdd-slice/recordings']);
    expect(resumed.stderr).not.toMatch(/^demo: /m);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/resumed from .*step-00000002 \(step 2\)/);
    expect(resumed.stderr).toMatch(/step 3\/3 {2}loss/);
    expect((JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as { step: number }).step).toBe(3);
  });
});
