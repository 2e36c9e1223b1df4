import * as tf from '@tensorflow/tfjs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AdamW } from '../training/optim.js';
import { fromHost, hostDType, named, toHost, checkShapes } from './host.js';
import type {
  Batch,
  FactorySpec,
  HostTensor,
  NamedHostTensor,
  OptimizerSpec,
  StepContext,
  StepOptions,
  TrainableModel,
} from './types.js';

/**
 * Turns a factory module specifier into one that imports the same module
 * from any thread: paths become file: URLs (relative ones against `cwd`);
 * URLs and package specifiers are kept.
 */
export function resolveModuleSpecifier(spec: string, cwd: string = process.cwd()): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec)) return spec;
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolve(cwd, spec)).href;
  return spec;
}

/** True when the module needs a TypeScript loader to import. */
export function isTypeScriptModule(spec: string): boolean {
  return /\.(c|m)?ts$/i.test(spec.split(/[?#]/)[0] ?? '');
}

export async function loadModel(spec: FactorySpec): Promise<TrainableModel> {
  const specifier = resolveModuleSpecifier(spec.module);
  const exportName = spec.exportName ?? 'default';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`cannot import model factory module '${spec.module}': ${(err as Error).message}`, { cause: err });
  }
  const factory = mod[exportName];
  if (typeof factory !== 'function') {
    const exported = Object.keys(mod).join(', ') || 'nothing';
    throw new Error(`model factory module '${spec.module}' has no function export '${exportName}' (it exports: ${exported})`);
  }
  const model = (await (factory as (o: unknown) => unknown)(spec.options)) as TrainableModel;
  if (!model || !Array.isArray(model.variables) || typeof model.loss !== 'function') {
    throw new Error(`model factory '${exportName}' of '${spec.module}' must return { variables: tf.Variable[], loss(batch, ctx) }`);
  }
  const names = new Set<string>();
  model.variables.forEach((v, i) => {
    if (!(v instanceof tf.Variable)) throw new Error(`model factory '${exportName}': variables[${i}] is not a tf.Variable`);
    if (names.has(v.name)) throw new Error(`model factory '${exportName}': variable name '${v.name}' appears twice`);
    names.add(v.name);
  });
  if (model.variables.length === 0) throw new Error(`model factory '${exportName}' returned no variables`);
  return model;
}

export function validateOptimizer(spec: OptimizerSpec): void {
  const kinds = ['sgd', 'momentum', 'adam', 'adamw', 'rmsprop'];
  if (!spec || !kinds.includes(spec.kind)) {
    throw new Error(`optimizer kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(spec?.kind)}`);
  }
  if (!(Number.isFinite(spec.learningRate) && spec.learningRate > 0)) {
    throw new Error(`optimizer learningRate must be a positive number, got ${spec.learningRate}`);
  }
}

export function checkStepOptions(o: StepOptions | undefined): void {
  if (o?.learningRate !== undefined && !(Number.isFinite(o.learningRate) && o.learningRate >= 0)) {
    throw new Error(`step learningRate must be a non-negative number, got ${o.learningRate}`);
  }
  if (o?.clipGradNorm !== undefined && !(o.clipGradNorm > 0)) {
    throw new Error(`step clipGradNorm must be a positive number, got ${o.clipGradNorm}`);
  }
}

/** Multiplier that clips a gradient of norm `norm` to `maxNorm` (torch's clip_grad_norm_ formula, as core/training/optim). */
export function clipScale(norm: number, maxNorm: number | undefined): number {
  return maxNorm !== undefined && Number.isFinite(maxNorm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

export function makeOptimizer(spec: OptimizerSpec): tf.Optimizer {
  validateOptimizer(spec);
  switch (spec.kind) {
    case 'sgd':
      return tf.train.sgd(spec.learningRate);
    case 'momentum':
      return tf.train.momentum(spec.learningRate, spec.momentum, spec.nesterov ?? false);
    case 'adam':
      return tf.train.adam(spec.learningRate, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon);
    case 'adamw':
      return new AdamW(spec.learningRate, spec.weightDecay ?? 0, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon ?? 1e-8);
    case 'rmsprop':
      return tf.train.rmsprop(spec.learningRate, spec.decay ?? 0.9, spec.momentum ?? 0, spec.epsilon);
  }
}

/**
 * One copy of the model and its optimizer on the current backend: what a
 * worker holds, and what the in-process trainer uses directly.
 */
export class Replica {
  private optimizer: tf.Optimizer;

  private constructor(
    readonly model: TrainableModel,
    private readonly optimizerSpec: OptimizerSpec,
  ) {
    this.optimizer = makeOptimizer(optimizerSpec);
  }

  static async create(factory: FactorySpec, optimizer: OptimizerSpec): Promise<Replica> {
    validateOptimizer(optimizer);
    return new Replica(await loadModel(factory), optimizer);
  }

  get variables(): readonly tf.Variable[] {
    return this.model.variables;
  }

  describe(): { name: string; shape: number[] }[] {
    return this.variables.map((v) => ({ name: v.name, shape: [...v.shape] }));
  }

  get paramCount(): number {
    return this.variables.reduce((n, v) => n + v.size, 0);
  }

  /**
   * Loss and gradients (one per variable, in order) on `batch`. A variable
   * the loss does not reach gets a zero gradient, so every replica and the
   * in-process trainer feed the optimizer the same list. Caller disposes.
   */
  gradients(batch: Batch, ctx: StepContext): { loss: tf.Scalar; grads: tf.Tensor[] } {
    const { value, grads } = tf.variableGrads(() => this.model.loss(batch, ctx), [...this.variables]);
    return { loss: value, grads: this.variables.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
  }

  /** Changes the learning rate of this and later updates. */
  setLearningRate(lr: number): void {
    const opt = this.optimizer as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
    // SGD/momentum/AdamW cache derived tensors and need the method; Adam/RMSProp read the field each update.
    if (typeof opt.setLearningRate === 'function') opt.setLearningRate(lr);
    else opt.learningRate = lr;
  }

  /** Applies one optimizer update; does not dispose `grads`. */
  apply(grads: readonly tf.Tensor[]): void {
    // The array form keeps tfjs's per-variable optimizer slots in our variable order.
    this.optimizer.applyGradients(this.variables.map((v, i) => ({ name: v.name, tensor: grads[i] as tf.Tensor })));
  }

  getWeights(): NamedHostTensor[] {
    return this.variables.map((v) => named(v.name, toHost(v)));
  }

  setWeights(weights: readonly HostTensor[]): void {
    checkShapes('setWeights', this.describe(), weights);
    tf.tidy(() => this.variables.forEach((v, i) => v.assign(fromHost(weights[i] as HostTensor))));
  }

  async getOptimizerState(): Promise<NamedHostTensor[]> {
    const entries = await this.optimizer.getWeights();
    const out = entries.map((e) => named(e.name, toHost(e.tensor)));
    // getWeights makes a fresh scalar for the iteration count; its slots are live variables.
    for (const e of entries) if (!(e.tensor instanceof tf.Variable)) e.tensor.dispose();
    return out;
  }

  async setOptimizerState(state: readonly NamedHostTensor[]): Promise<void> {
    // A fresh optimizer: tfjs's setWeights replaces slot variables without disposing the old ones.
    this.checkOptimizerState(state);
    const next = makeOptimizer(this.optimizerSpec);
    const lr = (this.optimizer as unknown as { learningRate: number }).learningRate;
    if (state.length > 0) {
      const tensors = state.map((s) => ({ name: s.name, tensor: fromHost({ ...s, dtype: hostDType(s.dtype) }) }));
      try {
        await next.setWeights(tensors);
      } catch (err) {
        next.dispose();
        throw err;
      } finally {
        tf.dispose(tensors.map((t) => t.tensor));
      }
    }
    this.optimizer.dispose();
    this.optimizer = next;
    // Keep a learning rate set by a schedule.
    this.setLearningRate(lr);
  }

  /** tfjs optimizer state is positional: [iterations, then groups of one slot per variable]. */
  private checkOptimizerState(state: readonly NamedHostTensor[]): void {
    if (state.length === 0) return;
    const first = state[0] as NamedHostTensor;
    if (first.data.length !== 1) throw new Error('optimizer state: the first entry must be the iteration count (a scalar)');
    const slots = state.slice(1);
    const vars = this.describe();
    if (slots.length % vars.length !== 0) {
      throw new Error(`optimizer state has ${slots.length} slot tensors, not a multiple of the ${vars.length} variables`);
    }
    for (let g = 0; g < slots.length; g += vars.length) {
      checkShapes('optimizer state', vars, slots.slice(g, g + vars.length));
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose?.();
    for (const v of this.variables) if (!v.isDisposed) v.dispose();
  }
}
