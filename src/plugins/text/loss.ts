import * as tf from '@tensorflow/tfjs';
import type { LossAdapter } from '../../core/plugin.js';
import type { TextModelConfig } from './config.js';
import type { TextTransformer } from './transformer.js';

/**
 * The extra terms of Diffusion-LM's end-to-end objective (Li et al. 2022,
 * https://arxiv.org/abs/2205.14217, eq. 2 and sec. 4.1; the authors'
 * `training_losses_e2e` in improved-diffusion/gaussian_diffusion.py), added
 * to the core's DSM term, which with x0-prediction, uniform weighting and
 * x0 = EMB(w) is their L_simple:
 *
 *   embedding  ||EMB(w) - D(x_1; sigma_1)||^2,  x_1 = EMB(w) + sigma_1 eps  (the t = 1 term, mu_theta(x_1, 1))
 *   rounding   -log p(w | x0) per token,         x0 = EMB(w) + sigma_0 eps  (x0 ~ q_phi(x0 | w))
 *   prior      ||s(T) EMB(w)||^2                                          (their tT_loss: the mean of q(x_T | x0))
 *
 * Squared norms are means over positions and channels and the rounding term a
 * mean over tokens, as the authors' `mean_flat`, so each is a batch mean.
 * sigma_0 = sigma_1 = the schedule's smallest level; the rounding, embedding
 * and DSM terms reuse the step's eps (each term stays unbiased).
 */
export const textLossAdapter: LossAdapter = {
  extraLoss(batch, net, ctx) {
    return tf.tidy(() => {
      const model = net as unknown as TextTransformer;
      const weights = (ctx.model as TextModelConfig).loss;
      const ids = batch.x;
      const { x0, eps, sigmaMin, sigmaMax } = ctx;
      const b = x0.shape[0] as number;
      const terms: tf.Scalar[] = [];
      const x1 = tf.add(x0, tf.mul(eps, sigmaMin));
      if (weights.rounding > 0) {
        const perRow = model.decodeLogLikelihood(x1, ids); // sum over positions
        terms.push(tf.mul(tf.mean(perRow), -weights.rounding / model.seqLen) as tf.Scalar);
      }
      if (weights.embedding > 0) {
        const d = ctx.denoiser(x1, tf.fill([b], sigmaMin) as tf.Tensor1D);
        terms.push(tf.mul(tf.mean(tf.square(tf.sub(d, x0))), weights.embedding) as tf.Scalar);
      }
      if (weights.prior > 0) {
        // In the VE frame s(T)^2 = alpha_bar(T) = 1 / (1 + sigma_max^2).
        const alphaBarT = 1 / (1 + sigmaMax * sigmaMax);
        terms.push(tf.mul(tf.mean(tf.square(x0)), weights.prior * alphaBarT) as tf.Scalar);
      }
      return terms.length ? (tf.addN(terms) as tf.Scalar) : tf.scalar(0);
    });
  },
};
