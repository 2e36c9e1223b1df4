import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/core/backend/select.js';
import {
  createParametrization,
  edmPreconditioning,
  effectiveTarget,
  epsilonParametrization,
  makeDenoiser,
  scoreParametrization,
  vParametrization,
  x0Parametrization,
  type Parametrization,
  type RawNetwork,
} from '../../src/core/parametrizations.js';
import { Rng } from '../../src/core/random.js';
import { createSchedule } from '../../src/core/schedules/index.js';
import { expectNoTensorLeak, maxRelError } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const linear = createSchedule({ type: 'linear' });
const cosine = createSchedule({ type: 'cosine' });
const geometric = createSchedule({ type: 'geometric' });

/** A batch [B, 3, 2] of data and noise, and training sigmas of the linear schedule at timesteps `steps`. */
function batch(steps: number[]) {
  const rng = new Rng(7);
  const B = steps.length;
  const x0 = rng.normalTensor([B, 3, 2]);
  const eps = rng.normalTensor([B, 3, 2]);
  const sigmas = steps.map((i) => linear.discrete!.sigmas[i] as number);
  const sig = tf.tensor(sigmas, [B, 1, 1]);
  const x = tf.add(x0, tf.mul(sig, eps));
  sig.dispose();
  return { x0, eps, x, sigmas, dispose: () => tf.dispose([x0, eps, x]) };
}

function perRow(values: number[]): tf.Tensor {
  return tf.tensor(values, [values.length, 1, 1]);
}

/**
 * Runs makeDenoiser(net, param) where `net` checks its inputs against `expectIn`/`expectNoise`
 * and returns `ideal`; returns max relative error of D against x0.
 */
async function denoiseWithIdeal(
  param: Parametrization,
  b: ReturnType<typeof batch>,
  ideal: tf.Tensor,
  expectIn: tf.Tensor,
  expectNoise: number[],
): Promise<number> {
  let seenIn = Infinity;
  let seenNoise: Float32Array | Int32Array | Uint8Array = new Float32Array();
  const net: RawNetwork = (xIn, cNoise) => {
    seenIn = maxRelError(xIn.dataSync(), expectIn.dataSync());
    seenNoise = cNoise.dataSync();
    return ideal.clone();
  };
  const D = makeDenoiser(net, param);
  const err = await expectNoTensorLeak(async () => {
    const sig = tf.tensor1d(b.sigmas);
    const d = D(b.x, sig);
    const e = maxRelError(await d.data(), await b.x0.data());
    tf.dispose([sig, d]);
    return e;
  }, param.type);
  expect(seenIn, 'network input').toBeLessThan(1e-6);
  // sigma travels as float32, so c_noise is that of the float32-rounded sigma.
  expect(seenNoise).toHaveLength(expectNoise.length);
  expectNoise.forEach((v, i) => expect(Math.abs((seenNoise[i] as number) - v)).toBeLessThan(2e-6 * Math.max(1, Math.abs(v))));
  return err;
}

