import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { registerConvGradients } from './kernels/conv-gradients.js';
import { registerNativeKernels } from './native-kernels.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

/**
 * Where tensors live. One module decides, in this order of preference:
 * native TensorFlow with CUDA, native TensorFlow on the CPU, WebGPU (Dawn),
 * WebAssembly (the offline default, completed for training by difflab's own
 * kernels) and the pure-JS `cpu` backend (the reference tests compare with).
 */
export const BACKEND_NAMES = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendReport {
  readonly name: BackendName;
  /** The name tfjs registers the backend under. */
  readonly tfjsName: string;
  readonly available: boolean;
  /** Why it is (or is not) available, in one line. */
  readonly reason: string;
}

export interface SelectedBackend extends BackendReport {
  /** Why this one was chosen. */
  readonly chosenBecause: string;
  /** Kernels difflab registered on top of the backend (wasm: training kernels; native TensorFlow: padding wrappers). */
  readonly addedKernels: readonly string[];
}

const TFJS_NAME: Record<BackendName, string> = {
  'tfjs-node-gpu': 'tensorflow',
  'tfjs-node': 'tensorflow',
  webgpu: 'webgpu',
  wasm: 'wasm',
  cpu: 'cpu',
};

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

const require = createRequire(import.meta.url);

function packageInstalled(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]?.trim() ?? 'unknown error';
}

const NATIVE_HINT: Record<NativePackage, string> = {
  '@tensorflow/tfjs-node': 'run `npm run install:native` (builds it from the tensorflow-cpu wheel on PyPI, no other download)',
  '@tensorflow/tfjs-node-gpu': 'its installer downloads libtensorflow (CUDA) from a host that must be reachable at install time',
};
type NativePackage = '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node';

/** The TensorFlow version behind the active 'tensorflow' backend, when it says. */
function nativeTfVersion(): string | undefined {
  const backend = tf.findBackend('tensorflow') as { binding?: { TF_Version?: unknown } } | null;
  const v = backend?.binding?.TF_Version;
  return typeof v === 'string' ? v : undefined;
}

/** Loads a native tfjs-node package; resolves to a reason string when it cannot. */
async function loadNative(pkg: NativePackage): Promise<string | null> {
  if (!packageInstalled(pkg)) return `${pkg} is not installed: ${NATIVE_HINT[pkg]}`;
  // TensorFlow's C++ logging reads this when the library loads: keep its INFO/WARNING lines off every command.
  process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';
  try {
    await import(pkg);
  } catch (err) {
    return `${pkg} is installed but failed to load: ${firstLine(err)}`;
  }
  if (!tf.engine().registryFactory['tensorflow']) return `${pkg} loaded but registered no 'tensorflow' backend`;
  return null;
}

let webgpuProbe: Promise<string | null> | undefined;

/**
 * Finds a WebGPU adapter through the `webgpu` package (Dawn); null when found.
 * The adapter search runs in a child process first: Dawn prints its driver
 * warnings straight to file descriptor 2, which would litter every command
 * on machines without a GPU.
 */
