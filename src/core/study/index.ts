/** `difflab bench`: studies over a matrix of run configs, one budget, a sampling matrix, one results file and a report. */
export * from './schema.js';
export * from './results.js';
export * from './runner.js';
export * from './report.js';
export * from './chart.js';