describe('parametrizations: the ideal network output gives D = x0', () => {
  const steps = [0, 10, 250, 700, 999];

  it('epsilon on DDPM: the network sees x_t = sqrt(ab) x0 + sqrt(1-ab) eps and the integer timestep', async () => {
    const b = batch(steps);
    const ab = steps.map((i) => linear.discrete!.alphaBars[i] as number);
    const xt = tf.tidy(() =>
      tf.add(tf.mul(perRow(ab.map(Math.sqrt)), b.x0), tf.mul(perRow(ab.map((a) => Math.sqrt(1 - a))), b.eps)),
    );
    const err = await denoiseWithIdeal(epsilonParametrization(linear), b, b.eps, xt, steps);
    // float32 x - sigma*eps with sigma up to 157: the cancellation costs ~ sigma * 2^-24 relative to |x0|.
    expect(err).toBeLessThan(1e-4);
    tf.dispose(xt);
    b.dispose();
  });

  it('x0 on a continuous cosine schedule: the network sees x_t and t(sigma)', async () => {
    const b = batch(steps);
    const ts = b.sigmas.map((s) => cosine.t(s));
    const xt = tf.tidy(() => tf.mul(perRow(ts.map((t) => cosine.s(t))), b.x));
    const err = await denoiseWithIdeal(x0Parametrization(cosine, { noiseInput: 'time' }), b, b.x0, xt, ts);
    expect(err).toBeLessThan(1e-6);
    tf.dispose(xt);
    b.dispose();
  });

  it('v (Salimans & Ho 2022): v = alpha eps - sigma_vp x0', async () => {
    const b = batch(steps);
    const ab = steps.map((i) => linear.discrete!.alphaBars[i] as number);
    const alpha = ab.map(Math.sqrt);
    const sigVp = ab.map((a) => Math.sqrt(1 - a));
    const v = tf.tidy(() => tf.sub(tf.mul(perRow(alpha), b.eps), tf.mul(perRow(sigVp), b.x0)));
    const xt = tf.tidy(() => tf.add(tf.mul(perRow(alpha), b.x0), tf.mul(perRow(sigVp), b.eps)));
    const err = await denoiseWithIdeal(vParametrization(linear), b, v, xt, steps);
    expect(err).toBeLessThan(1e-5);
    tf.dispose([v, xt]);
    b.dispose();
  });

  it('score (NCSN): F = sigma * grad log p(x | x0) = -eps, network sees x and ln(sigma/2)', async () => {
    const b = batch(steps);
    const negEps = tf.neg(b.eps);
    const err = await denoiseWithIdeal(
      scoreParametrization(),
      b,
      negEps,
      b.x,
      b.sigmas.map((s) => Math.log(s / 2)),
    );
    expect(err).toBeLessThan(1e-4);
    tf.dispose(negEps);
    b.dispose();
  });

  it('EDM: F = (x0 - c_skip x) / c_out with the paper coefficients; network sees x / sqrt(sigma^2 + sd^2), ln(sigma)/4', async () => {
    const b = batch(steps);
    const sd = 0.5;
    const cSkip = b.sigmas.map((s) => (sd * sd) / (s * s + sd * sd));
    const cOut = b.sigmas.map((s) => (s * sd) / Math.sqrt(s * s + sd * sd));
    const ideal = tf.tidy(() => tf.div(tf.sub(b.x0, tf.mul(perRow(cSkip), b.x)), perRow(cOut)));
    const xIn = tf.tidy(() => tf.mul(perRow(b.sigmas.map((s) => 1 / Math.sqrt(s * s + sd * sd))), b.x));
    const err = await denoiseWithIdeal(
      edmPreconditioning({ sigmaData: sd }),
      b,
      ideal,
      xIn,
      b.sigmas.map((s) => Math.log(s) / 4),
    );
    expect(err).toBeLessThan(1e-5);
    tf.dispose([ideal, xIn]);
    b.dispose();
  });

  it('effectiveTarget is eps, x0, v, -eps for the classical parametrizations', async () => {
    const b = batch(steps);
    const ab = steps.map((i) => linear.discrete!.alphaBars[i] as number);
    const v = tf.tidy(() =>
      tf.sub(tf.mul(perRow(ab.map(Math.sqrt)), b.eps), tf.mul(perRow(ab.map((a) => Math.sqrt(1 - a))), b.x0)),
    );
    const negEps = tf.neg(b.eps);
    const cases: [Parametrization, tf.Tensor, number][] = [
      [epsilonParametrization(linear), b.eps, 1e-4],
      [x0Parametrization(linear), b.x0, 1e-6],
      [vParametrization(linear), v, 1e-5],
      [scoreParametrization(), negEps, 1e-4],
    ];
    for (const [param, want, tol] of cases) {
      const got = effectiveTarget(param, b.x0, b.x, b.sigmas);
      expect(maxRelError(got.dataSync(), want.dataSync()), param.type).toBeLessThan(tol);
      got.dispose();
    }
    tf.dispose([v, negEps]);
    b.dispose();
  });
});

