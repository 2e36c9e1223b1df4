import * as tf from '@tensorflow/tfjs';

/**
 * The optimizer pieces of the training engine, each small and separate:
 * a learning-rate schedule (a pure function of the step), AdamW, gradient
 * clipping by global norm, and weight EMA with warm-up.
 */

export interface LrSchedule {
  /** Peak learning rate. */
  readonly lr: number;
  /** Linear warm-up from 0 over this many steps (Goyal et al. 2017, https://arxiv.org/abs/1706.02677). */
  readonly warmupSteps: number;
  /** Shape after warm-up. */
  readonly decay: 'constant' | 'cosine' | 'linear' | 'inverse-sqrt';
  /** Total steps (the end of cosine/linear decay). */
  readonly totalSteps: number;
  /** Floor as a fraction of `lr` for cosine/linear decay. */
  readonly minLrRatio?: number;
}

/** Learning rate for the update made at 0-based `step`. */
export function learningRateAt(s: LrSchedule, step: number): number {
  const warm = s.warmupSteps > 0 ? Math.min(1, (step + 1) / s.warmupSteps) : 1;
  const floor = s.minLrRatio ?? 0;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const p = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  let f: number;
  switch (s.decay) {
    case 'constant':
      f = 1;
      break;
    case 'cosine': // SGDR, Loshchilov & Hutter 2017 (https://arxiv.org/abs/1608.03983) eq. 5, one cycle
      f = floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
      break;
    case 'linear':
      f = floor + (1 - floor) * (1 - p);
      break;
    case 'inverse-sqrt': // Vaswani et al. 2017 / EDM2's lr decay: 1/sqrt(step / warmup) after warm-up
      f = s.warmupSteps > 0 ? 1 / Math.sqrt(Math.max(1, (step + 1) / s.warmupSteps)) : 1 / Math.sqrt(step + 1);
      break;
  }
  return s.lr * warm * f;
}

/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019,
 * https://arxiv.org/abs/1711.05101, Alg. 2), as PyTorch's torch.optim.AdamW:
 * w <- w (1 - lr * wd), then the Adam update. Weight decay 0 is plain Adam.
 * The learning rate can change between steps (schedules).
 */
export class AdamW extends tf.AdamOptimizer {
  static override get className(): string {
    return 'AdamW';
  }

  constructor(
    learningRate: number,
    readonly weightDecay = 0,
    beta1 = 0.9,
    beta2 = 0.999,
    epsilon = 1e-8,
  ) {
    super(learningRate, beta1, beta2, epsilon);
  }

  setLearningRate(lr: number): void {
    (this as unknown as { learningRate: number }).learningRate = lr;
  }

  getLearningRate(): number {
    return (this as unknown as { learningRate: number }).learningRate;
  }

  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    if (this.weightDecay > 0) {
      const names = Array.isArray(variableGradients) ? variableGradients.map((g) => g.name) : Object.keys(variableGradients);
      const factor = 1 - this.getLearningRate() * this.weightDecay;
      tf.tidy(() => {
        for (const name of names) {
          const v = tf.engine().registeredVariables[name];
          if (v?.trainable) v.assign(tf.mul(v, factor));
        }
      });
    }
    // tfjs keeps beta^t by repeated float32 multiplication but restores it with pow() on
    // setWeights; setting it from the iteration count every step makes a resumed run
    // bit-identical to an uninterrupted one.
    const self = this as unknown as { iterations: number; accBeta1: tf.Variable; accBeta2: tf.Variable; beta1: number; beta2: number };
    const t = self.iterations + 1;
    tf.tidy(() => {
      self.accBeta1.assign(tf.scalar(self.beta1 ** t));
      self.accBeta2.assign(tf.scalar(self.beta2 ** t));
    });
    super.applyGradients(variableGradients);
  }
}

/**
 * Clips gradients by their global L2 norm (Pascanu et al. 2013,
 * https://arxiv.org/abs/1211.5063, Alg. 1), as torch.nn.utils.clip_grad_norm_.
 * Returns new tensors (caller disposes) and the norm before clipping.
 */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const normT = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))));
  const norm = normT.dataSync()[0] as number;
  normT.dispose();
  const scale = Number.isFinite(maxNorm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  return { grads: grads.map((g) => (scale === 1 ? tf.clone(g) : tf.mul(g, scale))), norm };
}

/** How the EMA decay evolves with training. */
export type EmaSpec =
  | {
      /** k-diffusion's EMAWarmup (utils.py): decay = 1 - (1 + step / invGamma)^-power, clamped. */
      readonly kind: 'warmup';
      readonly invGamma?: number;
      readonly power?: number;
      readonly minValue?: number;
      readonly maxValue?: number;
      readonly startAt?: number;
    }
  | {
      /** EDM's half-life in training examples with ramp-up (Karras 2022, training_loop.py). */
      readonly kind: 'halflife';
      readonly halflifeExamples: number;
      readonly rampupRatio?: number | null;
    };

/** EMA decay for the update after 0-based `step` with `batchSize` examples per step. */
export function emaDecayAt(spec: EmaSpec, step: number, batchSize: number): number {
  if (spec.kind === 'warmup') {
    const epoch = Math.max(0, step - (spec.startAt ?? 0));
    const value = 1 - (1 + epoch / (spec.invGamma ?? 1)) ** -(spec.power ?? 2 / 3);
    return Math.min(spec.maxValue ?? 0.9999, Math.max(spec.minValue ?? 0, value));
  }
  let half = spec.halflifeExamples;
  const nimg = (step + 1) * batchSize;
  if (spec.rampupRatio != null) half = Math.min(half, nimg * spec.rampupRatio);
  return 0.5 ** (batchSize / Math.max(half, 1e-8));
}

/** ema <- decay * ema + (1 - decay) * value, for host arrays (what trainers hand out). */
export function emaUpdateHost(ema: Float32Array, value: Float32Array, decay: number): void {
  const a = 1 - decay;
  for (let i = 0; i < ema.length; i++) ema[i] = (ema[i] as number) + a * ((value[i] as number) - (ema[i] as number));
}
