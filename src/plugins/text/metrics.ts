import * as tf from '@tensorflow/tfjs';
import type { SampleScores, ScoreContext } from '../../core/plugin.js';
import { Rng } from '../../core/random.js';
import type { TextDataConfig } from './config.js';
import { asVocabulary, vocabSize, type TextDataSource, type TextVocabulary } from './data.js';
import { KneserNeyModel, distinctN } from './ngram.js';
import type { TextTransformer } from './transformer.js';

/**
 * The text plugin's sample metrics, each beside its floor:
 * - perplexity of the samples under an interpolated modified Kneser-Ney
 *   5-gram model of the training split, beside the same model's perplexity
 *   on as many validation windows (the floor: what real held-out text of the
 *   same length scores) and its bits per token on the whole validation text
 *   scored as one stream (the reference line for the diffusion model's
 *   likelihood bound);
 * - distinct-1/2/3 of the samples beside the validation windows', so that
 *   repetitive text cannot score a low perplexity unnoticed;
 * - rounding accuracy: how often the rounding head maps a clean embedding
 *   EMB(w) (and one noised to sigma_min) back to w, on validation windows.
 * Pad tokens are dropped before scoring (they end the corpus' last window).
 */

/** N-gram models by corpus and order: eval of several runs on one corpus fits once. */
const lmCache = new Map<string, KneserNeyModel>();

export function kneserNeyFor(train: Pick<TextDataSource, 'documents' | 'file' | 'vocab'>, order = 5): KneserNeyModel {
  const key = `${train.file}:${order}:${train.vocab.tokens.length}:${train.documents.reduce((n, d) => n + d.length, 0)}`;
  let lm = lmCache.get(key);
  if (!lm) {
    lm = KneserNeyModel.fit(train.documents, order, vocabSize(train.vocab) - 1);
    lmCache.set(key, lm);
  }
  return lm;
}

/** Rows of ids with pad tokens removed. */
export function withoutPad(rows: readonly ArrayLike<number>[], vocab: TextVocabulary): number[][] {
  return rows.map((r) => Array.from(r).filter((t) => t !== vocab.pad));
}

/** Fraction of tokens w with argmax p(. | EMB(w) + sigma eps) = w, on windows [n, L]. */
export function roundingAccuracy(net: TextTransformer, windows: readonly Int32Array[], sigma: number, seed: number): number {
  if (windows.length === 0) return NaN;
  const L = net.seqLen;
  const flat = new Int32Array(windows.length * L);
  windows.forEach((w, i) => flat.set(w, i * L));
  return tf.tidy(() => {
    const ids = tf.tensor2d(flat, [windows.length, L], 'int32');
    let x0 = net.encode(ids);
    if (sigma > 0) x0 = tf.add(x0, tf.mul(new Rng(seed).normalTensor(x0.shape), sigma));
    const hit = tf.equal(tf.cast(net.decode(x0), 'int32'), ids);
    return (tf.mean(tf.cast(hit, 'float32')).dataSync()[0] as number);
  });
}

export async function scoreTextSamples(samples: tf.Tensor, ctx: ScoreContext<TextDataConfig>, options: { sigmaMin?: number } = {}): Promise<SampleScores> {
  const net = ctx.net as unknown as TextTransformer;
  const vocab = asVocabulary(ctx.info.dataInfo, 'text metrics');
  const decoded = tf.tidy(() => net.decode(samples));
  const sampleRows = withoutPad(decoded.arraySync() as number[][], vocab);
  decoded.dispose();
  const n = sampleRows.length;
  const train = (await ctx.openData('train')) as TextDataSource;
  const test = (await ctx.openData('test')) as TextDataSource;
  const t0 = Date.now();
  const lm = kneserNeyFor(train);
  ctx.log(`text metrics: Kneser-Ney 5-gram fitted on ${train.documents.reduce((a, d) => a + d.length, 0).toLocaleString('en-US')} training tokens in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  // The floor set: as many validation windows as samples, a seeded random subset.
  const order: number[] = Rng.derive(ctx.seed, 0x666c6f72).shuffle([...Array(test.windows.length).keys()]);
  const floorWindows = order.slice(0, Math.min(n, test.windows.length)).map((i) => test.windows[i] as Int32Array);
  const floorRows = withoutPad(floorWindows, vocab);
  const samplePpl = lm.perplexity(sampleRows.filter((r) => r.length > 0));
  const floorPpl = lm.perplexity(floorRows);
  const stream = lm.perplexity(test.documents);
  const distinct = (rows: number[][]) => [1, 2, 3].map((k) => distinctN(rows, k));
  const dSamples = distinct(sampleRows);
  const dVal = distinct(floorRows);
  const accWindows = floorWindows.slice(0, 256);
  const accClean = roundingAccuracy(net, accWindows, 0, ctx.seed);
  const accNoisy = options.sigmaMin !== undefined ? roundingAccuracy(net, accWindows, options.sigmaMin, ctx.seed) : undefined;
  const f = (v: number, d = 2) => v.toFixed(d);
  const lines = [
    `KN 5-gram perplexity (training split model): samples ${f(samplePpl.perplexity)}   validation windows ${f(floorPpl.perplexity)} (floor, ${floorRows.length} windows)`,
    `KN 5-gram validation bits/token (whole validation text as one stream): ${f(stream.bitsPerToken, 3)} (reference line; perplexity ${f(stream.perplexity)})`,
    `distinct-1/2/3: samples ${dSamples.map((v) => f(v, 3)).join(' / ')}   validation windows ${dVal.map((v) => f(v, 3)).join(' / ')}`,
    `rounding accuracy on ${accWindows.length} validation windows: clean embeddings ${f(100 * accClean, 1)} %` +
      (accNoisy !== undefined ? `, at sigma_min ${options.sigmaMin!.toPrecision(3)}: ${f(100 * accNoisy, 1)} %` : ''),
  ];
  return {
    lines,
    values: {
      samples: n,
      kn5_perplexity: { samples: samplePpl.perplexity, validation_windows_floor: floorPpl.perplexity, sample_tokens: samplePpl.tokens, floor_tokens: floorPpl.tokens },
      kn5_validation_bits_per_token: stream.bitsPerToken,
      kn5_validation_perplexity: stream.perplexity,
      distinct: { samples: dSamples, validation_windows: dVal },
      rounding_accuracy: { clean: accClean, ...(accNoisy !== undefined ? { sigma_min: accNoisy } : {}), windows: accWindows.length },
    },
  };
}