describe('parametrization coefficients', () => {
  it('EDM coefficients match Table 1 and give unit-variance input and target for data of std sigma_data', () => {
    for (const sd of [0.5, 1, 2]) {
      const p = edmPreconditioning({ sigmaData: sd });
      for (const s of [0.002, 0.1, 0.5, 1, 10, 80]) {
        const c = p.coefficients(s);
        expect(c.cSkip).toBeCloseTo((sd * sd) / (s * s + sd * sd), 14);
        expect(c.cOut).toBeCloseTo((s * sd) / Math.sqrt(s * s + sd * sd), 14);
        expect(c.cIn).toBeCloseTo(1 / Math.sqrt(s * s + sd * sd), 14);
        expect(c.cNoise).toBeCloseTo(Math.log(s) / 4, 14);
        // EDM appendix B.6 (https://arxiv.org/abs/2206.00364): Var[c_in x] = 1 and Var[F_target] = 1 for x0 ~ N(0, sd^2).
        expect(c.cIn ** 2 * (sd * sd + s * s)).toBeCloseTo(1, 12);
        expect(((1 - c.cSkip) ** 2 * sd * sd + c.cSkip ** 2 * s * s) / c.cOut ** 2).toBeCloseTo(1, 10);
      }
    }
  });

  it('v-prediction is EDM with sigma_data = 1 and the output sign flipped', () => {
    const v = vParametrization(linear, { noiseInput: 'edm' });
    const e = edmPreconditioning({ sigmaData: 1 });
    for (const s of [0.01, 0.3, 1, 7, 150]) {
      const a = v.coefficients(s);
      const b = e.coefficients(s);
      expect(a.cSkip).toBeCloseTo(b.cSkip, 14);
      expect(a.cOut).toBeCloseTo(-b.cOut, 14);
      expect(a.cIn).toBeCloseTo(b.cIn, 14);
      expect(a.cNoise).toBe(b.cNoise);
    }
  });

  it('epsilon on a VE schedule feeds x unscaled; timestep input needs training timesteps', () => {
    expect(epsilonParametrization(geometric).coefficients(3)).toMatchObject({ cSkip: 1, cOut: -3, cIn: 1 });
    expect(epsilonParametrization(geometric).coefficients(geometric.discrete!.sigmas[42] as number).cNoise).toBeCloseTo(42, 9);
    const edm = createSchedule({ type: 'edm' });
    expect(epsilonParametrization(edm).coefficients(2.5).cNoise).toBe(2.5); // continuous time t = sigma
    expect(() => epsilonParametrization(edm, { noiseInput: 'timestep' })).toThrow(/training timesteps/);
  });

  it('createParametrization by id; unknown ids list the valid ones', () => {
    expect(createParametrization({ type: 'edm', sigmaData: 1 }).coefficients(1).cSkip).toBeCloseTo(0.5, 14);
    expect(createParametrization({ type: 'v' }, linear).type).toBe('v');
    expect(() => createParametrization({ type: 'epsilon' })).toThrow(/needs a noise schedule/);
    expect(() => createParametrization({ type: 'flow' } as never, linear)).toThrow(
      /unknown parametrization 'flow'; choose one of: epsilon, x0, v, score, edm/,
    );
  });

  it('makeDenoiser rejects a sigma of the wrong shape and a network output of the wrong shape', () => {
    const D = makeDenoiser((xIn) => xIn.sum(-1), edmPreconditioning());
    const x = tf.zeros([2, 3]);
    const good = tf.ones([2]);
    const bad = tf.ones([3]);
    expect(() => D(x, bad as tf.Tensor1D)).toThrow(/sigma must have shape \[2\]/);
    expect(() => D(x, good as tf.Tensor1D)).toThrow(/network output shape/);
    tf.dispose([x, good, bad]);
  });
});
