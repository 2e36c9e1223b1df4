import type { DataContext, Split } from '../../../core/plugin.js';
import type { HostTensor } from '../../../core/parallel/types.js';
import { Rng } from '../../../core/random.js';
import { audioDataSchema } from '../config.js';
import { openAudioData, type AudioDataSource } from '../data.js';

/**
 * FSDD (Free Spoken Digit Dataset, https://github.com/Jakobovski/free-spoken-digit-dataset):
 * 3,000 8 kHz recordings `{digit}_{speaker}_{index}.wav`; the official split
 * puts recordings 0-4 of every digit and speaker in the test set (300 clips)
 * and 5-49 in the training set (2,700). Read through the audio plugin's own
 * data layer, with the settings of configs/audio-fsdd.yaml (peak-normalized
 * to 0.95), so the classifier sees clips exactly as the diffusion model does.
 */
export const FSDD_SAMPLE_RATE = 8000;

export async function openFsdd(dir: string, split: Split, length: number, log: (s: string) => void = () => {}): Promise<AudioDataSource> {
  const cfg = audioDataSchema.parse({
    path: dir,
    sample_rate: FSDD_SAMPLE_RATE,
    length,
    crop: 'random',
    pad: 'random',
    normalize: 'peak',
    pattern: '{digit}_{speaker}_{index}.wav',
    labels: { field: 'digit' },
    split: { by: 'index', test_range: [0, 4] },
  });
  const ctx: DataContext = { split, baseDir: process.cwd(), rng: new Rng(0), log };
  return openAudioData(cfg, ctx);
}

/**
 * Augmentation for a classifier that has to judge *generated* audio: the
 * generator places words anywhere in the window, at levels that drift from
 * the data's peak normalization, over a floor of residual noise. So each
 * training window gets
 * - a random time shift: the clip at a uniform offset in the zero-padded
 *   window, or a uniform crop of a longer clip;
 * - a random gain, uniform in dB over `gainDb`;
 * - with probability `noiseProb`, white Gaussian noise of std log-uniform in
 *   `noiseStd` (1e-4 .. 1e-2: -80 to -40 dBFS, below the speech: FSDD's
 *   peak-normalized clips have an RMS around 0.1).
 */
export interface AugmentOptions {
  readonly gainDb: readonly [number, number];
  readonly noiseProb: number;
  readonly noiseStd: readonly [number, number];
}

export const DEFAULT_AUGMENT: AugmentOptions = { gainDb: [-12, 0], noiseProb: 0.5, noiseStd: [1e-4, 1e-2] };

/**
 * Windows of `length` samples [B, L, 1] and labels [B] as host tensors (for
 * the trainers). Without `rng`, deterministic: every clip centred (cropped
 * or padded) and not augmented; with `rng`, shifted and augmented.
 */
export function windowBatch(
  source: AudioDataSource,
  indices: readonly number[],
  length: number,
  rng?: Rng,
  augment: AugmentOptions = DEFAULT_AUGMENT,
): { x: HostTensor; labels: HostTensor } {
  if (!source.labelIds) throw new Error(`${source.description}: the digit classifier needs labelled clips`);
  const b = indices.length;
  const x = new Float32Array(b * length);
  const labels = new Int32Array(b);
  indices.forEach((idx, j) => {
    const clip = source.clip(idx);
    const room = Math.abs(clip.length - length);
    const off = rng ? rng.int(room + 1) : Math.floor(room / 2);
    const row = x.subarray(j * length, (j + 1) * length);
    if (clip.length >= length) row.set(clip.subarray(off, off + length));
    else row.set(clip, off);
    if (rng) {
      const gain = 10 ** ((augment.gainDb[0] + (augment.gainDb[1] - augment.gainDb[0]) * rng.uniform()) / 20);
      const [lo, hi] = augment.noiseStd;
      const noise = rng.uniform() < augment.noiseProb ? Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * rng.uniform()) : 0;
      for (let i = 0; i < length; i++) row[i] = row[i]! * gain + (noise > 0 ? noise * rng.normal() : 0);
    }
    labels[j] = source.labelIds![idx]!;
  });
  return { x: { shape: [b, length, 1], dtype: 'float32', data: x }, labels: { shape: [b], dtype: 'int32', data: labels } };
}
