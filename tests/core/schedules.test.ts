import { describe, expect, it } from 'vitest';
import {
  DISCRETIZATION_IDS,
  SCHEDULE_TYPES,
  createDiscretization,
  createSchedule,
  karrasSigmas,
  logUniformSigmas,
  sigmasFor,
  spacedTimesteps,
  uniformTimeSigmas,
  type NoiseSchedule,
  type ScheduleConfig,
} from '../../src/core/schedules/index.js';

const all: NoiseSchedule[] = SCHEDULE_TYPES.map((type) => createSchedule({ type } as ScheduleConfig));

function times(s: NoiseSchedule, n = 200): number[] {
  return Array.from({ length: n + 1 }, (_, k) => s.tMin + ((s.tMax - s.tMin) * k) / n);
}

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe('noise schedules: the contract', () => {
  it.each(all.map((s) => [s.type, s] as const))('%s: t -> sigma -> t round-trips and sigma increases', (_, s) => {
    let prev = -Infinity;
    for (const t of times(s)) {
      const sigma = s.sigma(t);
      expect(sigma).toBeGreaterThan(prev);
      prev = sigma;
      expect(Math.abs(s.t(sigma) - t)).toBeLessThan(1e-12 * Math.max(1, t));
    }
    expect(relErr(s.sigma(s.tMin), s.sigmaMin)).toBeLessThan(1e-14);
    expect(relErr(s.sigma(s.tMax), s.sigmaMax)).toBeLessThan(1e-14);
    expect(Number.isFinite(s.sigmaMax)).toBe(true);
    // t(sigma) clamps to the domain
    expect(s.t(s.sigmaMax * 10)).toBe(s.tMax);
    expect(s.t(s.sigmaMin / 10)).toBe(s.tMin);
  });

  it.each(all.map((s) => [s.type, s] as const))('%s: logSNR = -2 log sigma, and s^2 (1 + sigma^2) = 1 for VP', (_, s) => {
    for (const t of times(s)) {
      expect(Math.abs(s.logSNR(t) + 2 * Math.log(s.sigma(t)))).toBeLessThan(1e-12 * Math.max(1, Math.abs(s.logSNR(t))));
      if (s.kind === 'vp') expect(s.s(t) ** 2 * (1 + s.sigma(t) ** 2)).toBeCloseTo(1, 12);
      else expect(s.s(t)).toBe(1);
    }
  });

  it('discrete timestep <-> sigma maps are exact at training sigmas and inverse between them', () => {
    for (const s of all) {
      const d = s.discrete;
      if (!d) continue;
      for (const i of [0, 1, 17, d.T - 2, d.T - 1]) {
        expect(d.timestep(d.sigmas[i] as number)).toBeCloseTo(i, 9);
        expect(d.sigmaAt(i)).toBe(d.sigmas[i] as number);
      }
      const frac = 123.25;
      expect(d.timestep(d.sigmaAt(frac))).toBeCloseTo(frac, 9);
      // log-linear between neighbours
      const mid = Math.sqrt((d.sigmas[123] as number) * (d.sigmas[124] as number));
      expect(d.timestep(mid)).toBeCloseTo(123.5, 9);
    }
  });

  it('createSchedule rejects an unknown type and lists the valid ones', () => {
    expect(() => createSchedule({ type: 'quadratic' } as unknown as ScheduleConfig)).toThrow(
      /unknown schedule type 'quadratic'; choose one of: linear, cosine, sigmoid, sqrt, geometric, edm/,
    );
  });
});

