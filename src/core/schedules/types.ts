/**
 * The noise-schedule contract.
 *
 * Every forward process is written as x_t = s(t) * (x0 + sigma(t) * eps)
 * (EDM, Karras et al. 2022, https://arxiv.org/abs/2206.00364, eq. 4 and
 * Table 1, "scaling s(t)" and "schedule sigma(t)"). A VP schedule has
 * s = sqrt(alpha_bar), sigma = sqrt((1 - alpha_bar) / alpha_bar); a VE schedule
 * has s = 1. Denoisers always see the VE-frame x = x_t / s(t).
 *
 * Schedules are scalar (float64) objects: they hand out numbers, and callers
 * build tensors from them. That keeps them exact and backend-free.
 */

export type ScheduleKind = 'vp' | 've';

/** The stable ids accepted by `createSchedule`. */
export const SCHEDULE_TYPES = ['linear', 'cosine', 'sigmoid', 'sqrt', 'geometric', 'edm'] as const;
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];

/**
 * The T training timesteps of a discrete model (DDPM, iDDPM, NCSN's L noise
 * levels). Index i = 0..T-1 runs from the least to the most noisy level
 * (NCSN numbers its levels the other way round; this module does not).
 */
export interface DiscreteSchedule {
  readonly T: number;
  /** sigma_i of training timestep i, ascending, length T. */
  readonly sigmas: readonly number[];
  /** alpha_bar_i = s_i^2 = 1 / (1 + sigma_i^2) for VP; 1 for VE. Length T. */
  readonly alphaBars: readonly number[];
  /** The continuous time of timestep i (for VP: (i+1)/T, for geometric VE: i/(T-1)). */
  timeOf(i: number): number;
  /**
   * The (fractional) timestep of a noise level: linear interpolation of the
   * index in log sigma, clamped to [0, T-1] (k-diffusion's
   * `DiscreteSchedule.sigma_to_t`). Exact integers for training sigmas.
   */
  timestep(sigma: number): number;
  /** The sigma of a (fractional) timestep: log-linear interpolation, inverse of `timestep`. */
  sigmaAt(timestep: number): number;
}

export interface NoiseSchedule {
  readonly type: ScheduleType;
  readonly kind: ScheduleKind;
  /**
   * The continuous-time domain [tMin, tMax]. It is a subinterval of [0, 1]
   * for every schedule except EDM, whose time *is* sigma (Karras et al. 2022,
   * Table 1: sigma(t) = t), so tMin = sigmaMin and tMax = sigmaMax there.
   */
  readonly tMin: number;
  readonly tMax: number;
  /** sigma(tMin) and sigma(tMax): the noise range a sampler should cover. */
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** Noise level of time t (VE frame). Increasing in t. */
  sigma(t: number): number;
  /** Scale of time t: x_t = s(t) (x0 + sigma(t) eps). */
  s(t: number): number;
  /** Inverse of sigma(t), clamped to [tMin, tMax]. */
  t(sigma: number): number;
  /** log SNR(t) = log(s^2 / (s^2 sigma^2)) = -2 log sigma(t). */
  logSNR(t: number): number;
  /** The training timesteps, when the schedule has a discrete form (EDM has none). */
  readonly discrete: DiscreteSchedule | undefined;
}
