import * as tf from '@tensorflow/tfjs';
import { diffusionFromConfig, type SampleConfig } from './config/diffusion.js';
import type { RunConfig } from './config/load.js';
import { classifierFreeGuidance } from './guidance.js';
import { pfOdeLogLikelihood } from './likelihood.js';
import { makeDenoiser } from './parametrizations.js';
import type { HostTensor, NamedHostTensor } from './parallel/types.js';
import type { AnyModalityPlugin, DenoiserNetwork } from './plugin.js';
import { Rng } from './random.js';
import { countNfe, getSampler } from './samplers/index.js';
import type { StepInfo } from './samplers/common.js';
import { sigmasFor } from './schedules/discretize.js';
import type { Conditioning, Denoiser } from './types.js';

/**
 * Turning a trained run into samples: rebuild the plugin's network, load
 * (EMA) weights, wrap it with the configured parametrization into a
 * Denoiser, optionally with classifier-free guidance, and run any sampler on
 * any discretization of the schedule.
 */
export interface LoadedModel {
  readonly net: DenoiserNetwork;
  readonly denoiser: Denoiser;
  readonly config: RunConfig;
  readonly exampleShape: readonly number[];
  readonly numClasses?: number;
  dispose(): void;
}

export function loadModel(
  plugin: AnyModalityPlugin,
  config: RunConfig,
  info: { exampleShape: readonly number[]; numClasses?: number },
  weights: readonly NamedHostTensor[],
): LoadedModel {
  const parts = diffusionFromConfig(config.diffusion);
  const net = plugin.createNetwork(config.model, {
    exampleShape: info.exampleShape,
    rng: new Rng(config.seed),
    ...(info.numClasses !== undefined ? { numClasses: info.numClasses } : {}),
  });
  net.setTraining?.(false);
  if (weights.length !== net.variables.length) {
    net.dispose();
    throw new Error(`checkpoint has ${weights.length} tensors but the network has ${net.variables.length} variables`);
  }
  tf.tidy(() =>
    net.variables.forEach((v, i) => {
      const w = weights[i] as HostTensor;
      if (w.shape.length !== v.shape.length || w.shape.some((d, j) => d !== v.shape[j])) {
        throw new Error(`checkpoint tensor ${i} has shape [${w.shape.join(', ')}], the network expects [${v.shape.join(', ')}] for ${v.name}`);
      }
      v.assign(tf.tensor(w.data, [...w.shape], v.dtype));
    }),
  );
  const denoiser = makeDenoiser((x, c, cond) => net.apply(x, c, cond), parts.parametrization);
  return {
    net,
    denoiser,
    config,
    exampleShape: info.exampleShape,
    ...(info.numClasses !== undefined ? { numClasses: info.numClasses } : {}),
    dispose: () => net.dispose(),
  };
}

export interface GenerateOptions {
  readonly n: number;
  readonly seed: number;
  /** Overrides of the config's `sample` section. */
  readonly sample?: Partial<SampleConfig>;
  /** Class to generate (class-conditional models); undefined = unconditional (null class). */
  readonly classId?: number;
  readonly onStep?: (info: StepInfo) => void;
}

export interface GenerateResult {
  /** Samples [n, ...exampleShape] in diffusion space. The caller disposes. */
  readonly x: tf.Tensor;
  readonly sigmas: number[];
  readonly nfe: number;
  readonly sampler: string;
}

