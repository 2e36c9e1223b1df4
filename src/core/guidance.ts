/**
 * Guidance as a denoiser wrapper: the result is again a Denoiser, so it
 * composes with every sampler (and with other wrappers).
 */
import * as tf from '@tensorflow/tfjs';
import type { Conditioning, Denoiser } from './types.js';

/**
 * Classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598, eq. 6):
 *
 *   D_w(x; sigma, c) = D(x; sigma, null) + w (D(x; sigma, c) - D(x; sigma, null)).
 *
 * The paper writes eps~ = (1 + w') eps(z, c) - w' eps(z); since D = x - sigma eps
 * is affine in eps with weights summing to 1, that is this formula with
 * w = 1 + w'. So w = 1 is the conditional denoiser, w = 0 the unconditional one,
 * w > 1 extrapolates away from the unconditional prediction.
 *
 * Both predictions come from one denoiser call on the batch [x; x] with
 * sigma [sigma; sigma] and conditioning [cond; nullCond]. `nullCond` holds the
 * "unconditional" value of every conditioning tensor (e.g. the null class id),
 * with batch size 1 (broadcast to B) or B; the conditional call's tensors must
 * have exactly the keys of `nullCond`. A call without cond returns the
 * unconditional prediction (one call on the plain batch).
 */
export function classifierFreeGuidance(denoiser: Denoiser, w: number, nullCond: Conditioning): Denoiser {
  if (!Number.isFinite(w)) throw new Error(`classifierFreeGuidance: w must be a finite number, got ${w}`);
  const nullKeys = Object.keys(nullCond).filter((k) => nullCond[k] !== undefined).sort();
  if (nullKeys.length === 0) throw new Error('classifierFreeGuidance: nullCond has no tensors');
  return (x: tf.Tensor, sigma: tf.Tensor1D, cond?: Conditioning) =>
    tf.tidy(() => {
      const b = x.shape[0] as number;
      const tiledNull: Record<string, tf.Tensor> = {};
      for (const key of nullKeys) tiledNull[key] = batchOf(nullCond[key] as tf.Tensor, b, key);
      if (cond === undefined) return denoiser(x, sigma, tiledNull);
      const keys = Object.keys(cond).filter((k) => cond[k] !== undefined).sort();
      if (keys.length !== nullKeys.length || keys.some((k, i) => k !== nullKeys[i])) {
        throw new Error(
          `classifierFreeGuidance: cond has keys [${keys.join(', ')}] but nullCond has [${nullKeys.join(', ')}]; they must match`,
        );
      }
      const both: Record<string, tf.Tensor> = {};
      for (const key of keys) {
        const c = cond[key] as tf.Tensor;
        if (c.shape[0] !== b) {
          throw new Error(`classifierFreeGuidance: cond.${key} has batch ${c.shape[0]}, x has ${b}`);
        }
        both[key] = tf.concat([c, tf.cast(tiledNull[key] as tf.Tensor, c.dtype)], 0);
      }
      const out = denoiser(tf.concat([x, x], 0), tf.concat([sigma, sigma], 0) as tf.Tensor1D, both);
      const [dCond, dUncond] = tf.split(out, 2, 0) as [tf.Tensor, tf.Tensor];
      // D_uncond + w (D_cond - D_uncond)
      return tf.add(dUncond, tf.mul(tf.sub(dCond, dUncond), w));
    });
}

/** A conditioning tensor with batch 1 broadcast to batch b (or checked to be b already). */
function batchOf(t: tf.Tensor, b: number, key: string): tf.Tensor {
  if (t.rank === 0) return tf.fill([b], t.dataSync()[0] as number, t.dtype === 'int32' ? 'int32' : 'float32');
  const n = t.shape[0] as number;
  if (n === b) return t;
  if (n === 1) return tf.tile(t, [b, ...t.shape.slice(1).map(() => 1)]);
  throw new Error(`classifierFreeGuidance: nullCond.${key} has batch ${n}; use 1 (broadcast) or ${b}`);
}
