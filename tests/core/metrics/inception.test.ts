import { describe, expect, it } from 'vitest';
import {
  amScore,
  classAccuracy,
  classMarginal,
  inceptionScore,
  logOfProbs,
  logSoftmax,
  modifiedInceptionScore,
} from '../../../src/core/metrics/inception.js';
import { Rng } from '../../../src/core/random.js';

/** Confident predictions: logit 40 on the given class, 0 elsewhere. */
function confident(classes: number[], c: number): Float64Array {
  const logits = new Float64Array(classes.length * c);
  classes.forEach((k, i) => (logits[i * c + k] = 40));
  return logSoftmax(logits, classes.length, c);
}

const kl = (p: number[], q: number[]): number => p.reduce((s, pi, k) => s + (pi === 0 ? 0 : pi * Math.log(pi / q[k]!)), 0);

describe('Inception Score (Salimans et al. 2016)', () => {
  it('equals the number of classes for confident, evenly spread predictions', () => {
    const c = 10;
    const n = 1000;
    const is = inceptionScore(confident(Array.from({ length: n }, (_, i) => i % c), c), n, c, { splits: 10 });
    expect(is.mean).toBeCloseTo(10, 9);
    expect(is.std).toBeLessThan(1e-9);
    expect(is.values).toHaveLength(10);
  });

  it('is 1 when every prediction is the same distribution', () => {
    const c = 4;
    const n = 50;
    const row = [0.1, 0.2, 0.3, 0.4];
    const probs = Array.from({ length: n }, () => row).flat();
    const is = inceptionScore(logOfProbs(probs), n, c, { splits: 5 });
    expect(is.mean).toBeCloseTo(1, 12);
    // All predictions confident in one class: also 1.
    expect(inceptionScore(confident(new Array(20).fill(3), 5), 20, 5, { splits: 2 }).mean).toBeCloseTo(1, 9);
  });

  it('matches a hand-computed two-row example; splits give the mean and population std', () => {
    // p1 = (0.9, 0.1), p2 = (0.2, 0.8), p(y) = (0.55, 0.45):
    // IS = exp((KL(p1||p(y)) + KL(p2||p(y))) / 2) = 1.31705227604368 (computed with Python's math).
    const lp = logOfProbs([0.9, 0.1, 0.2, 0.8]);
    expect(inceptionScore(lp, 2, 2, { splits: 1 }).mean).toBeCloseTo(1.3170522760436802, 12);
    // Four rows, two splits: split 1 = {p1, p2} (IS 1.317...), split 2 = {p1, p1} (IS 1).
    const four = logOfProbs([0.9, 0.1, 0.2, 0.8, 0.9, 0.1, 0.9, 0.1]);
    const s = inceptionScore(four, 4, 2, { splits: 2 });
    expect(s.values[0]).toBeCloseTo(1.3170522760436802, 12);
    expect(s.values[1]).toBeCloseTo(1, 12);
    expect(s.mean).toBeCloseTo((1.3170522760436802 + 1) / 2, 12);
    expect(s.std).toBeCloseTo(0.3170522760436802 / 2, 12);
    expect(() => inceptionScore(lp, 2, 2, { splits: 3 })).toThrow(/splits/);
  });

  it('logSoftmax is stable for huge logits and equals log(softmax)', () => {
    const lp = logSoftmax([1000, 1001, 999], 1, 3);
    const e = [Math.exp(-1), 1, Math.exp(-2)];
    const z = e.reduce((a, b) => a + b, 0);
    e.forEach((v, k) => expect(lp[k]).toBeCloseTo(Math.log(v / z), 12));
  });
});

describe('modified IS (Gurumurthy et al. 2017) and AM score (Zhou et al. 2018)', () => {
  it('mIS: hand-computed two-row example, and 1 for identical predictions', () => {
    // exp((KL(p1||p2) + KL(p2||p1)) / 2) = 3.5051440864071925 (computed with Python's math).
    const lp = logOfProbs([0.9, 0.1, 0.2, 0.8]);
    expect(modifiedInceptionScore(lp, 2, 2).mean).toBeCloseTo(3.5051440864071925, 12);
    const same = logOfProbs(Array.from({ length: 30 }, () => [0.3, 0.7]).flat());
    expect(modifiedInceptionScore(same, 30, 2).mean).toBeCloseTo(1, 12);
  });

  it('mIS: the O(n c) identity equals the brute-force mean over all ordered pairs i != j', () => {
    const rng = new Rng(9);
    const n = 40;
    const c = 6;
    const logits = Float64Array.from({ length: n * c }, () => 3 * rng.normal());
    const lp = logSoftmax(logits, n, c);
    const p = Array.from({ length: n }, (_, i) => Array.from({ length: c }, (_, k) => Math.exp(lp[i * c + k]!)));
    let sum = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) sum += kl(p[i]!, p[j]!);
    expect(modifiedInceptionScore(lp, n, c).mean).toBeCloseTo(Math.exp(sum / (n * (n - 1))), 10);
    // Two splits: each computed on its own half.
    const s = modifiedInceptionScore(lp, n, c, { splits: 2 });
    expect(s.values[1]).toBeCloseTo(modifiedInceptionScore(lp.subarray(20 * c), 20, c).mean, 12);
  });

  it('AM: hand-computed example; 0 for confident predictions matching the reference class balance', () => {
    // KL((0.5, 0.5) || (0.55, 0.45)) + (H(p1) + H(p2)) / 2 = 0.41776786639156877 (Python).
    const lp = logOfProbs([0.9, 0.1, 0.2, 0.8]);
    const am = amScore(lp, 2, 2, [0.5, 0.5]);
    expect(am.value).toBeCloseTo(0.41776786639156877, 12);
    expect(am.marginalKl).toBeCloseTo(kl([0.5, 0.5], [0.55, 0.45]), 12);
    const c = 5;
    const even = confident(Array.from({ length: 100 }, (_, i) => i % c), c);
    expect(amScore(even, 100, c, new Array(c).fill(1 / c)).value).toBeCloseTo(0, 9);
    // All samples one class: the marginal term KL(uniform || ~one-hot) is large.
    expect(amScore(confident(new Array(100).fill(0), c), 100, c, new Array(c).fill(1 / c)).value).toBeGreaterThan(10);
    expect(Array.from(classMarginal(even, 100, c))).toEqual(new Array(c).fill(0).map((_, k) => expect.closeTo(1 / c, 9) as unknown as number));
  });
});

describe('classAccuracy', () => {
  it('counts rows whose most probable class is their label', () => {
    // Rows: argmax 1, 0, 2, 2.
    const lp = logOfProbs([0.2, 0.7, 0.1, 0.5, 0.3, 0.2, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4]);
    expect(classAccuracy(lp, 4, 3, [1, 0, 2, 0])).toBeCloseTo(0.75, 12);
    expect(classAccuracy(lp, 4, 3, [0, 1, 0, 1])).toBe(0);
    expect(() => classAccuracy(lp, 4, 3, [1, 0])).toThrow(/2 labels for 4 examples/);
  });
});
