/**
 * The discrete (T training timesteps) form of a schedule, built from its
 * ascending sigmas.
 */
import type { DiscreteSchedule } from './types.js';

/**
 * A DiscreteSchedule over the ascending training sigmas `sigmas` (length T),
 * with `timeOf(i)` giving each timestep's continuous time.
 */
export function discreteSchedule(
  sigmas: readonly number[],
  alphaBars: readonly number[],
  timeOf: (i: number) => number,
): DiscreteSchedule {
  const T = sigmas.length;
  if (T < 1 || alphaBars.length !== T) throw new Error(`discrete schedule: need T >= 1 sigmas and as many alpha_bars`);
  const logSigmas = sigmas.map((s, i) => {
    if (!(s > 0) || !Number.isFinite(s)) throw new Error(`discrete schedule: sigma_${i} = ${s} is not finite and positive`);
    return Math.log(s);
  });
  for (let i = 1; i < T; i++) {
    if (!((logSigmas[i] as number) > (logSigmas[i - 1] as number))) {
      throw new Error(`discrete schedule: sigmas must increase strictly (sigma_${i - 1} >= sigma_${i})`);
    }
  }
  const at = (i: number): number => logSigmas[i] as number;
  return {
    T,
    sigmas: Object.freeze([...sigmas]),
    alphaBars: Object.freeze([...alphaBars]),
    timeOf(i: number): number {
      if (!Number.isInteger(i) || i < 0 || i >= T) throw new Error(`timestep ${i} outside [0, ${T - 1}]`);
      return timeOf(i);
    },
    // k-diffusion DiscreteSchedule.sigma_to_t: interpolate the index linearly in log sigma.
    timestep(sigma: number): number {
      if (T === 1) return 0;
      const ls = Math.log(sigma);
      if (!(ls > at(0))) return 0;
      if (!(ls < at(T - 1))) return T - 1;
      let lo = 0;
      let hi = T - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (at(mid) <= ls) lo = mid;
        else hi = mid;
      }
      return lo + (ls - at(lo)) / (at(hi) - at(lo));
    },
    // k-diffusion DiscreteSchedule.t_to_sigma: log-linear interpolation between neighbours.
    sigmaAt(timestep: number): number {
      const tau = Math.min(Math.max(timestep, 0), T - 1);
      const lo = Math.floor(tau);
      const hi = Math.min(lo + 1, T - 1);
      const w = tau - lo;
      if (w === 0) return sigmas[lo] as number;
      return Math.exp((1 - w) * at(lo) + w * at(hi));
    },
  };
}
