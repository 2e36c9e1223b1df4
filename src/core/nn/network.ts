import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../random.js';
import { ParamStore, type NamedVariable, type Scope } from './module.js';

/**
 * The base of a network that owns its variables in one `ParamStore`: the
 * accessors a `DenoiserNetwork`, a checkpoint and a trainer need
 * (`variables`, `buffers`, `named()`, `parameterCount()`), the training-mode
 * flag (dropout and other train-only behaviour; on by default, as in
 * PyTorch) and `dispose`.
 *
 * A subclass checks its arguments *before* `super(name)` where it can (the
 * store takes its root name as soon as it exists: a network that throws
 * after that must dispose it), then builds its layers from `this.scope(rng)`,
 * disposing the store if that throws.
 */
export abstract class Network {
  readonly store: ParamStore;
  private isTraining = true;

  constructor(name: string) {
    this.store = new ParamStore(name);
  }

  /** The root scope for the subclass's layers (initializers draw from `rng`). */
  protected scope(rng: Rng): Scope {
    return this.store.scope(rng);
  }

  /** Trainable variables, in creation order. */
  get variables(): tf.Variable[] {
    return this.store.variables;
  }

  /** Non-trainable state a checkpoint must store too (e.g. Fourier frequencies). */
  get buffers(): tf.Variable[] {
    return this.store.buffers;
  }

  /** Variables and buffers with their stable paths (checkpoint keys). */
  named(): NamedVariable[] {
    return this.store.named();
  }

  /** Trainable scalars. */
  parameterCount(): number {
    return this.store.parameterCount();
  }

  get training(): boolean {
    return this.isTraining;
  }

  setTraining(on: boolean): void {
    this.isTraining = on;
  }

  dispose(): void {
    this.store.dispose();
  }
}

/**
 * The classes of a class-conditional network, checked before it builds
 * anything: `numClasses` (the data source's, from the network context) must
 * be a positive integer when `conditional`, else the network cannot size its
 * class embedding and `Error(message)` is thrown. Undefined when the network
 * is not class-conditional.
 */
export function conditioningClasses(conditional: boolean, numClasses: number | undefined, message: string): number | undefined {
  if (!conditional) return undefined;
  if (numClasses === undefined || !Number.isInteger(numClasses) || numClasses < 1) throw new Error(message);
  return numClasses;
}
