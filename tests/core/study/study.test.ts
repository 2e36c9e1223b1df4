import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDifflab, trainRun, useBackend, type FeatureExtractor, type ModalityPlugin } from '../../../src/index.js';
import { registerBenchCommand } from '../../../src/cli/bench-command.js';
import { loadStudy, readResults, runStudy, type StudyResults } from '../../../src/core/study/index.js';
import { toyPlugin, type ToyData, type ToyModel } from '../../fixtures/toy-plugin/index.js';
import { expectNoTensorLeak } from '../../helpers/tensors.js';

/** Features = the raw 2-D points: the Frechet distance between the sample and data Gaussians. */
const pointFeatures: FeatureExtractor = {
  id: 'raw-points',
  featureDim: 2,
  features: (x) => tf.reshape(x, [x.shape[0] as number, 2]) as tf.Tensor2D,
};
/** A copy of the toy plugin with a feature extractor (the fixture itself has none). */
const toyWithFeatures: ModalityPlugin<ToyData, ToyModel> = { ...toyPlugin, featureExtractor: async () => pointFeatures };

const plainRegistry = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;
const featureRegistry = createDifflab({ plugins: [toyWithFeatures], builtins: false }).plugins;
const quiet = () => {};

const BASE = `modality: toy-points
seed: 5
backend: wasm
data: { points: 256, spread: 0.3 }
model: { hidden: 16 }
diffusion:
  schedule: { type: edm }
  parametrization: { type: edm }
  objective: { noise: { type: log-normal }, weighting: { type: edm } }
train: { steps: 1000, batch_size: 32, lr: 0.01, workers: 1, log_every: 2, checkpoint_every: 1000 }
sample: { sampler: euler, steps: 4 }
`;

function setup(bench: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'difflab-bench-'));
  writeFileSync(join(dir, 'base.yaml'), BASE);
  const file = join(dir, 'bench.yaml');
  writeFileSync(file, bench.replace('OUT', join(dir, 'out')));
  return { dir, file };
}

const STUDY = `base: base.yaml
matrix:
  model.hidden: [8, 16]
budget: { steps: 6 }
sample: { sampler: [euler, heun], steps: [2, 4] }
eval: { n: 48, batch: 16, seed: 1 }
out: OUT
`;

async function pngSize(file: string): Promise<[number, number]> {
  const m = await sharp(file).metadata();
  return [m.width ?? 0, m.height ?? 0];
}

beforeAll(async () => {
  await useBackend('wasm');
});

function checkCommon(r: StudyResults): void {
  expect(r.cells.map((c) => c.label)).toEqual(['model.hidden=8', 'model.hidden=16']);
  for (const c of r.cells) {
    expect(c.config.model).toMatchObject({ hidden: c.assignments['model.hidden'] });
    expect(c.config.train.steps).toBe(6);
    expect(c.train.steps).toBe(6);
    expect(c.train.stoppedBy).toBe('steps');
    expect(c.train.curve.map((p) => p.step)).toEqual([2, 4, 6]);
    for (const p of c.train.curve) expect(Number.isFinite(p.loss) && p.loss > 0 && p.t > 0 && p.at > 1.7e12).toBe(true);
    // Timestamps increase along the curve and end at the training time.
    expect(c.train.curve.map((p) => p.t)).toEqual([...c.train.curve.map((p) => p.t)].sort((a, b) => a - b));
    expect(c.train.curve[2]!.t).toBeCloseTo(c.train.seconds, 9);
    expect(c.train.secondsPerStep).toBeCloseTo(c.train.seconds / 6, 9);
    expect(c.train.medianStepSeconds).toBeGreaterThan(0);
    expect(c.sampling.map((s) => `${s.sampler}:${s.steps}`)).toEqual(['euler:2', 'euler:4', 'heun:2', 'heun:4']);
    // NFE from the sampler registry: Euler 1 per step; Heun 2 per step except the last (to sigma = 0).
    expect(c.sampling.map((s) => s.nfe)).toEqual([2, 4, 3, 7]);
    for (const s of c.sampling) expect(s.secondsPerSample).toBeGreaterThan(0);
  }
}

