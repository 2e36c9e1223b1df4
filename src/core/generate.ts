import * as tf from '@tensorflow/tfjs';
import { diffusionFromConfig, type SampleConfig } from './config/diffusion.js';
import type { RunConfig } from './config/load.js';
import { projectDenoised, repaint, replaceKnown, type KnownValues } from './constraints.js';
import { classifierFreeGuidance } from './guidance.js';
import { pfOdeLogLikelihood } from './likelihood.js';
import { makeDenoiser } from './parametrizations.js';
import type { HostTensor, NamedHostTensor } from './parallel/types.js';
import type { AnyModalityPlugin, DenoiserNetwork, ExampleInfo } from './plugin.js';
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
  /** The data source's dataShape / dataInfo (models with a learned encoding). */
  readonly dataShape?: readonly number[];
  readonly dataInfo?: unknown;
  dispose(): void;
}

export function loadModel(plugin: AnyModalityPlugin, config: RunConfig, info: ExampleInfo, weights: readonly NamedHostTensor[]): LoadedModel {
  const parts = diffusionFromConfig(config.diffusion);
  const facts = {
    ...(info.dataShape !== undefined ? { dataShape: info.dataShape } : {}),
    ...(info.dataInfo !== undefined ? { dataInfo: info.dataInfo } : {}),
  };
  const net = plugin.createNetwork(config.model, {
    exampleShape: info.exampleShape,
    rng: new Rng(config.seed),
    ...(info.numClasses !== undefined ? { numClasses: info.numClasses } : {}),
    ...facts,
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
    ...facts,
    dispose: () => net.dispose(),
  };
}

/**
 * Samples in the space the plugin's writers and metrics read: the network's
 * rounding (LearnedEncoding.decode) for models that learn their encoding,
 * else x itself (not a copy). The caller disposes a decoded result.
 */
export function toDataSpace(model: Pick<LoadedModel, 'net'>, x: tf.Tensor): tf.Tensor {
  return model.net.encoding ? tf.tidy(() => model.net.encoding!.decode(x)) : x;
}

export interface GenerateOptions {
  readonly n: number;
  readonly seed: number;
  /** Overrides of the config's `sample` section. */
  readonly sample?: Partial<SampleConfig>;
  /** Class to generate (class-conditional models); undefined = unconditional (null class). */
  readonly classId?: number;
  /**
   * One class per sample (length n), e.g. a class-balanced evaluation set;
   * exclusive with `classId`. Guidance applies as with `classId`.
   */
  readonly classIds?: readonly number[];
  /**
   * Known parts of the samples in diffusion space (infilling, inpainting),
   * imposed by replacement (core/constraints.ts); `values` and `mask` have
   * batch 1 or n.
   */
  readonly known?: KnownValues;
  /**
   * With `known`: RePaint's resampling (core/constraints.ts `repaint`), U
   * tries per step at U times the cost; 1 (default) is replacement only.
   */
  readonly resample?: number;
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
  if (options.classId !== undefined && options.classIds !== undefined) throw new Error('generate: give classId or classIds, not both');
  const classIds = options.classIds ?? (options.classId !== undefined ? [options.classId] : undefined);
  if (classIds !== undefined) {
    if (numClasses === undefined) throw new Error('this model has no classes; sample without --class');
    for (const c of classIds) {
      if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw new Error(`--class must be an integer in 0..${numClasses - 1}, got ${c}`);
    }
    if (options.classIds !== undefined && options.classIds.length !== options.n) {
      throw new Error(`generate: ${options.classIds.length} classIds for n = ${options.n} samples`);
    }
    cond = { labels: tf.tensor1d(options.classIds ? [...options.classIds] : new Array<number>(options.n).fill(options.classId!), 'int32') };
    if (s.guidance !== 1) {
      const nullLabels = tf.fill([1], numClasses, 'int32') as tf.Tensor1D;
      owned.push(nullLabels);
      const guided = classifierFreeGuidance(model.denoiser, s.guidance, { labels: nullLabels });
      denoiser = guided;
    }
  } else if (numClasses !== undefined) {
    cond = { labels: tf.fill([options.n], numClasses, 'int32') as tf.Tensor1D };
  }
  if (s.clamp) {
    const project = model.net.encoding?.project;
    if (!project) throw new Error('sample.clamp needs a network with a learned encoding that can project (e.g. the text plugin\'s embeddings)');
    denoiser = projectDenoised(denoiser, (x0) => project.call(model.net.encoding, x0));
  }
  // Known values go last, so they win over the clamp at their positions.
  if (options.known) denoiser = replaceKnown(denoiser, options.known);
  if (options.resample !== undefined && options.resample > 1 && !options.known) throw new Error('generate: resample needs known values (infilling or inpainting)');
  const noise = rng.normalTensor([options.n, ...model.exampleShape]);
  const x0 = tf.mul(noise, sigmas[0] as number);
  noise.dispose();
  try {
    const opts = { ...camelOptions(s.options), rng, ...(cond ? { cond } : {}) };
    const run = options.known && (options.resample ?? 1) > 1 ? repaint(sampler, options.known, { resample: options.resample!, rng: Rng.derive(options.seed, 0x72657061) }) : sampler;
    const x = run(denoiser, x0, sigmas, opts, options.onStep);
    const tries = run === sampler ? 1 : options.resample!;
    return { x, sigmas, nfe: tries * countNfe(s.sampler, sigmas, opts), sampler: tries > 1 ? `${s.sampler}+repaint(${tries})` : s.sampler };
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
  /** What `discreteBitsPerDim` is, in words (its unit and why it is a bound). */
  readonly kind?: string;
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
  const encoding = model.dataShape !== undefined ? model.net.encoding : undefined;
  const B = x.shape[0] as number;
  // A learned encoding dequantizes with q(x0 | data) = N(encode(data), sigma0^2 I), sigma0 = the schedule's
  // smallest level, and decodes with the network's p(data | x0): the variational bound of Diffusion-LM
  // (Li et al. 2022, https://arxiv.org/abs/2205.14217, eq. 2 / app. B, and Kingma et al. 2021 VDM sec. 3.3):
  //   -log p(w) <= E_q[-log p(x0) - log p(w | x0) + log q(x0 | w)].
  const sigma0 = schedule.sigmaMin;
  let encEps: tf.Tensor | undefined;
  let xq: tf.Tensor;
  if (encoding) {
    encEps = rng.normalTensor([B, ...model.exampleShape]);
    xq = tf.tidy(() => tf.add(encoding.encode(x), tf.mul(encEps!, sigma0)));
  } else {
    xq = step ? tf.tidy(() => tf.add(x, tf.mul(tf.sub(rng.uniformTensor(x.shape), 0.5), step))) : x.clone();
  }
  const d = xq.size / B;
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
    if (encoding && encEps) {
      const dataDims = x.size / B;
      const decodeLl = tf.tidy(() => encoding.decodeLogLikelihood(xq, x)).arraySync() as number[];
      // log q(x0 | w) = -d/2 ln(2 pi sigma0^2) - |eps|^2 / 2 per row.
      const epsSq = tf.tidy(() => tf.sum(tf.square(tf.reshape(encEps!, [B, -1])), 1)).arraySync() as number[];
      const logQ = epsSq.map((e) => -0.5 * d * Math.log(2 * Math.PI * sigma0 * sigma0) - 0.5 * e);
      const bound = Array.from(r.logLikelihood, (l, i) => -(l + (decodeLl[i] as number) - (logQ[i] as number)) / (Math.LN2 * dataDims));
      return {
        bitsPerDim,
        discreteBitsPerDim: bound,
        standardError: Array.from(r.standardError, (e) => e / (Math.LN2 * dataDims)),
        dim: d,
        nfe: r.nfe,
        kind: `bits per data element (token); an upper bound: PF-ODE density of x0 ~ N(encode(w), ${sigma0.toPrecision(3)}^2) plus the rounding term`,
      };
    }
    return {
      bitsPerDim,
      ...(step ? { discreteBitsPerDim: Array.from(r.logLikelihood, (l) => -(l + d * Math.log(step)) / ln2d) } : {}),
      standardError: Array.from(r.standardError, (e) => e / ln2d),
      dim: d,
      nfe: r.nfe,
    };
  } finally {
    encEps?.dispose();
    xq.dispose();
    if (cond?.labels) cond.labels.dispose();
  }
}
