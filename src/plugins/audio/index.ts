import type { ModalityPlugin } from '../../core/plugin.js';
import { DIGIT_CLASSIFIER_WEIGHTS, loadDigitClassifier } from './classifier/extractor.js';
import { audioDataSchema, audioModelSchema, type AudioDataConfig, type AudioModelConfig } from './config.js';
import { openAudioData } from './data.js';
import { createAudioNetwork } from './diffwave.js';
import { writeAudioSamples, writeSampleRate, writeSpectrogramStrip, windowFor } from './writers.js';

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
  async writeTrajectory(frames, path, ctx) {
    const w = await writeSpectrogramStrip(frames, path, { nFft: windowFor(writeSampleRate(ctx, path)) });
    return [w.path];
  },
  /**
   * FD and KID on the features, IS, mIS and AM on the softmax of difflab's
   * FSDD spoken-digit classifier (src/plugins/audio/classifier, committed
   * with its test accuracy), as DiffWave (Kong et al. 2021,
   * https://arxiv.org/abs/2009.09761, Table 2) scores SC09 with a
   * speech-command classifier. `model` names other weights written by
   * `npm run train:digit-classifier`. The classifier hears 8 kHz audio:
   * clips at another data.sample_rate are resampled to 8 kHz before it. On
   * data that are not spoken digits the class scores (IS, mIS, AM) say
   * little; FD and KID still compare feature statistics.
   */
  async featureExtractor(info, model) {
    const path = model ?? DIGIT_CLASSIFIER_WEIGHTS;
    if (!path.endsWith('.safetensors')) {
      throw new Error(`audio: --features takes digit-classifier weights written by 'npm run train:digit-classifier' (a .safetensors file), got '${path}'`);
    }
    const inputRate = info.data.sample_rate;
    const { extractor } = loadDigitClassifier(path, { inputRate });
    const { minLength, config } = extractor.net;
    const [length, channels] = info.exampleShape;
    // The length the classifier sees once resampled to its rate.
    const heard = length === undefined ? 0 : Math.ceil((length * config.frontEnd.sampleRate) / inputRate);
    if (info.exampleShape.length !== 2 || channels !== 1 || heard < minLength) {
      extractor.dispose();
      throw new Error(
        `audio: the digit classifier needs clips [L, 1] of at least ${minLength} samples at ${config.frontEnd.sampleRate} Hz ` +
          `(${Math.ceil((minLength * inputRate) / config.frontEnd.sampleRate)} at this run's ${inputRate} Hz); this run's are [${info.exampleShape.join(', ')}]`,
      );
    }
    return extractor;
  },
};

export * from './config.js';
export * from './data.js';
export * from './diffwave.js';
export * from './resample.js';
export * from './spectrogram.js';
export * from './wav.js';
export * from './writers.js';
