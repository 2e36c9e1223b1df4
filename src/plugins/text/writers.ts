import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { VocabularyIndex, asVocabulary, type TextVocabulary } from './data.js';

/** `path` with its extension replaced by `.txt` (the CLI's default sample name ends in .png). */
export function textPath(path: string): string {
  const ext = extname(path);
  return ext === '.txt' ? path : `${ext ? path.slice(0, -ext.length) : path}.txt`;
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Rows of token ids [n, L] as text, one sample after another under a `--- sample i ---` line. */
export function formatSamples(ids: tf.Tensor, vocab: TextVocabulary): string[] {
  if (ids.rank !== 2) throw new Error(`text writer: expected token ids [n, L], got [${ids.shape.join(', ')}]`);
  const index = new VocabularyIndex(vocab);
  return (ids.arraySync() as number[][]).map((row) => index.decode(row));
}

export async function writeTextSamples(ids: tf.Tensor, path: string, dataInfo: unknown): Promise<string[]> {
  const texts = formatSamples(ids, asVocabulary(dataInfo, 'text writer'));
  const out = textPath(path);
  writeAtomic(out, texts.map((t, i) => `--- sample ${i} ---\n${t}\n`).join('\n'));
  return [out];
}

/**
 * The trajectory of one sample as text: at each noise level, the rounded
 * iterate x and the rounded denoised estimate x0_hat (token ids [L] each).
 */
export async function writeTextTrajectory(
  frames: readonly { sigma: number; x: tf.Tensor; denoised: tf.Tensor }[],
  path: string,
  dataInfo: unknown,
): Promise<string[]> {
  const index = new VocabularyIndex(asVocabulary(dataInfo, 'text writer'));
  const show = (t: string) => JSON.stringify(t);
  const lines: string[] = ['# denoising trajectory of sample 0: at each noise level the rounded iterate x and rounded x0_hat = D(x; sigma)', ''];
  for (const f of frames) {
    lines.push(`sigma ${f.sigma.toPrecision(4)}`);
    lines.push(`  x       ${show(index.decode(f.x.dataSync()))}`);
    lines.push(`  x0_hat  ${show(index.decode(f.denoised.dataSync()))}`);
  }
  const out = textPath(path);
  writeAtomic(out, `${lines.join('\n')}\n`);
  return [out];
}