describe('noise schedules: each matches its paper', () => {
  it('linear (DDPM): alpha_bar_i = prod (1 - beta_j), beta linear 1e-4..0.02, T = 1000', () => {
    const s = createSchedule({ type: 'linear', betaStart: 1e-4, betaEnd: 0.02, T: 1000 });
    const d = s.discrete!;
    let prod = 1;
    for (let i = 0; i < 1000; i++) {
      const beta = 1e-4 + (i / 999) * (0.02 - 1e-4);
      prod *= 1 - beta;
      if ([0, 9, 499, 999].includes(i)) {
        expect(relErr(d.alphaBars[i] as number, prod)).toBeLessThan(1e-12);
        expect(relErr(d.sigmas[i] as number, Math.sqrt((1 - prod) / prod))).toBeLessThan(1e-9);
      }
    }
    // The widely quoted terminal value: alpha_bar_T = 4.0358e-5 (Lin et al. 2023, sqrt = 0.006353).
    expect(relErr(d.alphaBars[999] as number, 4.0358e-5)).toBeLessThan(1e-3);
    // Continuous form: the VP SDE, alpha_bar(t) = exp(-(0.1 t + (20 - 0.1) t^2 / 2)) (Song et al. 2021, eq. 33).
    for (const t of [0.001, 0.25, 0.5, 1]) {
      const ab = Math.exp(-(0.1 * t + 0.5 * 19.9 * t * t));
      expect(relErr(s.s(t) ** 2, ab)).toBeLessThan(1e-12);
    }
  });

  it('linear: discrete and continuous forms agree to the O(beta^2) Riemann-sum bound', () => {
    const T = 1000;
    const s = createSchedule({ type: 'linear', T });
    const d = s.discrete!;
    let sumSq = 0;
    for (let i = 0; i < T; i++) {
      const beta = 1e-4 + (i / (T - 1)) * (0.02 - 1e-4);
      sumSq += beta * beta;
      const gap = Math.abs(Math.log(d.alphaBars[i] as number) - Math.log(s.s(d.timeOf(i)) ** 2));
      // -log(1 - b) - b <= b^2 for b <= 1/2, plus the left/right Riemann offset of the linear part
      // (betaEnd - betaStart) (i+1)(T-1-i) / (2 T (T-1)) <= 0.0025.
      const riemann = ((0.02 - 1e-4) * (i + 1) * (T - 1 - i)) / (2 * T * (T - 1));
      expect(gap).toBeLessThanOrEqual(sumSq + riemann);
    }
    expect(sumSq / 2).toBeGreaterThan(0.06); // the bound is not vacuous-by-zero: ~0.067 at the end
  });

  it("cosine (iDDPM eq. 17): alpha_bar_i = f(t)/f(0) exactly where beta is not clipped; last beta clipped at 0.999", () => {
    const T = 1000;
    const s0 = 0.008;
    const s = createSchedule({ type: 'cosine', s: s0, T });
    const d = s.discrete!;
    const f = (t: number): number => Math.cos(((t + s0) / (1 + s0)) * (Math.PI / 2)) ** 2;
    for (const i of [0, 1, 100, 500, 900, 998]) {
      expect(relErr(d.alphaBars[i] as number, f((i + 1) / T) / f(0))).toBeLessThan(1e-9);
      expect(relErr(s.s(d.timeOf(i)) ** 2, d.alphaBars[i] as number)).toBeLessThan(1e-9);
    }
    // beta_{T} = 1 - f(1)/f(1 - 1/T) = 1 is clipped to 0.999
    expect(relErr(d.alphaBars[T - 1] as number, (d.alphaBars[T - 2] as number) * 0.001)).toBeLessThan(1e-12);
    // and the continuous domain ends where it reaches the same finite sigma
    expect(relErr(s.sigmaMax, d.sigmas[T - 1] as number)).toBeLessThan(1e-9);
    expect(s.tMax).toBeLessThan(1);
    expect(s.tMax).toBeGreaterThan(1 - 1 / T);
    expect(relErr(s.sigmaMin, d.sigmas[0] as number)).toBeLessThan(1e-12);
  });

  it('sigmoid (Chen 2023, Algorithm 1): gamma(t) at sample points', () => {
    const [start, end, tau] = [-3, 3, 1.1];
    const s = createSchedule({ type: 'sigmoid', start, end, tau, T: 500 });
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    const gamma = (t: number): number =>
      (sig(end / tau) - sig((t * (end - start) + start) / tau)) / (sig(end / tau) - sig(start / tau));
    for (const t of [0.01, 0.2, 0.5, 0.8, 0.99]) expect(relErr(s.s(t) ** 2, gamma(t))).toBeLessThan(1e-12);
    const d = s.discrete!;
    for (const i of [0, 250, 498]) expect(relErr(d.alphaBars[i] as number, gamma((i + 1) / 500))).toBeLessThan(1e-9);
  });

  it('sqrt (Diffusion-LM): alpha_bar = 1 - sqrt(t + s), normalized like its betas_for_alpha_bar', () => {
    const T = 2000;
    const s0 = 1e-4;
    const s = createSchedule({ type: 'sqrt', s: s0, T });
    const d = s.discrete!;
    const ab = (t: number): number => (1 - Math.sqrt(t + s0)) / (1 - Math.sqrt(s0));
    for (const i of [0, 10, 1000, 1990, T - 2]) expect(relErr(d.alphaBars[i] as number, ab((i + 1) / T))).toBeLessThan(1e-9);
    for (const t of [0.001, 0.3, 0.9]) expect(relErr(s.s(t) ** 2, ab(t))).toBeLessThan(1e-12);
    // beta_T = 1 - ab(1)/ab(1 - 1/T) > 1 (ab(1) < 0) is clipped to 0.999
    expect(relErr(d.alphaBars[T - 1] as number, (d.alphaBars[T - 2] as number) * 0.001)).toBeLessThan(1e-12);
  });

  it('geometric VE: sigma(t) = sigma_min (sigma_max/sigma_min)^t, discrete levels geometric', () => {
    const s = createSchedule({ type: 'geometric', sigmaMin: 0.01, sigmaMax: 1, T: 10 });
    for (const t of [0, 0.3, 0.5, 1]) expect(relErr(s.sigma(t), 0.01 * 100 ** t)).toBeLessThan(1e-13);
    const d = s.discrete!;
    expect(d.sigmas[0]).toBeCloseTo(0.01, 14);
    expect(d.sigmas[9]).toBeCloseTo(1, 14);
    for (let i = 1; i < 10; i++) expect((d.sigmas[i] as number) / (d.sigmas[i - 1] as number)).toBeCloseTo(100 ** (1 / 9), 12);
    expect(d.alphaBars.every((a) => a === 1)).toBe(true);
    for (let i = 0; i < 10; i++) expect(relErr(s.sigma(d.timeOf(i)), d.sigmas[i] as number)).toBeLessThan(1e-13);
  });

  it('EDM: sigma(t) = t, s = 1, sigma in [0.002, 80], no discrete form', () => {
    const s = createSchedule({ type: 'edm' });
    expect([s.tMin, s.tMax, s.sigmaMin, s.sigmaMax]).toEqual([0.002, 80, 0.002, 80]);
    for (const t of [0.002, 1, 80]) expect(s.sigma(t)).toBe(t);
    expect(s.discrete).toBeUndefined();
  });
});

