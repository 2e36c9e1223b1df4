import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

const FASHION = '../shared/datasets/fashion-mnist';
const haveData = existsSync(FASHION);
if (!haveData) console.warn(`skipping image CLI end-to-end tests: ${FASHION} is absent`);

function difflab(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!haveData)('image: train and sample from the CLI (tiny scale)', () => {
  it('trains a tiny class-conditional U-Net on 2 workers, resumes, samples with guidance', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-e2e-'));
    const cfg = join(dir, 'tiny.yaml');
    writeFileSync(
      cfg,
      [
        'modality: image',
        `data: {format: idx, path: ${join(process.cwd(), FASHION)}, limit: 64}`,
        'model: {arch: unet, channels: 8, channel_mult: [1, 2], attention_resolutions: [], mid_attention: false, norm_groups: 4, class_conditional: true}',
        'diffusion: {schedule: {type: edm}, parametrization: {type: edm}, objective: {noise: {type: log-normal}, weighting: {type: edm}}}',
        'train: {steps: 4, batch_size: 8, workers: 2, log_every: 2, checkpoint_every: 2, sample_every: 4, sample_count: 4}',
        'sample: {sampler: heun, steps: 3}',
      ].join('\n'),
    );
    const out = join(dir, 'run');
    const first = difflab(['train', cfg, '--out', out, '--max-steps', '2']);
    expect(first.stderr).toContain('with 2 workers');
    expect(first.code, first.stderr).toBe(0);
    const second = difflab(['train', cfg, '--out', out, '--resume']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('resumed from');
    expect(second.stderr).toMatch(/step 4\/4 {2}loss \d/);
    expect(existsSync(join(out, 'samples', 'step-00000004.png'))).toBe(true);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(metrics).toHaveLength(2);

    const png = join(dir, 'sevens.png');
    const traj = join(dir, 'trajectory.png');
    const s = difflab(['sample', out, '--class', '7', '--guidance', '2', '--n', '4', '--steps', '2', '--out', png, '--trajectory', traj]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain('4 samples (heun');
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(28 * 2);
    // Two rows (noisy x, denoised) of one frame per step: 2 steps here.
    const strip = await sharp(traj).metadata();
    expect(strip.height).toBe(2 * 28 + 3 * 2);
    expect(strip.width).toBe(2 * 28 + 3 * 2);

    const json = join(dir, 'bpd.json');
    const lik = difflab(['likelihood', out, '--n', '2', '--batch', '2', '--steps', '2', '--probes', '2', '--json', json]);
    expect(lik.code, lik.stderr).toBe(0);
    expect(lik.stdout).toMatch(/^test bits\/dim: \d+\.\d{3} ± \d+\.\d{3} \(discrete/);
    const res = JSON.parse(readFileSync(json, 'utf8')) as { bits_per_dim: number; per_example: number[] };
    expect(res.per_example).toHaveLength(2);
    expect(Number.isFinite(res.bits_per_dim)).toBe(true);

    const evalJson = join(dir, 'eval.json');
    const ev = difflab(['eval', out, '--n', '8', '--batch', '4', '--steps', '2', '--json', evalJson]);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/^FD +\S+ +\(floor \S+\)$/m);
    expect(ev.stdout).toMatch(/^KID +\S+ ± \S+ +\(floor /m);
    expect(ev.stdout).toMatch(/^IS +\S+ ± \S+ +\(real data /m);
    const report = JSON.parse(readFileSync(evalJson, 'utf8')) as { fd: { value: number; floor: number }; counts: { samples: number } };
    expect(report.counts.samples).toBe(8);
    expect(Number.isFinite(report.fd.floor)).toBe(true);

    const bad = difflab(['sample', out, '--class', '12']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('difflab: --class must be an integer in 0..9, got 12');
  });

  it('a bad config is a one-line error naming the file and key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-e2e-'));
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, 'modality: image\nmodel: {arch: unet, channels: -3}\n');
    const r = difflab(['train', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${cfg}: model.channels:`);
  });
});