describe('difflab bench: a study end to end on the toy plugin', () => {
  it('without a feature extractor: loss and timing only, through the CLI command; results, report and charts', async () => {
    const { dir, file } = setup(STUDY);
    const printed: string[] = [];
    const program = new Command().exitOverride().option('--backend <name>');
    registerBenchCommand(program, { registry: () => plainRegistry, log: quiet, print: (l) => printed.push(l) });
    await expectNoTensorLeak(() => program.parseAsync(['node', 'difflab', 'bench', file]), 'bench');
    const out = join(dir, 'out');
    const r = readResults(join(out, 'results.json'))!;
    expect(r.modality).toBe('toy-points');
    expect(r.backend).toBe('wasm');
    checkCommon(r);
    for (const c of r.cells) {
      expect(c.features).toBeNull();
      expect(c.sampling.every((s) => s.metrics === undefined)).toBe(true);
      expect(existsSync(join(out, c.runDir, 'checkpoints', 'latest.json'))).toBe(true);
    }
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toContain("The `toy-points` plugin has no feature extractor: this study reports loss and timing only");
    expect(md).not.toContain('FD (floor)');
    // Training table: one row per cell; sampling table: one row per cell x sampler x steps.
    for (const h of [8, 16]) {
      expect(md).toMatch(new RegExp(`^\\| \\d \\| \`${h}\` \\| 6 \\| `, 'm'));
      for (const [s, n, nfe] of [['euler', 2, 2], ['euler', 4, 4], ['heun', 2, 3], ['heun', 4, 7]] as const) {
        expect(md).toMatch(new RegExp(`^\\| \\d \\| \`${h}\` \\| ${s} \\| ${n} \\| ${nfe} \\| [0-9.]+ \\|$`, 'm'));
      }
    }
    expect(md).toContain('![Training loss vs training time](loss-vs-time.png)');
    expect(existsSync(join(out, 'fd-vs-nfe.png'))).toBe(false);
    const [w, h] = await pngSize(join(out, 'loss-vs-time.png'));
    expect(w).toBeGreaterThan(400);
    expect(h).toBeGreaterThan(300);
    expect(printed.join('\n')).toContain('2 cell(s) run, 0 taken from');

    // --report-only rewrites the report from results.json; --dry-run lists the cells.
    rmSync(join(out, 'report.md'));
    rmSync(join(out, 'loss-vs-time.png'));
    await program.parseAsync(['node', 'difflab', 'bench', file, '--report-only']);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toBe(md);
    expect(existsSync(join(out, 'loss-vs-time.png'))).toBe(true);
    printed.length = 0;
    await program.parseAsync(['node', 'difflab', 'bench', file, '--dry-run']);
    expect(printed).toEqual([expect.stringContaining('2 training cell(s) x 4 sampling setting(s)'), expect.stringContaining('1. model.hidden=8'), expect.stringContaining('2. model.hidden=16')]);
  });

  it('with a feature extractor: FD/KID with floors per cell x sampler x steps, FD during training, three charts', async () => {
    const { dir, file } = setup(STUDY.replace('budget: { steps: 6 }', 'budget: { steps: 6 }\neval_every: 3'));
    const study = loadStudy(file, featureRegistry);
    const { results: r, report } = await expectNoTensorLeak(() => runStudy(study, { registry: featureRegistry, log: quiet, backend: 'wasm' }), 'runStudy');
    checkCommon(r);
    for (const c of r.cells) {
      expect(c.features).toBe('raw-points');
      for (const s of c.sampling) {
        const m = s.metrics!;
        expect(m.counts).toEqual({ samples: 48, real: 256, floor: 48 });
        expect(m.fd.value).toBeGreaterThan(0);
        expect(m.fd.floor).toBeGreaterThan(0);
        expect(Number.isFinite(m.kid.value)).toBe(true);
        expect(m.is).toBeUndefined();
      }
      // Same seed, same floor subset: the floor is the same for every setting.
      expect(new Set(c.sampling.map((s) => s.metrics!.fd.floor)).size).toBe(1);
      expect(c.evalsDuringTraining.map((e) => e.step)).toEqual([3, 6]);
      expect(c.evalsDuringTraining[0]!.trainSeconds).toBeLessThan(c.evalsDuringTraining[1]!.trainSeconds);
      expect(c.evalsDuringTraining.every((e) => e.sampler === 'euler' && e.steps === 4 && e.metrics!.fd.value > 0)).toBe(true);
      // The final during-training evaluation used the same weights, sampler and seed as the final euler-4 one.
      expect(c.evalsDuringTraining[1]!.metrics!.fd.value).toBeCloseTo(c.sampling[1]!.metrics!.fd.value, 6);
    }
    // Six steps of training: samples far from the two clusters, far above the floor.
    expect(r.cells[0]!.sampling[0]!.metrics!.fd.value).toBeGreaterThan(r.cells[0]!.sampling[0]!.metrics!.fd.floor);
    const md = readFileSync(report.markdown, 'utf8');
    expect(md).not.toContain('no feature extractor');
    expect(md).toContain('feature network `raw-points`');
    for (const c of r.cells) {
      for (const s of c.sampling) {
        const fd = s.metrics!.fd;
        const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(4));
        expect(md).toContain(`| ${c.index + 1} | \`${c.assignments['model.hidden']}\` | ${s.sampler} | ${s.steps} | ${s.nfe} | `);
        expect(md).toContain(`${f(fd.value)} (${f(fd.floor)})`);
      }
    }
    expect(report.charts.map((p) => p.slice(dir.length + 5))).toEqual(['loss-vs-time.png', 'fd-vs-nfe.png', 'fd-vs-train-time.png']);
    for (const png of report.charts) expect((await pngSize(png))[0]).toBeGreaterThan(400);
    expect(md).toContain('## During training');
  });

  it('resumes: finished cells are skipped, an interrupted study continues where it stopped', async () => {
    const { file } = setup(STUDY);
    const study = loadStudy(file, plainRegistry);
    let trained = 0;
    let failOn: number | undefined = 16;
    const train: typeof trainRun = async (opts) => {
      if ((opts.config.model as { hidden: number }).hidden === failOn) throw new Error('interrupted');
      trained++;
      return trainRun(opts);
    };
    await expect(runStudy(study, { registry: plainRegistry, log: quiet, train })).rejects.toThrow('interrupted');
    const partial = readResults(join(study.out, 'results.json'))!;
    expect(partial.cells.map((c) => c.label)).toEqual(['model.hidden=8']);
    expect(trained).toBe(1);
    const first = partial.cells[0]!;

    failOn = undefined;
    const second = await runStudy(study, { registry: plainRegistry, log: quiet, train });
    expect(trained).toBe(2);
    expect(second.skipped).toEqual([first.id]);
    expect(second.ran).toEqual([study.cells[1]!.id]);
    expect(second.results.cells.map((c) => c.label)).toEqual(['model.hidden=8', 'model.hidden=16']);
    expect(second.results.cells[0]).toEqual(first);

    const third = await runStudy(loadStudy(file, plainRegistry), { registry: plainRegistry, log: quiet, train });
    expect(trained).toBe(2);
    expect(third.ran).toEqual([]);
    expect(third.skipped).toHaveLength(2);

    // Another budget makes old results incomparable: refused, naming the file.
    writeFileSync(file, readFileSync(file, 'utf8').replace('steps: 6', 'steps: 7'));
    await expect(runStudy(loadStudy(file, plainRegistry), { registry: plainRegistry, log: quiet, train })).rejects.toThrow(
      /results\.json: written for another budget/,
    );
  });

  it('a cell whose loss diverges is recorded as failed and the study goes on', async () => {
    const { file } = setup(`base: base.yaml
matrix:
  model.nan_after_calls: [3, null]
budget: { steps: 6 }
sample: { sampler: [euler], steps: [3] }
eval: { n: 8, batch: 8 }
out: OUT
`);
    const study = loadStudy(file, plainRegistry);
    const { results, report } = await expectNoTensorLeak(() => runStudy(study, { registry: plainRegistry, log: quiet }), 'runStudy');
    const [bad, good] = results.cells;
    expect(bad!.error).toMatch(/^loss became NaN at step \d/);
    expect(bad!.train.steps).toBeLessThan(6);
    expect(bad!.sampling).toEqual([]);
    expect(good!.error).toBeUndefined();
    expect(good!.train.steps).toBe(6);
    expect(good!.sampling).toHaveLength(1);
    expect(readFileSync(report.markdown, 'utf8')).toMatch(/^\| 1 \| `3` \| \d \| .* \| failed: loss became NaN at step \d/m);
  });

  it('a time budget stops every cell after the same training wall-clock', async () => {
    const { file } = setup(`base: base.yaml
budget: { seconds: 0.4 }
sample: { sampler: [euler], steps: [3] }
eval: { n: 8, batch: 8 }
out: OUT
`);
    const { results } = await expectNoTensorLeak(() => runStudy(loadStudy(file, plainRegistry), { registry: plainRegistry, log: quiet }), 'runStudy');
    const c = results.cells[0]!;
    expect(c.label).toBe('base');
    expect(c.train.stoppedBy).toBe('seconds');
    expect(c.train.seconds).toBeGreaterThanOrEqual(0.4);
    expect(c.train.steps).toBeGreaterThan(1);
    expect(c.train.steps).toBeLessThan(1000);
    expect(c.sampling).toHaveLength(1);
    // The cell keeps a checkpoint at the step the budget stopped it (to resume or sample its final model).
    const out = loadStudy(file, plainRegistry).out;
    const latest = JSON.parse(readFileSync(join(out, c.runDir, 'checkpoints', 'latest.json'), 'utf8')) as Record<string, unknown>;
    expect(JSON.stringify(latest)).toContain(String(c.train.steps).padStart(8, '0'));
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('| time budget |');
  });
});
