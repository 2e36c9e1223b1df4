import type { ModalityPlugin } from '../../core/plugin.js';
import { audioDataSchema, audioModelSchema, type AudioDataConfig, type AudioModelConfig } from './config.js';
import { openAudioData } from './data.js';
import { createAudioNetwork } from './diffwave.js';
import { writeAudioSamples, writeSpectrogramStrip } from './writers.js';

/** The sample rate WAVs are written at when no audio data set has been opened in this process (FSDD's rate). */
export const DEFAULT_WRITE_SAMPLE_RATE = 8000;

/**
 * `ModalityPlugin.writeSamples(x, path)` receives no run config, so the
 * writer cannot read data.sample_rate. The plugin remembers the rate of the
 * data set it opened last in this process (training opens it before any
 * sample is written); a process that only samples (`difflab sample`) never
 * opens data, and writes at DEFAULT_WRITE_SAMPLE_RATE with a note on stderr.
 */
let openedSampleRate: number | undefined;
let warnedDefaultRate = false;

function writeRate(): number {
  if (openedSampleRate !== undefined) return openedSampleRate;
  if (!warnedDefaultRate) {
    warnedDefaultRate = true;
    process.stderr.write(`audio: no data set opened in this process, so WAV files are written at ${DEFAULT_WRITE_SAMPLE_RATE} Hz\n`);
  }
  return DEFAULT_WRITE_SAMPLE_RATE;
}

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
  async openData(config, ctx) {
    const data = await openAudioData(config, ctx);
    openedSampleRate = data.sampleRate;
    return data;
  },
  createNetwork: (config, ctx) => createAudioNetwork(config, ctx),
  async writeSamples(x, path) {
    const w = await writeAudioSamples(x, path, { sampleRate: writeRate() });
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
