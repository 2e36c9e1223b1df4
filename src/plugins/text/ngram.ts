/**
 * An interpolated modified Kneser-Ney n-gram language model (Chen & Goodman
 * 1998, "An Empirical Study of Smoothing Techniques for Language Modeling",
 * TR-10-98, sec. 3 eq. 17-19 and 4.1.6; Kneser & Ney 1995), fitted by
 * difflab on token ids. It scores generated text: a model of the training
 * split assigns samples a perplexity, read beside its perplexity on
 * validation text (the floor real text reaches).
 *
 * For the highest order N, with c the n-gram counts,
 *
 *   P_N(w | h) = max(c(hw) - D_N(c(hw)), 0) / c(h.) + gamma_N(h) P_{N-1}(w | h'),
 *   gamma_N(h) = sum_w min(c(hw), D_N(c(hw))) / c(h.)
 *
 * (h' drops the oldest token of h); lower orders k < N use continuation
 * counts N1+(. g) = the number of distinct tokens seen right before g in
 * place of c, and the order-0 distribution is uniform over the vocabulary.
 * Each order has three discounts from its count-of-counts n1..n4 (Chen &
 * Goodman eq. 26): Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1,
 * D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3, each clamped to [0, its count].
 * gamma is the mass the discounts actually removed, so every conditional
 * distribution sums to 1 exactly. A history never seen at an order falls
 * through to the next lower one.
 *
 * Sequences are scored independently: the first N - 1 tokens of a sequence
 * use the shorter histories they have, i.e. the lower orders' continuation
 * distributions (there is no sentence-start token).
 */
export class KneserNeyModel {
  /** counts[k]: k-gram key -> count (raw for k = N, continuation counts below). */
  private readonly counts: Map<string, number>[] = [];
  /** totals[k]: (k-1)-gram history key -> sum over w of counts[k](hw). */
  private readonly totals: Map<string, number>[] = [];
  /** removed[k]: history key -> sum over w of min(c, D(c)) (gamma's numerator). */
  private readonly removed: Map<string, number>[] = [];
  /** discounts[k] = [D1, D2, D3+]. */
  readonly discounts: [number, number, number][] = [];

  private constructor(
    readonly order: number,
    readonly vocabSize: number,
  ) {}

  /**
   * Fits an order-N model on sequences of token ids in [0, vocabSize).
   * n-grams never cross sequence boundaries.
   */
  static fit(sequences: readonly ArrayLike<number>[], order: number, vocabSize: number): KneserNeyModel {
    if (!Number.isInteger(order) || order < 1) throw new Error(`KneserNeyModel: order must be an integer >= 1, got ${order}`);
    if (!Number.isInteger(vocabSize) || vocabSize < 1) throw new Error(`KneserNeyModel: vocabSize must be an integer >= 1, got ${vocabSize}`);
    const m = new KneserNeyModel(order, vocabSize);
    // Raw counts of the highest order.
    const raw = new Map<string, number>();
    for (const seq of sequences) {
      for (let i = 0; i < seq.length; i++) {
        const t = seq[i] as number;
        if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new Error(`KneserNeyModel: token ${t} is outside [0, ${vocabSize})`);
        if (i - order + 1 < 0) continue;
        const key = Array.prototype.slice.call(seq, i - order + 1, i + 1).join(',');
        raw.set(key, (raw.get(key) ?? 0) + 1);
      }
    }
    // Continuation counts: for each distinct (k+1)-gram x g (k + 1 <= N), one for its suffix g.
    const higher: Set<string>[] = [];
    for (let k = 1; k <= order; k++) higher[k] = new Set<string>();
    for (const seq of sequences) {
      const n = seq.length;
      for (let i = 0; i < n; i++) {
        let key = '';
        for (let k = 1; k <= order && i - k + 1 >= 0; k++) {
          key = k === 1 ? String(seq[i]) : `${seq[i - k + 1]},${key}`;
          if (k >= 2) higher[k]!.add(key);
        }
      }
    }
    for (let k = 1; k <= order; k++) {
      let counts: Map<string, number>;
      if (k === order) counts = raw;
      else {
        counts = new Map<string, number>();
        for (const g of higher[k + 1]!) {
          const suffix = g.slice(g.indexOf(',') + 1);
          counts.set(suffix, (counts.get(suffix) ?? 0) + 1);
        }
      }
      m.counts[k] = counts;
      const d = KneserNeyModel.discountsOf(counts);
      m.discounts[k] = d;
      const totals = new Map<string, number>();
      const removed = new Map<string, number>();
      for (const [key, c] of counts) {
        const cut = key.lastIndexOf(',');
        const h = cut < 0 ? '' : key.slice(0, cut);
        totals.set(h, (totals.get(h) ?? 0) + c);
        removed.set(h, (removed.get(h) ?? 0) + Math.min(c, discountFor(d, c)));
      }
      m.totals[k] = totals;
      m.removed[k] = removed;
    }
    return m;
  }

