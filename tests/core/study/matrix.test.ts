import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDifflab } from '../../../src/index.js';
import { cartesian, expandStudy, loadStudy, setKeyPath, studyFingerprint } from '../../../src/core/study/index.js';
import { ConfigError } from '../../../src/core/config/load.js';
import { toyPlugin } from '../../fixtures/toy-plugin/index.js';

const registry = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;

const BASE = `modality: toy-points
seed: 1
data: { points: 64 }
model: { hidden: 16 }
diffusion:
  schedule: { type: linear, beta_start: 0.0001, beta_end: 0.02, T: 1000 }
train: { steps: 100, batch_size: 16, workers: 1 }
`;

/** A folder with base.yaml and a bench file with the given body; returns the bench file's path. */
function benchFile(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'difflab-study-'));
  writeFileSync(join(dir, 'base.yaml'), BASE);
  const file = join(dir, 'bench.yaml');
  writeFileSync(file, body);
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

describe('matrix expansion', () => {
  it('cartesian product: every combination once, last key fastest; no keys give one cell', () => {
    expect(cartesian({ a: [1, 2], b: ['x', 'y', 'z'] })).toEqual([
      { a: 1, b: 'x' },
      { a: 1, b: 'y' },
      { a: 1, b: 'z' },
      { a: 2, b: 'x' },
      { a: 2, b: 'y' },
      { a: 2, b: 'z' },
    ]);
    expect(cartesian({})).toEqual([{}]);
  });

  it('setKeyPath sets a dotted key in a copy, creating mappings and replacing whole values', () => {
    const base = { model: { arch: 'unet', channels: 32 }, diffusion: { schedule: { type: 'linear', T: 1000 } } };
    const a = setKeyPath(base, 'model.arch', 'resnet');
    expect(a).toEqual({ model: { arch: 'resnet', channels: 32 }, diffusion: { schedule: { type: 'linear', T: 1000 } } });
    const b = setKeyPath(base, 'diffusion.schedule', { type: 'cosine' });
    expect(b['diffusion']).toEqual({ schedule: { type: 'cosine' } });
    const c = setKeyPath(base, 'train.ema.kind', 'none');
    expect(c['train']).toEqual({ ema: { kind: 'none' } });
    // The base is untouched, and values are copies.
    const value = { type: 'edm' };
    const d = setKeyPath(base, 'diffusion.schedule', value);
    value.type = 'changed';
    expect((d['diffusion'] as { schedule: unknown }).schedule).toEqual({ type: 'edm' });
    expect(base.model.arch).toBe('unet');
    expect(base.diffusion.schedule).toEqual({ type: 'linear', T: 1000 });
    expect(() => setKeyPath(base, 'model.arch.depth', 2)).toThrow('model.arch is the value "unet", not a mapping');
    expect(() => setKeyPath(base, 'model..arch', 2)).toThrow('expected a dotted key path');
  });

  it('expands a bench file into validated cells with the budget as train.steps', () => {
    const file = benchFile(`base: base.yaml
matrix:
  model.hidden: [8, 16]
  diffusion.schedule: [{ type: linear }, { type: cosine }, { type: edm, sigma_max: 20 }]
budget: { steps: 7 }
sample: { sampler: [euler, heun], steps: [3, 5] }
eval: { n: 20 }
out: somewhere
`);
    const study = loadStudy(file, registry);
    expect(study.name).toBe('bench');
    expect(study.cells).toHaveLength(6);
    expect(study.sampling).toEqual([
      { sampler: 'euler', steps: 3 },
      { sampler: 'euler', steps: 5 },
      { sampler: 'heun', steps: 3 },
      { sampler: 'heun', steps: 5 },
    ]);
    expect(study.cells.map((c) => c.label)).toEqual([
      'model.hidden=8, diffusion.schedule=linear',
      'model.hidden=8, diffusion.schedule=cosine',
      'model.hidden=8, diffusion.schedule=edm(sigma_max=20)',
      'model.hidden=16, diffusion.schedule=linear',
      'model.hidden=16, diffusion.schedule=cosine',
      'model.hidden=16, diffusion.schedule=edm(sigma_max=20)',
    ]);
    const cosine = study.cells[1]!.config;
    // The schedule mapping is replaced, not merged: the linear betas are gone, defaults filled in.
    expect(cosine.diffusion.schedule).toEqual({ type: 'cosine', s: 0.008, T: 1000, max_beta: 0.999 });
    expect(cosine.model).toEqual({ hidden: 8, nan_after_calls: null });
    expect(study.cells[5]!.config.diffusion.schedule).toEqual({ type: 'edm', sigma_min: 0.002, sigma_max: 20 });
    expect(study.cells.every((c) => c.config.train.steps === 7 && c.config.train.batch_size === 16)).toBe(true);
    expect(new Set(study.cells.map((c) => c.id)).size).toBe(6);
    expect(new Set(study.cells.map((c) => c.slug)).size).toBe(6);
    expect(study.out).toBe(join(process.cwd(), 'somewhere'));
    // Expansion is deterministic (resume matches cells by id).
    expect(loadStudy(file, registry).cells.map((c) => c.id)).toEqual(study.cells.map((c) => c.id));
    expect(loadStudy(file, registry, { out: '/tmp/x' }).out).toBe('/tmp/x');
  });

  it('longer keys refine shorter ones whatever their order in the file', () => {
    const file = benchFile(`base: base.yaml
matrix:
  diffusion.schedule.T: [50]
  diffusion.schedule: [{ type: linear }, { type: cosine }]
budget: { seconds: 30 }
`);
    const study = loadStudy(file, registry);
    expect(study.cells.map((c) => c.config.diffusion.schedule)).toEqual([
      { type: 'linear', beta_start: 1e-4, beta_end: 0.02, T: 50 },
      { type: 'cosine', s: 0.008, T: 50, max_beta: 0.999 },
    ]);
    // A time budget leaves train.steps (the LR schedule's horizon) as the base has it.
    expect(study.cells[0]!.config.train.steps).toBe(100);
    expect(study.sampling).toEqual([]);
  });

  it('a bad matrix value is a one-line error naming the bench file, the cell and the key', () => {
    const file = benchFile(`base: base.yaml
matrix:
  model.hidden: [8, -3]
budget: { steps: 5 }
`);
    const err = errorOf(() => loadStudy(file, registry));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: matrix cell \\{model.hidden=-3\\}: model.hidden: `));
  });

  it('names unknown keys, wrong schedule fields, keys through scalars, reserved keys and bad bench keys', () => {
    const cases: [string, string | RegExp][] = [
      ['matrix: { model.depth: [2] }\nbudget: { steps: 5 }', 'matrix cell {model.depth=2}: model.depth: unknown key'],
      ['matrix: { diffusion.schedule: [{ type: cosine, beta_end: 0.1 }] }\nbudget: { steps: 5 }', 'diffusion.schedule.beta_end: unknown key'],
      ['matrix: { diffusion.schedule: [{ type: nope }] }\nbudget: { steps: 5 }', /matrix cell \{diffusion.schedule=nope\}: diffusion.schedule.type: /],
      ['matrix: { model.hidden.width: [2] }\nbudget: { steps: 5 }', 'matrix.model.hidden.width: cannot set it in base.yaml: model.hidden is the value 16, not a mapping'],
      ['matrix: { train.steps: [2, 3] }\nbudget: { steps: 5 }', "matrix.train.steps: cannot be varied (the bench file's budget sets it)"],
      ['matrix: { sample.sampler: [euler] }\nbudget: { steps: 5 }', 'matrix.sample.sampler: cannot be varied'],
      ['matrix: { model.hidden: [] }\nbudget: { steps: 5 }', 'matrix.model.hidden: list at least one value'],
      ['matrix: { "model hidden": [1] }\nbudget: { steps: 5 }', 'expected a dotted key path'],
      ['budget: { steps: 5, seconds: 3 }', 'budget'],
      ['budget: { steps: 5 }\nsample: { sampler: [warp], steps: [5] }', 'sample.sampler[0]: '],
      ['budget: { steps: 5 }\nevals: { n: 3 }', 'evals: unknown key'],
      ['matrix: { model.hidden: [8] }', 'budget: '],
    ];
    for (const [body, expected] of cases) {
      const file = benchFile(`base: base.yaml\n${body}\n`);
      const err = errorOf(() => loadStudy(file, registry));
      expect(err, body).toBeInstanceOf(ConfigError);
      expect(err.message.startsWith(`${file}: `), err.message).toBe(true);
      expect(err.message).not.toContain('\n');
      if (typeof expected === 'string') expect(err.message, body).toContain(expected);
      else expect(err.message, body).toMatch(expected);
    }
  });

  it('a missing or invalid base config is an error naming the bench file and the base file', () => {
    const missing = benchFile('base: nope.yaml\nbudget: { steps: 5 }\n');
    expect(errorOf(() => loadStudy(missing, registry)).message).toMatch(/bench\.yaml: base: .*nope\.yaml: cannot read config/);
    const file = benchFile('base: base.yaml\nbudget: { steps: 5 }\n');
    writeFileSync(join(file, '..', 'base.yaml'), `${BASE}bogus: 1\n`);
    expect(errorOf(() => loadStudy(file, registry)).message).toMatch(/bench\.yaml: base: .*base\.yaml: bogus: unknown key$/);
    expect(errorOf(() => expandStudy([1, 2], 'b.yaml', registry)).message).toBe('b.yaml: expected a mapping of keys at the top level');
  });

  it('the fingerprint changes with the budget, sampling and eval sections, not with the matrix', () => {
    const fp = (body: string) => studyFingerprint(loadStudy(benchFile(`base: base.yaml\n${body}\n`), registry));
    const a = fp('matrix: { model.hidden: [8] }\nbudget: { steps: 5 }');
    expect(fp('matrix: { model.hidden: [8, 16] }\nbudget: { steps: 5 }')).toBe(a);
    expect(fp('budget: { steps: 6 }')).not.toBe(a);
    expect(fp('budget: { steps: 5 }\neval: { n: 30 }')).not.toBe(a);
    expect(fp('budget: { steps: 5 }\nsample: { sampler: [euler], steps: [4] }')).not.toBe(a);
  });
});

describe('the shipped bench files', () => {
  const builtins = createDifflab().plugins;
  it('configs/studies/schedules.yaml: linear, cosine, geometric and EDM schedules of fashion-unet, 300 steps each', () => {
    const s = loadStudy('configs/studies/schedules.yaml', builtins);
    expect(s.cells.map((c) => c.config.diffusion.schedule.type)).toEqual(['linear', 'cosine', 'geometric', 'edm']);
    expect(s.cells.every((c) => c.config.modality === 'image' && c.config.train.steps === 300 && c.config.diffusion.parametrization.type === 'epsilon')).toBe(true);
    expect(s.sampling).toHaveLength(9);
  });
  it('configs/studies/unet-vs-resnet.yaml: the two architectures with the same training wall-clock', () => {
    const s = loadStudy('configs/studies/unet-vs-resnet.yaml', builtins);
    expect(s.cells.map((c) => (c.config.model as { arch: string }).arch)).toEqual(['unet', 'resnet']);
    expect(s.bench.budget).toEqual({ seconds: 800 });
    expect(s.sampling).toHaveLength(6);
  });
});