describe('sampling-time discretizations', () => {
  it('karras: endpoints, midpoint, monotone, trailing zero (EDM eq. 5)', () => {
    for (const n of [1, 2, 7, 18]) {
      const sig = karrasSigmas(n, 0.002, 80, 7);
      expect(sig).toHaveLength(n + 1);
      expect(sig[n]).toBe(0);
      expect(sig[0]).toBeCloseTo(80, 12);
      if (n > 1) expect(relErr(sig[n - 1] as number, 0.002)).toBeLessThan(1e-12);
      for (let i = 1; i <= n; i++) expect(sig[i] as number).toBeLessThan(sig[i - 1] as number);
    }
    const sig = karrasSigmas(7, 0.002, 80, 7);
    expect(relErr(sig[3] as number, ((80 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7)).toBeLessThan(1e-12);
    const i = 2;
    expect(relErr(sig[i] as number, (80 ** (1 / 7) + (i / 6) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7)).toBeLessThan(1e-12);
    // rho = 1 is uniform in sigma
    expect(karrasSigmas(3, 1, 3, 1).map((x) => +x.toFixed(12))).toEqual([3, 2, 1, 0]);
  });

  it('log-uniform: constant ratio, endpoints, trailing zero', () => {
    const sig = logUniformSigmas(5, 0.01, 100);
    expect(sig).toHaveLength(6);
    expect(sig[5]).toBe(0);
    for (let i = 0; i < 5; i++) expect(relErr(sig[i] as number, 100 * 0.1 ** i)).toBeLessThan(1e-12);
  });

  it('uniform in t: equally spaced times of the schedule, descending', () => {
    const s = createSchedule({ type: 'cosine' });
    const sig = uniformTimeSigmas(s, 10);
    expect(sig).toHaveLength(11);
    expect(sig[10]).toBe(0);
    const ts = sig.slice(0, 10).map((x) => s.t(x));
    for (let i = 0; i < 10; i++) expect(ts[i]).toBeCloseTo(s.tMax + (i / 9) * (s.tMin - s.tMax), 10);
    // on EDM (sigma = t) uniform t is uniform sigma
    const edm = uniformTimeSigmas(createSchedule({ type: 'edm', sigmaMin: 1, sigmaMax: 5 }), 5);
    expect(edm.map((x) => +x.toFixed(12))).toEqual([5, 4, 3, 2, 1, 0]);
  });

  it('leading / linspace / trailing match Lin et al. 2023 Table 2 (T = 1000, 10 steps, 1-based)', () => {
    const oneBased = (sp: 'leading' | 'linspace' | 'trailing'): number[] =>
      spacedTimesteps(sp, 10, 1000).map((t) => t + 1).reverse();
    expect(oneBased('leading')).toEqual([1, 101, 201, 301, 401, 501, 601, 701, 801, 901]);
    expect(oneBased('linspace')).toEqual([1, 112, 223, 334, 445, 556, 667, 778, 889, 1000]);
    expect(oneBased('trailing')).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    // Stable Diffusion's steps_offset = 1
    expect(spacedTimesteps('leading', 4, 1000, 1)).toEqual([751, 501, 251, 1]);
    // numpy rounding (half to even) on an uneven split: round(arange(1000, 0, -1000/3)) - 1
    expect(spacedTimesteps('trailing', 3, 1000)).toEqual([999, 666, 332]);
    expect(spacedTimesteps('linspace', 4, 10)).toEqual([9, 6, 3, 0]);
    expect(() => spacedTimesteps('leading', 11, 10)).toThrow(/cannot take 11/);
  });

  it('timestep spacings return the training sigmas of those timesteps, descending, with the trailing 0', () => {
    const s = createSchedule({ type: 'linear' });
    const sig = sigmasFor('trailing', s, 10);
    expect(sig).toHaveLength(11);
    expect(sig[10]).toBe(0);
    expect(sig[0]).toBe(s.discrete!.sigmas[999]);
    expect(sig[9]).toBe(s.discrete!.sigmas[99]);
    const lead = sigmasFor('leading', s, 10);
    expect(lead[0]).toBe(s.discrete!.sigmas[900]);
    expect(lead[9]).toBe(s.discrete!.sigmas[0]);
  });

  it('createDiscretization: every id works on a discrete schedule; unknown ids and missing timesteps are errors', () => {
    const s = createSchedule({ type: 'linear' });
    for (const id of DISCRETIZATION_IDS) {
      const sig = createDiscretization(id)(s, 12);
      expect(sig).toHaveLength(13);
      expect(sig[12]).toBe(0);
      for (let i = 1; i < sig.length; i++) expect(sig[i] as number).toBeLessThan(sig[i - 1] as number);
    }
    expect(sigmasFor('karras', s, 5, { sigmaMin: 0.1, sigmaMax: 10 })[0]).toBeCloseTo(10, 12);
    expect(() => createDiscretization('ddim')).toThrow(
      /unknown discretization 'ddim'; choose one of: uniform, karras, log-uniform, leading, linspace, trailing/,
    );
    expect(() => sigmasFor('leading', createSchedule({ type: 'edm' }), 5)).toThrow(/has none/);
  });
});
