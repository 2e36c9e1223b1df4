import type { ModalityPlugin } from '../../core/plugin.js';
import { audioDataSchema, audioModelSchema, type AudioDataConfig, type AudioModelConfig } from './config.js';
import { openAudioData } from './data.js';
import { createAudioNetwork } from './diffwave.js';
import { writeAudioSamples, writeSampleRate, writeSpectrogramStrip } from './writers.js';

/**
 * The audio-waveform modality: WAV files (wav-decoder) in, resampled,
 * mono, cropped or padded to [length, 1]; a DiffWave denoiser; WAV files and
 * spectrogram PNGs out.
 */
export const audioPlugin: ModalityPlugin<AudioDataConfig, AudioModelConfig> = {
  id: 'audio',
  description: 'mono waveforms [T, 1]: WAV folders or list files, resampled and cropped/padded; DiffWave denoiser; WAV + spectrogram PNG writers',
  source: { module: import.meta.url, exportName: 'audioPlugin' },
  dataSchema: audioDataSchema as unknown as ModalityPlugin<AudioDataConfig, AudioModelConfig>['dataSchema'],
  modelSchema: audioModelSchema as unknown as ModalityPlugin<AudioDataConfig, AudioModelConfig>['modelSchema'],
  openData: (config, ctx) => openAudioData(config, ctx),
  createNetwork: (config, ctx) => createAudioNetwork(config, ctx),
  async writeSamples(x, path, ctx) {
    // The WAVs play at the rate the run's data were resampled to (data.sample_rate).
    const w = await writeAudioSamples(x, path, { sampleRate: writeSampleRate(ctx, path) });
    if (w.clipped > 0) process.stderr.write(`audio: ${w.clipped} sample value(s) outside [-1, 1) clipped in ${w.wavs.length} WAV file(s)\n`);
    return [w.png, ...w.wavs];
  },
  async writeTrajectory(frames, path) {
    const w = await writeSpectrogramStrip(frames, path);
    return [w.path];
  },
};

export * from './config.js';
export * from './data.js';
export * from './diffwave.js';
export * from './resample.js';
export * from './spectrogram.js';
export * from './wav.js';
export * from './writers.js';
