import { existsSync, readFileSync } from 'node:fs';
import type { RunConfig } from '../config/load.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { EvaluationReport } from '../metrics/evaluate.js';
import type { BenchFile } from './schema.js';

/**
 * The one results file of a study (`<out>/results.json`): the study's
 * definition and every finished cell, rewritten atomically after each cell,
 * so an interrupted study resumes and skips the cells it already has.
 */
export const RESULTS_VERSION = 1;

export interface LossPoint {
  readonly step: number;
  /** Mean loss over the steps since the previous point. */
  readonly loss: number;
  /** Seconds of training wall-clock at this step (evaluation time excluded). */
  readonly t: number;
  /** Unix time (ms) of the step. */
  readonly at: number;
}

export interface SamplingResult {
  readonly sampler: string;
  readonly steps: number;
  readonly discretization: string;
  /** Network evaluations per sample. */
  readonly nfe: number;
  readonly n: number;
  /** Wall-clock seconds of sampling per generated example (feature extraction excluded). */
  readonly secondsPerSample: number;
  /** FD/KID/IS with floors; absent when the plugin has no feature extractor. */
  readonly metrics?: EvaluationReport;
}

export interface TrainingEval extends SamplingResult {
  readonly step: number;
  /** Training wall-clock seconds when the weights were taken. */
  readonly trainSeconds: number;
}

export interface CellTraining {
  readonly steps: number;
  /** Training wall-clock seconds (evaluations during training excluded). */
  readonly seconds: number;
  readonly secondsPerStep: number;
  readonly medianStepSeconds: number;
  /** What ended training: the step budget (or the config's train.steps under a time budget) or the time budget. */
  readonly stoppedBy: 'steps' | 'seconds';
  readonly finalLoss: number;
  readonly curve: readonly LossPoint[];
  /** Seconds from the start of the cell to the end of training (setup and evaluations included). */
  readonly wallSeconds: number;
  readonly workers: number;
}

export interface CellResult {
  readonly id: string;
  readonly index: number;
  readonly label: string;
  readonly assignments: Readonly<Record<string, unknown>>;
  /** The expanded, validated run config of the cell (train.steps = the step budget). */
  readonly config: RunConfig;
  /** The cell's run folder (checkpoints, metrics.jsonl), relative to the study folder. */
  readonly runDir: string;
  readonly train: CellTraining;
  /** The feature extractor's id, or null when the plugin has none (loss and timing only). */
  readonly features: string | null;
  readonly evalsDuringTraining: readonly TrainingEval[];
  readonly sampling: readonly SamplingResult[];
  /** Where the timings were taken (cells of a resumed study may come from different runs). */
  readonly machine: { readonly backend: string; readonly cpus: number; readonly cpuModel: string };
  /** Why training failed (e.g. a non-finite loss); the cell then has no sampling results. */
  readonly error?: string;
  readonly completedAt: string;
}

export interface StudyResults {
  readonly version: number;
  readonly name: string;
  readonly benchFile: string;
  readonly baseFile: string;
  readonly modality: string;
  /** Hash of budget, sampling matrix and eval settings: cells are comparable only under one. */
  readonly fingerprint: string;
  readonly bench: BenchFile;
  readonly backend: string;
  readonly startedAt: string;
  updatedAt: string;
  cells: CellResult[];
}

export function readResults(file: string): StudyResults | undefined {
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable results file (${(err as Error).message.split('\n')[0]}); move it away to start over`);
  }
  const r = parsed as Partial<StudyResults>;
  if (typeof r !== 'object' || r === null || r.version !== RESULTS_VERSION || !Array.isArray(r.cells) || typeof r.fingerprint !== 'string') {
    throw new Error(`${file}: not a difflab study results file (version ${RESULTS_VERSION}); move it away to start over`);
  }
  return r as StudyResults;
}

export function writeResults(file: string, results: StudyResults): void {
  writeFileAtomic(file, `${JSON.stringify(results, null, 2)}\n`);
}