export function generate(model: LoadedModel, options: GenerateOptions): GenerateResult {
  const s: SampleConfig = { ...model.config.sample, ...options.sample } as SampleConfig;
  const { schedule } = diffusionFromConfig(model.config.diffusion);
  const sigmas = sigmasFor(s.discretization, schedule, s.steps, { rho: s.rho });
  const sampler = getSampler(s.sampler);
  const rng = new Rng(options.seed);
  let denoiser = model.denoiser;
  let cond: Conditioning | undefined;
  const owned: tf.Tensor[] = [];
  const { numClasses } = model;
  if (options.classId !== undefined) {
    if (numClasses === undefined) throw new Error('this model has no classes; sample without --class');
    if (!Number.isInteger(options.classId) || options.classId < 0 || options.classId >= numClasses) {
      throw new Error(`--class must be an integer in 0..${numClasses - 1}, got ${options.classId}`);
    }
    cond = { labels: tf.fill([options.n], options.classId, 'int32') as tf.Tensor1D };
    if (s.guidance !== 1) {
      const nullLabels = tf.fill([1], numClasses, 'int32') as tf.Tensor1D;
      owned.push(nullLabels);
      const guided = classifierFreeGuidance(model.denoiser, s.guidance, { labels: nullLabels });
      denoiser = guided;
    }
  } else if (numClasses !== undefined) {
    cond = { labels: tf.fill([options.n], numClasses, 'int32') as tf.Tensor1D };
  }
  const noise = rng.normalTensor([options.n, ...model.exampleShape]);
  const x0 = tf.mul(noise, sigmas[0] as number);
  noise.dispose();
  try {
    const opts = { ...camelOptions(s.options), rng, ...(cond ? { cond } : {}) };
    const x = sampler(denoiser, x0, sigmas, opts, options.onStep);
    return { x, sigmas, nfe: countNfe(s.sampler, sigmas, opts), sampler: s.sampler };
  } finally {
    x0.dispose();
    if (cond?.labels) cond.labels.dispose();
    tf.dispose(owned);
  }
}

function camelOptions(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v]));
}

export interface DataLikelihoodOptions {
  /** RK4 steps of the probability-flow ODE. */
  readonly steps: number;
  /** Hutchinson probes per point (the exact divergence is used for d <= 64). */
  readonly probes: number;
  readonly seed: number;
  /** Grid spacing of quantized data: adds uniform dequantization noise and reports discrete bits/dim. */
  readonly quantizationStep?: number;
  readonly labels?: tf.Tensor1D;
}

export interface DataLikelihoodResult {
  /** Continuous bits per dimension of the (dequantized) data in diffusion space, per point. */
  readonly bitsPerDim: number[];
  /** Discrete bits per dimension (when quantizationStep is given): -log2 P(bin) / d. */
  readonly discreteBitsPerDim?: number[];
  /** Standard error of each point's estimate (Hutchinson), in bits/dim. */
  readonly standardError: number[];
  readonly dim: number;
  readonly nfe: number;
}

/**
 * Log-likelihood of data under a model's probability-flow ODE (Song et al.
 * 2021, https://arxiv.org/abs/2011.13456, appendix D.2). Quantized data are
 * dequantized with uniform noise over one grid cell (Theis et al. 2016,
 * https://arxiv.org/abs/1511.01844 sec. 3.1), so -log2 p(x + u) - d log2(step)
 * is an upper bound on the discrete negative log-likelihood in bits.
 */
export async function dataLikelihood(model: LoadedModel, x: tf.Tensor, options: DataLikelihoodOptions): Promise<DataLikelihoodResult> {
  const { schedule } = diffusionFromConfig(model.config.diffusion);
  const rng = new Rng(options.seed);
  const step = options.quantizationStep;
  const xq = step ? tf.tidy(() => tf.add(x, tf.mul(tf.sub(rng.uniformTensor(x.shape), 0.5), step))) : x.clone();
  const B = x.shape[0] as number;
  const d = x.size / B;
  let cond: Conditioning | undefined;
  if (model.numClasses !== undefined) {
    cond = { labels: (options.labels?.clone() ?? tf.fill([B], model.numClasses, 'int32')) as tf.Tensor1D };
  }
  try {
    const r = await pfOdeLogLikelihood(model.denoiser, xq, {
      sigmaMin: schedule.sigmaMin,
      sigmaMax: schedule.sigmaMax,
      steps: options.steps,
      divergence: d <= 64 ? 'exact' : 'hutchinson',
      probes: options.probes,
      rng,
      prior: schedule.kind === 'vp' ? 'vp' : 've',
      ...(cond ? { cond } : {}),
    });
    const ln2d = Math.LN2 * d;
    const bitsPerDim = Array.from(r.logLikelihood, (l) => -l / ln2d);
    return {
      bitsPerDim,
      ...(step ? { discreteBitsPerDim: Array.from(r.logLikelihood, (l) => -(l + d * Math.log(step)) / ln2d) } : {}),
      standardError: Array.from(r.standardError, (e) => e / ln2d),
      dim: d,
      nfe: r.nfe,
    };
  } finally {
    xq.dispose();
    if (cond?.labels) cond.labels.dispose();
  }
}
