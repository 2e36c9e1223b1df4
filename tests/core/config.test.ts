import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, createDifflab, diffusionFromConfig, loadRunConfig, parseYamlText } from '../../src/index.js';
import { toyPlugin } from '../fixtures/toy-plugin/index.js';

const registry = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;
const dir = mkdtempSync(join(tmpdir(), 'difflab-config-'));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('run configs', () => {
  it('loads a valid config, applying defaults from the core and the plugin schemas', () => {
    const cfg = loadRunConfig('tests/fixtures/configs/toy.yaml', registry);
    expect(cfg.modality).toBe('toy-points');
    expect(cfg.seed).toBe(7);
    expect(cfg.train).toMatchObject({ steps: 20, batch_size: 32, lr: 0.01, workers: 1, log_every: 10 });
    expect(cfg.data).toEqual({ points: 128, spread: 0.25, centres: [[-2, 0], [2, 0]] });
    expect(cfg.model).toEqual({ hidden: 16, nan_after_calls: null });
  });

  it('names the file and key path of an unknown key, one line', () => {
    const file = write('unknown.yaml', 'modality: toy-points\ntrain:\n  stepz: 3\n');
    const err = errorOf(() => loadRunConfig(file, registry));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${file}: train.stepz: unknown key`);
  });

  it('names the key path of a wrong type inside a plugin section', () => {
    const file = write('type.yaml', 'modality: toy-points\nmodel:\n  hidden: "wide"\n');
    const err = errorOf(() => loadRunConfig(file, registry));
    expect(err.message).toMatch(new RegExp(`^${file}: model\\.hidden: .*expected number`));
    expect(err.message).not.toContain('\n');
  });

  it('rejects out-of-range values and names them', () => {
    const file = write('range.yaml', 'modality: toy-points\ntrain:\n  batch_size: 0\n  lr: 5\n');
    const err = errorOf(() => loadRunConfig(file, registry));
    expect(err.message).toContain('train.batch_size: Too small');
    expect(err.message).toContain('train.lr: Too big');
  });

  it('names array elements in plugin sections', () => {
    const file = write('array.yaml', 'modality: toy-points\ndata:\n  centres: [[0, 0], [1, "x"]]\n');
    expect(errorOf(() => loadRunConfig(file, registry)).message).toContain('data.centres[1][1]:');
  });

  it('reports an unknown modality with the registered ones', () => {
    const file = write('modality.yaml', 'modality: video\n');
    expect(errorOf(() => loadRunConfig(file, registry)).message).toBe(
      `${file}: modality: unknown modality 'video'; registered: toy-points`,
    );
  });

  it('reports YAML syntax errors with line and column', () => {
    const file = write('syntax.yaml', 'modality: toy-points\ntrain: [1, 2\n');
    expect(errorOf(() => loadRunConfig(file, registry)).message).toMatch(new RegExp(`^${file}:\\d+:\\d+: invalid YAML`));
  });

  it('loads YAML safely: no custom tags, no duplicate keys, bounded aliases', () => {
    expect(() => parseYamlText('a: !!js/function "function(){}"\n', 'x.yaml')).toThrow(ConfigError);
    expect(() => parseYamlText('a: 1\na: 2\n', 'x.yaml')).toThrow(/x\.yaml:.*invalid YAML/);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`);
    expect(() => parseYamlText(bomb.join('\n'), 'bomb.yaml')).toThrow(/bomb\.yaml: invalid YAML/);
  });

  it('says when the file cannot be read', () => {
    expect(errorOf(() => loadRunConfig(join(dir, 'missing.yaml'), registry)).message).toMatch(/missing\.yaml: cannot read config \(ENOENT\)/);
  });

  it('builds DDPM and EDM from the diffusion section, with defaults', () => {
    const ddpm = loadRunConfig(write('ddpm.yaml', 'modality: toy-points\n'), registry);
    const parts = diffusionFromConfig(ddpm.diffusion);
    expect(parts.schedule.type).toBe('linear');
    expect(parts.schedule.discrete?.T).toBe(1000);
    expect(parts.parametrization.type).toBe('epsilon');
    expect(parts.objective.noise.type).toBe('uniform-time');
    expect(ddpm.sample).toMatchObject({ sampler: 'dpmpp-2m', steps: 20, discretization: 'karras' });

    const edmFile = write(
      'edm.yaml',
      'modality: toy-points\ndiffusion:\n  schedule: {type: edm, sigma_max: 40}\n  parametrization: {type: edm}\n  objective:\n    noise: {type: log-normal}\n    weighting: {type: edm}\n',
    );
    const edm = diffusionFromConfig(loadRunConfig(edmFile, registry).diffusion);
    expect(edm.schedule.sigmaMax).toBe(40);
    expect(edm.parametrization.coefficients(0.5).cSkip).toBeCloseTo(0.5, 12); // sigma_data^2 / (sigma^2 + sigma_data^2)
  });

  it('names the key path of a bad schedule, sampler or EMA option', () => {
    const bad = write('sched.yaml', 'modality: toy-points\ndiffusion:\n  schedule: {type: linear, beta_end: -1}\n');
    expect(errorOf(() => loadRunConfig(bad, registry)).message).toMatch(new RegExp(`^${bad}: diffusion\\.schedule\\.beta_end: Too small`));
    const kind = write('kind.yaml', 'modality: toy-points\ndiffusion:\n  schedule: {type: quadratic}\n');
    expect(errorOf(() => loadRunConfig(kind, registry)).message).toContain('diffusion.schedule.type:');
    const sampler = write('sampler.yaml', 'modality: toy-points\nsample: {sampler: magic}\n');
    const msg = errorOf(() => loadRunConfig(sampler, registry)).message;
    expect(msg).toContain('sample.sampler:');
    expect(msg).toContain('dpmpp-2m');
    const ema = write('ema.yaml', 'modality: toy-points\ntrain: {ema: {kind: warmup, power: 0}}\n');
    expect(errorOf(() => loadRunConfig(ema, registry)).message).toContain('train.ema.power: Too small');
  });
});

describe('shipped configs', () => {
  const shipped = createDifflab();
  for (const file of readdirSync('configs').filter((f) => f.endsWith('.yaml'))) {
    it(`configs/${file} validates and builds its diffusion parts`, () => {
      const cfg = loadRunConfig(join('configs', file), shipped.plugins);
      expect(shipped.plugins.has(cfg.modality)).toBe(true);
      const parts = diffusionFromConfig(cfg.diffusion);
      expect(parts.schedule.sigmaMax).toBeGreaterThan(parts.schedule.sigmaMin);
    });
  }
});
