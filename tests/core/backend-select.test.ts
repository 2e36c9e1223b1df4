import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BACKEND_NAMES, backendFromEnv, probeBackends, selectBackend } from '../../src/index.js';

describe('backend selection', () => {
  it('probes every backend in order of preference with a reason each', async () => {
    const reports = await probeBackends();
    expect(reports.map((r) => r.name)).toEqual([...BACKEND_NAMES]);
    for (const r of reports) expect(r.reason.length).toBeGreaterThan(10);
    // The offline default and the reference are always there.
    expect(reports.find((r) => r.name === 'wasm')?.available).toBe(true);
    expect(reports.find((r) => r.name === 'cpu')?.available).toBe(true);
  });

  it('selects the first available backend and says why', async () => {
    const reports = await probeBackends();
    const expected = reports.find((r) => r.available)!;
    const chosen = await selectBackend();
    expect(chosen.name).toBe(expected.name);
    expect(tf.getBackend()).toBe(expected.tfjsName);
    const skipped = reports.slice(0, reports.indexOf(expected)).map((r) => r.name);
    if (skipped.length) expect(chosen.chosenBecause).toContain(skipped.join(', '));
  });

  it('a forced backend is used, and an unavailable or unknown one is a clear error', async () => {
    const cpu = await selectBackend('cpu');
    expect(cpu.chosenBecause).toBe('forced by --backend');
    expect(tf.getBackend()).toBe('cpu');
    const unavailable = (await probeBackends()).find((r) => !r.available);
    if (unavailable) {
      await expect(selectBackend(unavailable.name)).rejects.toThrow(`backend '${unavailable.name}' is not available: ${unavailable.reason}`);
    }
    await expect(selectBackend('tpu')).rejects.toThrow("unknown backend 'tpu'; choose one of: tfjs-node-gpu, tfjs-node, webgpu, wasm, cpu");
  });

  it('reads DIFFLAB_BACKEND and rejects bad values', () => {
    expect(backendFromEnv({ DIFFLAB_BACKEND: 'cpu' })).toBe('cpu');
    expect(backendFromEnv({})).toBeUndefined();
    expect(() => backendFromEnv({ DIFFLAB_BACKEND: 'gpu' })).toThrow('DIFFLAB_BACKEND=gpu is not a backend');
  });

  it('wasm gets difflab training kernels registered', async () => {
    const wasm = await selectBackend('wasm');
    for (const k of wasm.addedKernels) expect(tf.getKernel(k, 'wasm')).toBeDefined();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
  });
});
