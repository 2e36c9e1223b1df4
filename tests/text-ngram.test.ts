import { describe, expect, it } from 'vitest';
import { Rng } from '../src/core/random.js';
import { KneserNeyModel, distinctN } from '../src/plugins/text/ngram.js';

describe('interpolated modified Kneser-Ney', () => {
  // a = 0, b = 1, c = 2. Bigrams: ab 4, ba 3, bc 1 (sequence 1); cc 1, ca 1 + 1 (both sequences): ca 2.
  const seqs = [[0, 1, 0, 1, 0, 1, 0, 1, 2, 0], [2, 2, 0]];
  const lm = KneserNeyModel.fit(seqs, 2, 3);

  it('discounts from the count-of-counts (Chen & Goodman eq. 26), by hand', () => {
    // Order 2 (raw counts 4, 3, 1, 2, 1): n1 = 2, n2 = 1, n3 = 1, n4 = 1; Y = 2 / (2 + 2) = 0.5;
    // D1 = 1 - 2(0.5)(1/2) = 0.5, D2 = 2 - 3(0.5)(1/1) = 0.5, D3+ = 3 - 4(0.5)(1/1) = 1.
    expect(lm.discounts[2]).toEqual([0.5, 0.5, 1]);
    // Order 1 (continuation counts: a after {b, c} = 2, b after {a} = 1, c after {b, c} = 2):
    // n1 = 1, n2 = 2, n3 = 0; Y = 1 / 5 = 0.2; D1 = 1 - 2(0.2)(2/1) = 0.2; D2 = 2 - 0 = 2; D3+ falls back to D2.
    const d1 = lm.discounts[1]!;
    expect(d1[0]).toBeCloseTo(0.2, 12);
    expect(d1.slice(1)).toEqual([2, 2]);
  });

  it('probabilities, by hand', () => {
    // Unigram: total continuation count 5; removed min(2,2) + min(1,0.2) + min(2,2) = 4.2; uniform 1/3.
    // P(a) = 0/5 + (4.2/5)/3 = 0.28, P(b) = 0.8/5 + 0.28 = 0.44, P(c) = 0.28.
    expect(lm.prob(0, [])).toBeCloseTo(0.28, 12);
    expect(lm.prob(1, [])).toBeCloseTo(0.44, 12);
    expect(lm.prob(2, [])).toBeCloseTo(0.28, 12);
    // After a: c(ab) = 4 (D3+ = 1), total 4, removed 1: P(b|a) = 3/4 + (1/4) 0.44 = 0.86; P(a|a) = (1/4) 0.28 = 0.07.
    expect(lm.prob(1, [0])).toBeCloseTo(0.86, 12);
    expect(lm.prob(0, [0])).toBeCloseTo(0.07, 12);
    // After b: ba 3 (D 1), bc 1 (D 0.5), total 4, removed 1.5: P(a|b) = 2/4 + 0.375 (0.28) = 0.605,
    // P(c|b) = 0.5/4 + 0.105 = 0.23, P(b|b) = 0.375 (0.44) = 0.165.
    expect(lm.prob(0, [1])).toBeCloseTo(0.605, 12);
    expect(lm.prob(2, [1])).toBeCloseTo(0.23, 12);
    expect(lm.prob(1, [1])).toBeCloseTo(0.165, 12);
    // After c: ca 2 (D 0.5), cc 1 (D 0.5), total 3, removed 1: P(a|c) = 1.5/3 + 0.28/3, P(b|c) = 0.44/3.
    expect(lm.prob(0, [2])).toBeCloseTo(0.5 + 0.28 / 3, 12);
    expect(lm.prob(1, [2])).toBeCloseTo(0.44 / 3, 12);
    // Only the last N - 1 tokens of a history count.
    expect(lm.prob(1, [2, 2, 0])).toBe(lm.prob(1, [0]));
    // A sequence: P(a) P(b | a); perplexity exp(-(ln 0.28 + ln 0.86) / 2).
    const { nats, tokens } = lm.nll([[0, 1]]);
    expect(tokens).toBe(2);
    expect(nats).toBeCloseTo(-Math.log(0.28) - Math.log(0.86), 12);
    expect(lm.perplexity([[0, 1]]).perplexity).toBeCloseTo(Math.exp(nats / 2), 12);
  });

  it('every conditional distribution of a 5-gram model sums to 1, seen and unseen histories alike', () => {
    const rng = new Rng(1);
    const V = 12;
    // A skewed stream so that counts of every size occur.
    const stream = Array.from({ length: 3000 }, () => Math.min(V - 1, Math.floor(-Math.log(1 - rng.uniform()) * 2.5)));
    const m5 = KneserNeyModel.fit([stream], 5, V);
    for (let trial = 0; trial < 40; trial++) {
      const start = rng.int(stream.length - 5);
      const hist = trial % 4 === 0 ? Array.from({ length: 4 }, () => rng.int(V)) : stream.slice(start, start + 1 + (trial % 4));
      let total = 0;
      for (let w = 0; w < V; w++) total += m5.prob(w, hist);
      expect(total).toBeCloseTo(1, 10);
    }
    // The model predicts its own training stream far better than uniform.
    expect(m5.perplexity([stream]).perplexity).toBeLessThan(V / 2);
  });

  it('rejects tokens outside the vocabulary', () => {
    expect(() => KneserNeyModel.fit([[0, 5]], 2, 3)).toThrow(/token 5 is outside \[0, 3\)/);
  });
});

describe('distinct-n', () => {
  it('counts distinct n-grams over total n-grams, not across sequences', () => {
    expect(distinctN([[1, 2, 1, 2]], 1)).toBe(0.5);
    expect(distinctN([[1, 2, 1, 2]], 2)).toBe(2 / 3);
    expect(distinctN([[1, 2], [2, 1]], 2)).toBe(1);
    expect(distinctN([[7, 7, 7, 7]], 3)).toBe(0.5);
  });
});