function probeWebGPU(): Promise<string | null> {
  webgpuProbe ??= (async () => {
    if (!packageInstalled('webgpu')) return 'the optional `webgpu` package is not installed';
    const entry = pathToFileURL(require.resolve('webgpu')).href;
    const script = `const { create } = await import(${JSON.stringify(entry)});
const a = await create([]).requestAdapter();
process.stdout.write(JSON.stringify({ found: !!a }));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    let found = false;
    try {
      found = (JSON.parse(child.stdout) as { found: boolean }).found;
    } catch {
      const why = child.stderr.split('\n').find((l) => l.trim() !== '') ?? `exit code ${child.status}`;
      return `WebGPU probe failed: ${why.trim()}`;
    }
    if (!found) {
      const vulkan = /Couldn't load Vulkan[^\n]*/.exec(child.stderr)?.[0];
      return `Dawn found no GPU adapter${vulkan ? ` (${vulkan.replace(/^Warning: /, '')})` : ''}`;
    }
    try {
      const { create, globals } = (await import('webgpu')) as unknown as {
        create: (flags: string[]) => unknown;
        globals: Record<string, unknown>;
      };
      Object.assign(globalThis, globals);
      const gpu = create([]);
      const nav = (globalThis as { navigator?: Record<string, unknown> }).navigator;
      if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
      else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
      await import('@tensorflow/tfjs-backend-webgpu');
      return null;
    } catch (err) {
      return `WebGPU init failed: ${firstLine(err)}`;
    }
  })();
  return webgpuProbe;
}

let wasmLoaded = false;
async function loadWasm(): Promise<string | null> {
  try {
    if (!wasmLoaded) {
      await import('@tensorflow/tfjs-backend-wasm');
      wasmLoaded = true;
    }
    return null;
  } catch (err) {
    return `@tensorflow/tfjs-backend-wasm failed to load: ${firstLine(err)}`;
  }
}

async function probe(name: BackendName): Promise<BackendReport> {
  let problem: string | null;
  let okReason: string;
  switch (name) {
    case 'tfjs-node-gpu':
      problem = await loadNative('@tensorflow/tfjs-node-gpu');
      okReason = 'native TensorFlow with CUDA';
      break;
    case 'tfjs-node':
      problem = await loadNative('@tensorflow/tfjs-node');
      okReason = problem === null && nativeTfVersion() ? `native TensorFlow ${nativeTfVersion()} (CPU)` : 'native TensorFlow (CPU)';
      break;
    case 'webgpu':
      problem = await probeWebGPU();
      okReason = 'WebGPU adapter found through Dawn';
      break;
    case 'wasm':
      problem = await loadWasm();
      okReason = 'WebAssembly (SIMD) with difflab training kernels; all cores via data-parallel workers';
      break;
    case 'cpu':
      problem = null;
      okReason = 'pure-JS reference backend (slow; used for correctness checks)';
      break;
  }
  return { name, tfjsName: TFJS_NAME[name], available: problem === null, reason: problem ?? okReason };
}

/** Probes every backend, in order of preference. Loads the packages it can. */
export async function probeBackends(): Promise<BackendReport[]> {
  const reports: BackendReport[] = [];
  for (const name of BACKEND_NAMES) reports.push(await probe(name));
  return reports;
}

/** The backend asked for by DIFFLAB_BACKEND, if any (validated). */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  const raw = env['DIFFLAB_BACKEND'];
  if (raw === undefined || raw === '') return undefined;
  if (!isBackendName(raw)) {
    throw new Error(`DIFFLAB_BACKEND=${raw} is not a backend; choose one of: ${BACKEND_NAMES.join(', ')}`);
  }
  return raw;
}

let current: SelectedBackend | undefined;

/** The backend chosen by the last useBackend/selectBackend call. */
export function currentBackend(): SelectedBackend | undefined {
  return current;
}

/**
 * Activates one backend by name (an unavailable one is an error naming why),
 * or, with no name, the first available in order of preference.
 * `DIFFLAB_BACKEND` is honoured when no name is given.
 */
export async function selectBackend(forced?: string): Promise<SelectedBackend> {
  const requested = forced ?? backendFromEnv();
  let report: BackendReport | undefined;
  let chosenBecause: string;
  if (requested !== undefined) {
    if (!isBackendName(requested)) {
      throw new Error(`unknown backend '${requested}'; choose one of: ${BACKEND_NAMES.join(', ')}`);
    }
    report = await probe(requested);
    if (!report.available) throw new Error(`backend '${requested}' is not available: ${report.reason}`);
    chosenBecause = forced !== undefined ? 'forced by --backend' : 'forced by DIFFLAB_BACKEND';
  } else {
    const skipped: string[] = [];
    for (const name of BACKEND_NAMES) {
      const r = await probe(name);
      if (r.available) {
        report = r;
        break;
      }
      skipped.push(name);
    }
    if (!report) throw new Error('no tfjs backend is available');
    chosenBecause =
      skipped.length === 0 ? 'first in order of preference' : `first available (not available: ${skipped.join(', ')})`;
  }
  const ok = await tf.setBackend(report.tfjsName);
  if (!ok) throw new Error(`backend '${report.name}' failed to initialize`);
  await tf.ready();
  const addedKernels =
    report.name === 'wasm' ? registerWasmTrainingKernels() : report.tfjsName === 'tensorflow' ? registerNativeKernels() : [];
  // tfjs's own Conv2D / depthwise gradients reject dilations; difflab's handle them on every backend (DiffWave needs
  // them on native TensorFlow too). Gradients are global, so they are installed whichever backend comes first.
  registerConvGradients();
  current = { ...report, chosenBecause, addedKernels };
  return current;
}

/** Shorthand for tests and scripts: activate exactly this backend. */
export async function useBackend(name: BackendName): Promise<SelectedBackend> {
  return selectBackend(name);
}