  /** Chen & Goodman's discounts from the count-of-counts n1..n4 of one order, clamped to [0, count]. */
  static discountsOf(counts: Iterable<[string, number]> | Map<string, number>): [number, number, number] {
    const n = [0, 0, 0, 0, 0];
    for (const [, c] of counts) if (c <= 4) n[c] = (n[c] as number) + 1;
    const [n1, n2, n3, n4] = [n[1]!, n[2]!, n[3]!, n[4]!];
    const y = n1 + 2 * n2 > 0 ? n1 / (n1 + 2 * n2) : 0;
    const d1 = n1 > 0 ? 1 - (2 * y * n2) / n1 : 0;
    const d2 = n2 > 0 ? 2 - (3 * y * n3) / n2 : d1;
    const d3 = n3 > 0 ? 3 - (4 * y * n4) / n3 : d2;
    return [clamp(d1, 0, 1), clamp(d2, 0, 2), clamp(d3, 0, 3)];
  }

  /** P(w | history), history = the preceding tokens (only the last N - 1 are used). */
  prob(w: number, history: readonly number[]): number {
    const h = history.slice(Math.max(0, history.length - (this.order - 1)));
    return this.probAt(h.length + 1, h, w);
  }

  private probAt(k: number, h: readonly number[], w: number): number {
    if (k === 0) return 1 / this.vocabSize;
    const lower = this.probAt(k - 1, h.slice(1), w);
    const hk = h.join(',');
    const total = this.totals[k]!.get(hk);
    if (!total) return lower;
    const c = this.counts[k]!.get(hk === '' ? String(w) : `${hk},${w}`) ?? 0;
    const d = discountFor(this.discounts[k]!, c);
    return Math.max(c - d, 0) / total + ((this.removed[k]!.get(hk) ?? 0) / total) * lower;
  }

  /** Total negative log-likelihood (nats) and token count of sequences scored independently. */
  nll(sequences: readonly ArrayLike<number>[]): { nats: number; tokens: number } {
    let nats = 0;
    let tokens = 0;
    for (const seq of sequences) {
      const hist: number[] = [];
      for (let i = 0; i < seq.length; i++) {
        const w = seq[i] as number;
        nats -= Math.log(this.prob(w, hist));
        tokens++;
        hist.push(w);
        if (hist.length > this.order - 1) hist.shift();
      }
    }
    return { nats, tokens };
  }

  /** Perplexity exp(NLL / tokens) and bits per token of sequences scored independently. */
  perplexity(sequences: readonly ArrayLike<number>[]): { perplexity: number; bitsPerToken: number; tokens: number } {
    const { nats, tokens } = this.nll(sequences);
    if (tokens === 0) throw new Error('KneserNeyModel.perplexity: no tokens to score');
    return { perplexity: Math.exp(nats / tokens), bitsPerToken: nats / tokens / Math.LN2, tokens };
  }
}

function discountFor(d: readonly [number, number, number], c: number): number {
  return c <= 0 ? 0 : c === 1 ? d[0] : c === 2 ? d[1] : d[2];
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * distinct-n (Li et al. 2016, https://arxiv.org/abs/1510.03055, sec. 4.2):
 * distinct n-grams / total n-grams over all sequences (n-grams do not cross
 * sequences). Repetitive text scores low.
 */
export function distinctN(sequences: readonly ArrayLike<number>[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const seq of sequences) {
    for (let i = 0; i + n <= seq.length; i++) {
      seen.add(Array.prototype.slice.call(seq, i, i + n).join(','));
      total++;
    }
  }
  return total === 0 ? 0 : seen.size / total;
}
