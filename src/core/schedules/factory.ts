/**
 * `createSchedule(config)`: one small discriminated union, mirrored by the
 * zod run-config schema. Omitted fields take the papers' defaults.
 */
import { edmSchedule, geometricSchedule } from './ve.js';
import { cosineSchedule, linearSchedule, sigmoidSchedule, sqrtSchedule } from './vp.js';
import { SCHEDULE_TYPES, type NoiseSchedule } from './types.js';

export type ScheduleConfig =
  | { readonly type: 'linear'; readonly betaStart?: number; readonly betaEnd?: number; readonly T?: number }
  | { readonly type: 'cosine'; readonly s?: number; readonly T?: number; readonly maxBeta?: number }
  | {
      readonly type: 'sigmoid';
      readonly start?: number;
      readonly end?: number;
      readonly tau?: number;
      readonly T?: number;
      readonly maxBeta?: number;
    }
  | { readonly type: 'sqrt'; readonly s?: number; readonly T?: number; readonly maxBeta?: number }
  | { readonly type: 'geometric'; readonly sigmaMin?: number; readonly sigmaMax?: number; readonly T?: number }
  | { readonly type: 'edm'; readonly sigmaMin?: number; readonly sigmaMax?: number };

export function createSchedule(config: ScheduleConfig): NoiseSchedule {
  switch (config.type) {
    case 'linear':
      return linearSchedule(config);
    case 'cosine':
      return cosineSchedule(config);
    case 'sigmoid':
      return sigmoidSchedule(config);
    case 'sqrt':
      return sqrtSchedule(config);
    case 'geometric':
      return geometricSchedule(config);
    case 'edm':
      return edmSchedule(config);
    default: {
      const type = (config as { type?: unknown }).type;
      throw new Error(`unknown schedule type '${String(type)}'; choose one of: ${SCHEDULE_TYPES.join(', ')}`);
    }
  }
}
