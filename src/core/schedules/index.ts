export * from './types.js';
export * from './discrete.js';
export * from './vp.js';
export * from './ve.js';
export * from './factory.js';
export * from './discretize.js';
