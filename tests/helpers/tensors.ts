import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

/**
 * Runs `fn` and asserts that it leaves tf.memory().numTensors unchanged.
 * Use around every loop-level piece of work (training steps, samplers).
 * Returns fn's result; a returned tensor is counted as a leak, so return
 * plain data (await t.data()) from fn.
 */
export async function expectNoTensorLeak<T>(fn: () => T | Promise<T>, label = 'function'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  expect(after - before, `${label} leaked ${after - before} tensor(s)`).toBe(0);
  return result;
}

/** Max relative error max|a-b| / max(max|b|, tiny). */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff / Math.max(scale, 1e-12);
}
