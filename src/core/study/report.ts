import { isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { writeChartPng, type ChartSeries } from './chart.js';
import type { CellResult, StudyResults } from './results.js';
import { shortValue } from './schema.js';

/**
 * The Markdown report of a study (`<out>/report.md`) with PNG charts beside
 * it: loss vs training time (one line per cell), FD vs NFE (one line per
 * cell x sampler) and FD vs training time (when `eval_every` is set).
 */
export interface StudyReportFiles {
  readonly markdown: string;
  readonly charts: readonly string[];
}

const num = (v: number | undefined, digits = 4): string => {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return a >= 100 ? v.toFixed(1) : v.toFixed(digits);
};
/** Seconds with enough digits for short runs. */
const secs = (v: number): string => (!Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3));
const withFloor = (m: { value: number; floor: number } | undefined): string => (m ? `${num(m.value)} (${num(m.floor)})` : '–');
const cellCell = (c: string): string => c.replace(/\|/g, '\\|');

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cellCell).join(' | ')} |`)].join('\n');
}

export async function writeStudyReport(results: StudyResults, outDir: string): Promise<StudyReportFiles> {
  const cells: readonly CellResult[] = results.cells;
  const keys = Object.keys(results.bench.matrix);
  const b = results.bench;
  const budget = 'steps' in b.budget ? `${b.budget.steps} training steps per cell` : `${b.budget.seconds} s of training wall-clock per cell`;
  const noFeatures = cells.length > 0 && cells.every((c) => c.features === null);
  const charts: string[] = [];
  const md: string[] = [
    `# Study: ${results.name}`,
    '',
    `- bench file: \`${shownPath(results.benchFile)}\`; base config: \`${shownPath(results.baseFile)}\``,
    `- modality: \`${results.modality}\`; backend: ${results.backend}`,
    `- budget: ${budget}${b.eval_every ? `; evaluated every ${b.eval_every} steps during training` : ''}`,
    `- evaluation: ${b.eval.n} samples per setting (batches of ${b.eval.batch}, seed ${b.eval.seed})`,
    `- timings on: ${[...new Set(cells.map((c) => (c.machine ? `${c.machine.backend}, ${c.machine.cpus} x ${c.machine.cpuModel}` : 'unknown')))].join('; ') || '–'}`,
    `- cells: ${cells.length} finished; updated ${results.updatedAt}`,
    '',
  ];
  if (noFeatures) {
    md.push(
      `> The \`${results.modality}\` plugin has no feature extractor: this study reports loss and timing only (no FD, KID or IS).`,
      '',
    );
  } else if (cells.length > 0) {
    md.push(`Metrics use the feature network \`${cells.find((c) => c.features)?.features}\`; each value is followed by its real-vs-real floor in parentheses.`, '');
  }

  // Training
  md.push('## Training', '');
  md.push(
    table(
      ['#', ...keys, 'steps', 'train s', 'ms/step (mean)', 'ms/step (median)', 'final loss', 'stopped by'],
      cells.map((c) => [
        String(c.index + 1),
        ...keys.map((k) => `\`${shortValue(c.assignments[k])}\``),
        String(c.train.steps),
        secs(c.train.seconds),
        num(c.train.secondsPerStep * 1000, 1),
        num(c.train.medianStepSeconds * 1000, 1),
        num(c.train.finalLoss),
        c.error !== undefined ? `failed: ${c.error}` : c.train.stoppedBy === 'seconds' ? 'time budget' : 'steps',
      ]),
    ),
    '',
  );
  if (cells.length > 0) {
    await writeChartPng(join(outDir, 'loss-vs-time.png'), {
      title: 'Training loss vs training time',
      xLabel: 'training wall-clock (s)',
      yLabel: 'loss (mean over log_every steps)',
      xScale: 'linear',
      yScale: 'log',
      series: cells.map((c) => ({ label: `${c.index + 1}: ${c.label}`, points: c.train.curve.map((p) => [p.t, p.loss] as const) })),
    });
    charts.push('loss-vs-time.png');
    md.push('![Training loss vs training time](loss-vs-time.png)', '');
  }

  // Sampling
  md.push('## Sampling', '');
  const rows = cells.flatMap((c) =>
    c.sampling.map((s) => [
      String(c.index + 1),
      ...keys.map((k) => `\`${shortValue(c.assignments[k])}\``),
      s.sampler,
      String(s.steps),
      String(s.nfe),
      num(s.secondsPerSample * 1000, 2),
      ...(noFeatures ? [] : [withFloor(s.metrics?.fd), withFloor(s.metrics?.kid), withFloor(s.metrics?.is)]),
    ]),
  );
  md.push(table(['#', ...keys, 'sampler', 'steps', 'NFE', 'ms/sample', ...(noFeatures ? [] : ['FD (floor)', 'KID (floor)', 'IS (floor)'])], rows), '');

  const fdFloors = (list: readonly { metrics?: { fd: { floor: number } } }[]) => {
    const floors = [...new Set(list.flatMap((s) => (s.metrics ? [Number(s.metrics.fd.floor.toPrecision(4))] : [])))];
    return floors.length <= 3 ? floors.map((y) => ({ y, label: `real-vs-real floor ${num(y)}` })) : [];
  };
  const withMetrics = cells.flatMap((c) => c.sampling.filter((s) => s.metrics));
  if (withMetrics.length > 0) {
    const series: ChartSeries[] = cells.flatMap((c) => {
      const samplers = [...new Set(c.sampling.map((s) => s.sampler))];
      return samplers.map((sampler) => ({
        label: `${c.index + 1}: ${c.label} · ${sampler}`,
        points: c.sampling
          .filter((s) => s.sampler === sampler && s.metrics)
          .sort((x, y) => x.nfe - y.nfe)
          .map((s) => [s.nfe, s.metrics!.fd.value] as const),
      }));
    });
    await writeChartPng(join(outDir, 'fd-vs-nfe.png'), {
      title: 'Frechet distance vs network evaluations',
      xLabel: 'NFE per sample',
      yLabel: 'FD',
      xScale: 'log',
      yScale: 'log',
      series,
      xTicks: [...new Set(withMetrics.map((s) => s.nfe))].sort((x, y) => x - y),
      hlines: fdFloors(withMetrics),
    });
    charts.push('fd-vs-nfe.png');
    md.push('![FD vs NFE](fd-vs-nfe.png)', '');
  }

  // During training
  const during = cells.filter((c) => c.evalsDuringTraining.length > 0);
  if (b.eval_every) {
    md.push('## During training', '');
    if (during.length === 0) {
      md.push(noFeatures ? 'No evaluations during training: the plugin has no feature extractor.' : 'No evaluations during training yet.', '');
    } else {
      md.push(
        table(
          ['#', ...keys, 'step', 'train s', 'sampler', 'NFE', 'FD (floor)', 'KID (floor)'],
          during.flatMap((c) =>
            c.evalsDuringTraining.map((e) => [
              String(c.index + 1),
              ...keys.map((k) => `\`${shortValue(c.assignments[k])}\``),
              String(e.step),
              secs(e.trainSeconds),
              `${e.sampler} ${e.steps}`,
              String(e.nfe),
              withFloor(e.metrics?.fd),
              withFloor(e.metrics?.kid),
            ]),
          ),
        ),
        '',
      );
      await writeChartPng(join(outDir, 'fd-vs-train-time.png'), {
        title: 'Frechet distance vs training time',
        xLabel: 'training wall-clock (s)',
        yLabel: 'FD',
        xScale: 'linear',
        yScale: 'log',
        series: during.map((c) => ({
          label: `${c.index + 1}: ${c.label}`,
          points: c.evalsDuringTraining.filter((e) => e.metrics).map((e) => [e.trainSeconds, e.metrics!.fd.value] as const),
        })),
        hlines: fdFloors(during.flatMap((c) => c.evalsDuringTraining)),
      });
      charts.push('fd-vs-train-time.png');
      md.push('![FD vs training time](fd-vs-train-time.png)', '');
    }
  }

  md.push('## Cells', '');
  for (const c of cells) md.push(`${c.index + 1}. \`${c.label}\` — run folder \`${c.runDir}\`, id \`${c.id}\``);
  md.push('', `All numbers: \`results.json\`. Training time excludes evaluations during training; sampling time excludes feature extraction.`, '');
  const markdown = join(outDir, 'report.md');
  writeFileAtomic(markdown, md.join('\n'));
  return { markdown, charts: charts.map((f) => join(outDir, f)) };
}

/** A path as the report shows it: relative to the working folder when inside it, so committed reports carry no machine paths. */
function shownPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
}
