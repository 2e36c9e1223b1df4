import { resolve } from 'node:path';
import type { Command } from 'commander';
import { selectBackend } from '../core/backend/select.js';
import type { PluginRegistry } from '../core/plugin.js';
import { loadStudy, readResults, runStudy, writeStudyReport, type StudyDeps } from '../core/study/index.js';
import { createDifflab } from '../container.js';

/**
 * `difflab bench <bench.yaml>`: a study over a matrix of run configs (see
 * src/core/study/schema.ts for the bench file). Registered on the main
 * program by `registerBenchCommand(program)`.
 */
export interface BenchCommandOptions {
  /** The plugins (default: createDifflab().plugins). Tests pass a registry with their own plugins. */
  readonly registry?: () => PluginRegistry;
  /** Overrides of the runner's injected functions (tests). */
  readonly deps?: Omit<StudyDeps, 'registry'>;
  /** Where progress and the summary go (default: stderr / stdout). */
  readonly log?: (line: string) => void;
  readonly print?: (line: string) => void;
}

export function registerBenchCommand(program: Command, options: BenchCommandOptions = {}): Command {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  return program
    .command('bench')
    .description('run a study: train every cell of a config matrix with one budget, evaluate it over a sampling matrix, write results.json and report.md')
    .argument('<bench>', 'bench file, e.g. configs/studies/schedules.yaml')
    .option('--out <dir>', 'study folder (default: the bench file\'s `out`, else runs/studies/<name>)')
    .option('--features <model>', 'a tfjs model.json to use as the feature network instead of the plugin\'s default')
    .option('--dry-run', 'validate the bench file and list its cells, without training')
    .option('--report-only', 'rewrite report.md and the charts from results.json, without training')
    .action(async (file: string, opts: { out?: string; features?: string; dryRun?: boolean; reportOnly?: boolean }) => {
      const registry = (options.registry ?? (() => createDifflab().plugins))();
      const study = loadStudy(file, registry, opts.out ? { out: opts.out } : {});
      if (opts.dryRun) {
        print(`${study.name}: ${study.cells.length} training cell(s) x ${Math.max(study.sampling.length, 1)} sampling setting(s); out ${study.out}`);
        for (const c of study.cells) print(`  ${c.index + 1}. ${c.label}  (${c.slug})`);
        return;
      }
      if (opts.reportOnly) {
        const results = readResults(resolve(study.out, 'results.json'));
        if (!results) throw new Error(`${resolve(study.out, 'results.json')}: no results yet; run difflab bench ${file} first`);
        const report = await writeStudyReport(results, study.out);
        print(`report: ${report.markdown}`);
        return;
      }
      // --backend wins over DIFFLAB_BACKEND, which wins over the base config's `backend`.
      const forced = program.opts<{ backend?: string }>().backend;
      const fromConfig = study.cells[0]!.config.backend;
      const backend = await selectBackend(forced ?? (process.env['DIFFLAB_BACKEND'] || fromConfig === 'auto' ? undefined : fromConfig));
      const r = await runStudy(study, {
        ...options.deps,
        registry,
        log,
        backend: backend.name,
        ...(opts.features ? { featureModel: opts.features } : {}),
      });
      print(`study ${study.name}: ${r.ran.length} cell(s) run, ${r.skipped.length} taken from ${r.resultsFile}`);
      print(`results: ${r.resultsFile}`);
      print(`report: ${r.report.markdown}`);
    });
}
