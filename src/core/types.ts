import type * as tf from '@tensorflow/tfjs';

/**
 * Optional conditioning passed through every denoiser call: class labels for
 * class-conditional models (a null class id means "unconditional", for
 * classifier-free guidance), or anything else a plugin's network understands.
 */
export interface Conditioning {
  /** Integer class ids, shape [B]. */
  readonly labels?: tf.Tensor1D;
  readonly [key: string]: tf.Tensor | undefined;
}

/**
 * The one contract at the centre of difflab (EDM, Karras et al. 2022, eq. 2-3):
 * D(x; sigma, cond) -> estimate of x0.
 *
 * `x` has any shape [B, ...] and lives in the variance-exploding frame
 * x = x0 + sigma * eps (a VP model's x_t = s(t) x is divided by s(t) first;
 * parametrizations hide that). `sigma` holds one noise level per batch row,
 * shape [B]. The returned tensor has x's shape. A denoiser must not dispose
 * its inputs.
 */
export type Denoiser = (x: tf.Tensor, sigma: tf.Tensor1D, cond?: Conditioning) => tf.Tensor;
