import * as tf from '@tensorflow/tfjs';
import type { ModalityPlugin } from '../../core/plugin.js';
import { textDataSchema, textModelSchema, type TextDataConfig, type TextModelConfig } from './config.js';
import { asVocabulary, openTextData, VocabularyIndex } from './data.js';
import { textLossAdapter } from './loss.js';
import { scoreTextSamples } from './metrics.js';
import { createTextNetwork, type TextTransformer } from './transformer.js';
import { writeTextSamples, writeTextTrajectory } from './writers.js';

/**
 * The text modality, diffusion in token-embedding space (Diffusion-LM, Li et
 * al. 2022, https://arxiv.org/abs/2205.14217): plain-text or JSON-lines
 * corpora tokenized with tiktoken; the network learns the token embeddings
 * (the data -> diffusion map), a transformer denoiser and a rounding head
 * together; samples are rounded back to tokens and written as text.
 */
export const textPlugin: ModalityPlugin<TextDataConfig, TextModelConfig> = {
  id: 'text',
  description: 'token sequences [L] embedded to [L, E]: plain text / JSON lines via tiktoken; Diffusion-LM transformer with learned embeddings and rounding; text writers',
  source: { module: import.meta.url, exportName: 'textPlugin' },
  dataSchema: textDataSchema as unknown as ModalityPlugin<TextDataConfig, TextModelConfig>['dataSchema'],
  modelSchema: textModelSchema as unknown as ModalityPlugin<TextDataConfig, TextModelConfig>['modelSchema'],
  openData: (config, ctx) => openTextData(config, ctx),
  createNetwork: (config, ctx) => createTextNetwork(config, ctx),
  lossAdapter: textLossAdapter,
  /** Token ids [n, L] (the CLI rounds samples through the network's encoding first) -> one text file. */
  async writeSamples(ids, path, ctx) {
    return writeTextSamples(ids, path, ctx.info.dataInfo);
  },
  async writeTrajectory(frames, path, ctx) {
    return writeTextTrajectory(frames, path, ctx.info.dataInfo);
  },
  async scoreSamples(samples, ctx) {
    return scoreTextSamples(samples, ctx, { sigmaMin: ctx.sigmaMin });
  },
  /**
   * Infilling: the prompt's tokens are fixed at the start (prefix) and/or the
   * end (suffix) of the window; the core imposes their embeddings by
   * replacement and the model fills the other positions.
   */
  knownFromPrompt(prompt, ctx) {
    const net = ctx.net as unknown as TextTransformer;
    const index = new VocabularyIndex(asVocabulary(ctx.info.dataInfo, 'text prompt'));
    const L = net.seqLen;
    const ids = new Int32Array(L);
    const known = new Uint8Array(L);
    const pre = prompt.prefix !== undefined ? index.encodeText(prompt.prefix) : new Int32Array(0);
    const suf = prompt.suffix !== undefined ? index.encodeText(prompt.suffix) : new Int32Array(0);
    if (pre.length + suf.length > L) {
      throw new Error(`--prefix/--suffix: ${pre.length + suf.length} tokens do not fit the model's window of ${L} tokens`);
    }
    ids.set(pre, 0);
    known.fill(1, 0, pre.length);
    ids.set(suf, L - suf.length);
    known.fill(1, L - suf.length, L);
    const E = net.embeddingDim;
    return tf.tidy(() => {
      const values = net.encode(tf.tensor2d(ids, [1, L], 'int32'));
      const mask = tf.tile(tf.reshape(tf.tensor1d(Float32Array.from(known)), [1, L, 1]), [1, 1, E]);
      return { values: tf.keep(values), mask: tf.keep(mask) };
    });
  },
};

export * from './config.js';
export * from './data.js';
export * from './loss.js';
export * from './metrics.js';
export * from './ngram.js';
export * from './transformer.js';
export * from './writers.js';
