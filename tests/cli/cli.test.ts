import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; bin: Record<string, string> };

/** Runs the CLI from source (tsx), as `npx difflab` runs dist/cli/main.js. */
function difflab(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('difflab CLI', () => {
  it('--version prints the package version', () => {
    const r = difflab(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help lists the commands', () => {
    const r = difflab(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: difflab');
    expect(r.stdout).toContain('backends');
  });

  it('backends --json lists every backend with availability, reason and the selection', () => {
    const r = difflab(['backends', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { selected: string; backends: { name: string; available: boolean; reason: string }[] };
    expect(out.backends.map((b) => b.name)).toEqual(['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu']);
    const first = out.backends.find((b) => b.available)!;
    expect(out.selected).toBe(first.name);
    // The native backend's absence is explained, not just flagged.
    const native = out.backends.find((b) => b.name === 'tfjs-node')!;
    if (!native.available) expect(native.reason).toMatch(/tfjs-node/);
  });

  it('backends prints a table marking the selected backend', () => {
    const r = difflab(['backends'], { DIFFLAB_BACKEND: 'cpu' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\* cpu\s+yes/m);
    expect(r.stdout).toContain('selected: cpu (forced by DIFFLAB_BACKEND)');
  });

  it('bad input is a one-line error and a non-zero exit', () => {
    const bad = difflab(['--backend', 'tpu', 'backends']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe("difflab: unknown backend 'tpu'; choose one of: tfjs-node-gpu, tfjs-node, webgpu, wasm, cpu");
    const env = difflab(['backends'], { DIFFLAB_BACKEND: 'gpu' });
    expect(env.code).toBe(1);
    expect(env.stderr.trim().split('\n')).toHaveLength(1);
    const cmd = difflab(['frobnicate']);
    expect(cmd.code).not.toBe(0);
    expect(cmd.stderr).toContain("unknown command 'frobnicate'");
  });

  it('declares the difflab bin', () => {
    expect(pkg.bin['difflab']).toBe('./dist/cli/main.js');
  });

  // `npm ci` builds dist/ (the prepare script); the installed command must run from it.
  it.skipIf(!existsSync('dist/cli/main.js'))('the built bin runs, with the run-time assets beside the compiled modules', () => {
    const r = spawnSync(process.execPath, ['dist/cli/main.js', '--version'], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(existsSync('dist/plugins/image/classifier/fashion-classifier.safetensors')).toBe(true);
    expect(existsSync('dist/plugins/image/classifier/fashion-classifier.json')).toBe(true);
  });
});
