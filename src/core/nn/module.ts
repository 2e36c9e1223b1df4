import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../random.js';

/**
 * A tiny variable-owning module system, shared by every plugin's networks.
 *
 * A network is built by passing `Scope`s down a tree of layers; each layer
 * creates its variables through its scope. Everything lands in one
 * `ParamStore`, in creation order, which is what a `DenoiserNetwork`
 * exposes as `variables` and what disposes them.
 *
 * Names. Each variable has a *path* relative to its network, in PyTorch
 * state_dict style (`down.0.res.1.conv1.weight`): stable across runs and
 * processes, so checkpoints can key tensors by it. tfjs needs variable names
 * that are unique in the whole engine, so the tfjs name is
 * `<root>/<path>`, where `<root>` is the network's name made unique like
 * Keras does (`unet`, then `unet_1` while `unet` is alive). `relativeName`
 * maps a tfjs name back to the path.
 *
 * Randomness. Every initializer draws from the scope's `Rng` (never
 * tf.random*), so the same seed gives bit-identical weights on every backend.
 */

/** Roots of the stores alive in this process (variables may not exist yet). */
const liveRoots = new Set<string>();

function rootTaken(root: string): boolean {
  if (liveRoots.has(root)) return true;
  const prefix = `${root}/`;
  return Object.keys(tf.engine().registeredVariables).some((n) => n.startsWith(prefix));
}

function checkSegment(name: string, what: string): void {
  if (!/^[A-Za-z0-9_]+$/.test(name)) {
    throw new Error(`${what} '${name}' must be letters, digits and '_' (no '.', '/' or spaces)`);
  }
}

export interface NamedVariable {
  /** Path relative to the network, e.g. `mid.attn.qkv.weight`. */
  readonly path: string;
  readonly variable: tf.Variable;
}

/** Owns the variables of one network. */
export class ParamStore {
  /** The unique prefix of this store's tfjs variable names. */
  readonly root: string;
  private readonly entries: { path: string; variable: tf.Variable }[] = [];
  private readonly paths = new Set<string>();
  private disposed = false;

  constructor(name: string) {
    checkSegment(name, 'network name');
    let root = name;
    for (let i = 1; rootTaken(root); i++) root = `${name}_${i}`;
    this.root = root;
    liveRoots.add(root);
  }

  /** The root scope of this store. */
  scope(rng: Rng): Scope {
    return new Scope(this, '', rng);
  }

  /**
   * Registers `init` as a variable at `path` (takes ownership of `init`:
   * it is disposed after copying into the variable).
   */
  add(path: string, init: tf.Tensor, trainable: boolean): tf.Variable {
    const problem = this.disposed
      ? `ParamStore '${this.root}' is disposed`
      : this.paths.has(path)
        ? `ParamStore '${this.root}': two variables at path '${path}'`
        : undefined;
    if (problem !== undefined) {
      init.dispose();
      throw new Error(problem);
    }
    const variable = tf.variable(init, trainable, `${this.root}/${path}`);
    init.dispose();
    this.paths.add(path);
    this.entries.push({ path, variable });
    return variable;
  }

  /** Trainable variables, in creation order. */
  get variables(): tf.Variable[] {
    return this.entries.filter((e) => e.variable.trainable).map((e) => e.variable);
  }

  /**
   * Non-trainable state that is still part of the model (PyTorch "buffers"),
   * e.g. the fixed random Fourier frequencies: a checkpoint must store these
   * too, or a model rebuilt from another seed computes a different function.
   */
  get buffers(): tf.Variable[] {
    return this.entries.filter((e) => !e.variable.trainable).map((e) => e.variable);
  }

  /** Every variable (trainable first in creation order, then buffers) with its path. */
  named(): NamedVariable[] {
    const t = this.entries.filter((e) => e.variable.trainable);
    const b = this.entries.filter((e) => !e.variable.trainable);
    return [...t, ...b].map((e) => ({ path: e.path, variable: e.variable }));
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.variables.reduce((n, v) => n + v.size, 0);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const e of this.entries) if (!e.variable.isDisposed) e.variable.dispose();
    liveRoots.delete(this.root);
  }
}

/** A position in a network's tree of layers: where the next variables go. */
export class Scope {
  constructor(
    readonly store: ParamStore,
    /** Dotted path of this scope ('' at the root). */
    readonly path: string,
    /** The stream every initializer under this scope draws from. */
    readonly rng: Rng,
  ) {}

  /** A child scope (`name` may be an index, as in PyTorch's ModuleList). */
  child(name: string | number): Scope {
    const seg = String(name);
    checkSegment(seg, 'scope name');
    return new Scope(this.store, this.path === '' ? seg : `${this.path}.${seg}`, this.rng);
  }

  /** The full path of a variable named `name` here; disposes `init` when the name is bad. */
  private pathOf(name: string, init: tf.Tensor): string {
    try {
      checkSegment(name, 'variable name');
    } catch (err) {
      init.dispose();
      throw err;
    }
    return this.path === '' ? name : `${this.path}.${name}`;
  }

  /** A trainable variable initialized from `init` (ownership of `init` passes to the store). */
  param(name: string, init: tf.Tensor): tf.Variable {
    return this.store.add(this.pathOf(name, init), init, true);
  }

  /** A non-trainable variable (a buffer; see ParamStore.buffers). */
  buffer(name: string, init: tf.Tensor): tf.Variable {
    return this.store.add(this.pathOf(name, init), init, false);
  }
}

/** The path of a variable relative to its network (its tfjs name without `<root>/`). */
export function relativeName(variable: tf.Variable | string): string {
  const name = typeof variable === 'string' ? variable : variable.name;
  const i = name.indexOf('/');
  return i < 0 ? name : name.slice(i + 1);
}
