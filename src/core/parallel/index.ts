export * from './types.js';
export { DataParallelTrainer, WorkerError, type DataParallelOptions } from './data-parallel-trainer.js';
export { LocalTrainer, type LocalTrainerOptions } from './local-trainer.js';
export { shardSizes } from './host.js';
export type { WorkerBackend } from './protocol.js';
