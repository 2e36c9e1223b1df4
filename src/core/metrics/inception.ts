import { meanStd } from './kid.js';
import type { ValueWithStd } from './types.js';

/**
 * Classifier-based scores, all from log p(y|x) rows (row-major [n, c],
 * float64; `logSoftmax` turns logits into them without overflow):
 *
 * - Inception Score (Salimans et al. 2016, https://arxiv.org/abs/1606.03498):
 *   IS = exp(E_x KL(p(y|x) || p(y))), p(y) the marginal over the split; the
 *   set is cut into `splits` consecutive parts (default 10) and the mean and
 *   population std over splits are reported, as the reference code
 *   (openai/improved-gan, inception_score/model.py) does.
 * - modified IS (Gurumurthy et al. 2017, DeLiGAN, https://arxiv.org/abs/1706.02387):
 *   mIS = exp(E_{x, x'} KL(p(y|x) || p(y|x'))), which also rewards diversity
 *   within a class. Computed exactly over all ordered pairs i != j of a split
 *   in O(n c) (see `modifiedInceptionScore`), where DiffWave's evaluation
 *   code estimates the same expectation from random pairs.
 * - AM score (Zhou et al. 2018, "Activation Maximization Generative
 *   Adversarial Nets", https://arxiv.org/abs/1703.02000, Sec. 5):
 *   AM = KL(p_ref(y) || p_gen(y)) + E_x H(p(y|x)), p_ref the classifier's
 *   mean prediction on real training data; lower is better.
 *
 * DiffWave (Kong et al. 2021, https://arxiv.org/abs/2009.09761, Table 2)
 * reports IS, mIS and AM of a speech-command classifier in this way.
 *
 * 0 log 0 is taken as 0.
 */

/** log softmax of each row of logits [n, c], in float64. */
export function logSoftmax(logits: ArrayLike<number>, n: number, c: number): Float64Array {
  if (logits.length !== n * c) throw new Error(`logSoftmax: ${logits.length} values for [${n}, ${c}]`);
  const out = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let k = 0; k < c; k++) max = Math.max(max, logits[i * c + k] as number);
    let s = 0;
    for (let k = 0; k < c; k++) s += Math.exp((logits[i * c + k] as number) - max);
    const lse = max + Math.log(s);
    for (let k = 0; k < c; k++) out[i * c + k] = (logits[i * c + k] as number) - lse;
  }
  return out;
}

/** log p from probabilities [n, c] (rows should sum to 1; zeros give -Infinity). */
export function logOfProbs(probs: ArrayLike<number>): Float64Array {
  return Float64Array.from(probs as ArrayLike<number>, (p) => Math.log(p));
}

function check(logProbs: ArrayLike<number>, n: number, c: number, what: string): void {
  if (!(Number.isInteger(n) && n >= 1 && Number.isInteger(c) && c >= 1) || logProbs.length !== n * c) {
    throw new Error(`${what}: ${logProbs.length} log-probabilities for [${n}, ${c}]`);
  }
}

/** p log p with 0 log 0 = 0. */
function plogq(p: number, logq: number): number {
  return p === 0 ? 0 : p * logq;
}

/** The boundaries of `splits` consecutive parts of n rows (floor(i n / splits), as the reference IS code). */
function splitBounds(n: number, splits: number, what: string): [number, number][] {
  if (!(Number.isInteger(splits) && splits >= 1 && splits <= n)) throw new Error(`${what}: splits must be an integer in [1, ${n}], got ${splits}`);
  return Array.from({ length: splits }, (_, i) => [Math.floor((i * n) / splits), Math.floor(((i + 1) * n) / splits)] as [number, number]);
}

/** Mean of p(y|x) over rows [from, to): the class marginal. */
export function classMarginal(logProbs: ArrayLike<number>, n: number, c: number, from = 0, to = n): Float64Array {
  check(logProbs, n, c, 'classMarginal');
  const m = new Float64Array(c);
  for (let i = from; i < to; i++) for (let k = 0; k < c; k++) m[k]! += Math.exp(logProbs[i * c + k] as number);
  for (let k = 0; k < c; k++) m[k]! /= to - from;
  return m;
}

/** Inception Score: mean and std over `splits` parts (default 10). */
export function inceptionScore(logProbs: ArrayLike<number>, n: number, c: number, options: { splits?: number } = {}): ValueWithStd {
  check(logProbs, n, c, 'inceptionScore');
  const scores = splitBounds(n, options.splits ?? 10, 'inceptionScore').map(([a, b]) => {
    const marginal = classMarginal(logProbs, n, c, a, b);
    const logM = Array.from(marginal, Math.log);
    let kl = 0;
    for (let i = a; i < b; i++) {
      for (let k = 0; k < c; k++) {
        const lp = logProbs[i * c + k] as number;
        const p = Math.exp(lp);
        kl += plogq(p, lp) - plogq(p, logM[k]!);
      }
    }
    return Math.exp(kl / (b - a));
  });
  return meanStd(scores);
}

