import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { useBackend } from '../../src/core/backend/select.js';
import { Rng } from '../../src/core/random.js';
import { maxRelError } from './tensors.js';

/** Moves every variable off its (partly zero) initialization, deterministically, so all paths carry signal. */
export function perturbVariables(variables: readonly tf.Variable[], seed: number, scale = 0.2): void {
  const rng = new Rng(seed);
  tf.tidy(() => {
    for (const v of variables) v.assign(tf.add(v, tf.mul(rng.normalTensor(v.shape), scale)));
  });
}

/** A network and its inputs, built on the active backend by a gradient check. */
export interface GradCheckCase {
  readonly variables: readonly tf.Variable[];
  /** The network's output on the fixed inputs. */
  forward(): tf.Tensor;
  /** The loss is sum(forward() * weight): every output element gets its own weight. */
  readonly weight: tf.Tensor;
  /** Frees the network and the inputs. */
  dispose(): void;
}

/** Outputs and per-variable gradients (by tfjs name, in variable order) on one backend. */
export interface GradCheckRun {
  readonly y: Float32Array;
  readonly grads: readonly { readonly name: string; readonly g: Float32Array }[];
}

async function runOn(backend: 'wasm' | 'cpu', build: () => GradCheckCase): Promise<GradCheckRun> {
  await useBackend(backend);
  const c = build();
  const f = () => tf.sum(tf.mul(c.forward(), c.weight)) as tf.Scalar;
  const y = c.forward();
  const { value, grads } = tf.variableGrads(f, [...c.variables]);
  const result = {
    y: Float32Array.from(y.dataSync() as Float32Array),
    grads: c.variables.map((v) => ({ name: v.name, g: Float32Array.from(grads[v.name]!.dataSync() as Float32Array) })),
  };
  tf.dispose([y, value, ...Object.values(grads)]);
  c.dispose();
  return result;
}

/**
 * Builds the same case (`build` must be deterministic) on wasm and on cpu
 * and expects the outputs and the gradient of every variable to agree
 * (relative error below `tolerance`, the worst variable named on failure).
 * Leaves wasm active; returns both runs for further checks.
 */
export async function expectWasmGradientsMatchCpu(build: () => GradCheckCase, tolerance = 1e-4): Promise<{ wasm: GradCheckRun; cpu: GradCheckRun }> {
  const wasm = await runOn('wasm', build);
  const cpu = await runOn('cpu', build);
  await useBackend('wasm');
  expect(maxRelError(wasm.y, cpu.y)).toBeLessThan(tolerance);
  expect(wasm.grads.map((g) => g.name)).toEqual(cpu.grads.map((g) => g.name));
  const worst = wasm.grads.map((g, i) => ({ name: g.name, err: maxRelError(g.g, cpu.grads[i]!.g) })).sort((p, q) => q.err - p.err)[0]!;
  expect(worst.err, `worst gradient: ${worst.name}`).toBeLessThan(tolerance);
  return { wasm, cpu };
}