/**
 * Modified Inception Score per split (default: one split, the whole set):
 * exp(E_{i != j} KL(p_i || p_j)) over all pairs of the split's rows. This is
 * the all-pairs form of the SC09 evaluations DiffWave (Kong et al. 2021,
 * https://arxiv.org/abs/2009.09761, Table 2) and SaShiMi (Goel et al. 2022)
 * report, which estimate the same mean from random pairs. Gurumurthy et al.
 * (DeLiGAN, 2017, https://arxiv.org/abs/1706.02071) proposed it within each
 * predicted class (their reference code groups rows by argmax), as a measure
 * of intra-class diversity; over a whole class-balanced set the mean is
 * dominated by pairs of different classes, so its size follows how
 * confident the classifier is (roughly exp of the log-odds it gives between
 * classes): 1e6 to 1e9 on real FSDD with difflab's digit CNN, whose
 * log-probabilities of wrong digits reach -40. Values from another
 * classifier (the papers' SC09 ResNeXt) are not comparable; compare a value
 * only with its real-data floor.
 *
 * Over the N rows of a split, with P_c = sum_i p_ic and L_c = sum_j log p_jc,
 *   sum_{i != j} KL(p_i || p_j) = N sum_i sum_c p_ic log p_ic - sum_c P_c L_c
 * (the i = j terms are 0), divided by N (N - 1) pairs.
 */
export function modifiedInceptionScore(logProbs: ArrayLike<number>, n: number, c: number, options: { splits?: number } = {}): ValueWithStd {
  check(logProbs, n, c, 'modifiedInceptionScore');
  const scores = splitBounds(n, options.splits ?? 1, 'modifiedInceptionScore').map(([a, b]) => {
    const rows = b - a;
    if (rows < 2) throw new Error('modifiedInceptionScore: each split needs at least 2 rows');
    let negEntropySum = 0;
    const P = new Float64Array(c);
    const L = new Float64Array(c);
    for (let i = a; i < b; i++) {
      for (let k = 0; k < c; k++) {
        const lp = logProbs[i * c + k] as number;
        const p = Math.exp(lp);
        negEntropySum += plogq(p, lp);
        P[k]! += p;
        L[k]! += lp;
      }
    }
    let cross = 0;
    for (let k = 0; k < c; k++) cross += plogq(P[k]!, L[k]!);
    return Math.exp((rows * negEntropySum - cross) / (rows * (rows - 1)));
  });
  return meanStd(scores);
}

export interface AmScore {
  /** KL(p_ref(y) || p_gen(y)) + E_x H(p(y|x)); lower is better, 0 for confident predictions with the reference's class balance. */
  readonly value: number;
  readonly marginalKl: number;
  readonly meanEntropy: number;
}

/** AM score of generated log-probabilities against a reference class marginal (`classMarginal` of real training data). */
export function amScore(logProbs: ArrayLike<number>, n: number, c: number, referenceMarginal: ArrayLike<number>): AmScore {
  check(logProbs, n, c, 'amScore');
  if (referenceMarginal.length !== c) throw new Error(`amScore: reference marginal has ${referenceMarginal.length} classes, expected ${c}`);
  const gen = classMarginal(logProbs, n, c);
  let marginalKl = 0;
  for (let k = 0; k < c; k++) {
    const r = referenceMarginal[k] as number;
    marginalKl += plogq(r, Math.log(r)) - plogq(r, Math.log(gen[k]!));
  }
  let h = 0;
  for (let i = 0; i < n * c; i++) {
    const lp = logProbs[i] as number;
    h -= plogq(Math.exp(lp), lp);
  }
  const meanEntropy = h / n;
  return { value: marginalKl + meanEntropy, marginalKl, meanEntropy };
}

/**
 * The fraction of examples whose most probable class is their label. For
 * class-conditional samples the label is the class they were generated for:
 * how often the classifier hears the digit (or sees the garment) that was
 * asked for. Its floor is the same classifier's accuracy on held-out real data.
 */
export function classAccuracy(logProbs: ArrayLike<number>, n: number, c: number, labels: ArrayLike<number>): number {
  check(logProbs, n, c, 'classAccuracy');
  if (labels.length !== n) throw new Error(`classAccuracy: ${labels.length} labels for ${n} examples`);
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < c; k++) if ((logProbs[i * c + k] as number) > (logProbs[i * c + best] as number)) best = k;
    if (best === labels[i]) hits++;
  }
  return hits / n;
}
