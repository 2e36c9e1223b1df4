import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { get_encoding, type Tiktoken, type TiktokenEncoding } from 'tiktoken';
import type { DataContext, DataSource, ExampleBatch } from '../../core/plugin.js';
import type { TextDataConfig } from './config.js';

/**
 * Text corpora in token space: a UTF-8 plain-text or JSON-lines file,
 * tokenized with tiktoken (its BPE ranks ship inside the npm package, so no
 * download), split by position (the first `train_fraction` of the
 * characters trains, as Karpathy's char-rnn / nanoGPT split Tiny
 * Shakespeare), cut into fixed-length windows padded at the end.
 *
 * The vocabulary is restricted to the tokens of the training split (those
 * seen at least `min_count` times), plus an unknown token and a pad token:
 * ids 0..V-1 are the kept tiktoken tokens in ascending tiktoken id, V is
 * unknown, V + 1 is pad. The model's softmax runs over these V + 2 ids.
 */

export class TextDataError extends Error {
  override readonly name = 'TextDataError';
}

/** What the network, writers and metrics need to know about the vocabulary (kept in every checkpoint). */
export interface TextVocabulary {
  readonly encoding: TiktokenEncoding;
  /** tiktoken id of each restricted id 0..V-1. */
  readonly tokens: readonly number[];
  readonly unk: number;
  readonly pad: number;
}

/** Total ids of a vocabulary: V kept tokens + unknown + pad. */
export function vocabSize(v: TextVocabulary): number {
  return v.tokens.length + 2;
}

const encoders = new Map<string, Tiktoken>();

/** A cached tiktoken encoder (building one parses ~50k BPE ranks, ~0.2 s). */
export function tiktokenEncoder(name: TiktokenEncoding): Tiktoken {
  let enc = encoders.get(name);
  if (!enc) {
    enc = get_encoding(name);
    encoders.set(name, enc);
  }
  return enc;
}

/** tiktoken ids of `text`: special-token strings such as <|endoftext|> are plain text here. */
export function tiktokenIds(text: string, encoding: TiktokenEncoding): Uint32Array {
  return tiktokenEncoder(encoding).encode_ordinary(text);
}

/** Maps tiktoken ids to restricted ids (unknown for tokens outside the vocabulary). */
export class VocabularyIndex {
  private readonly byTiktoken = new Map<number, number>();

  constructor(readonly vocab: TextVocabulary) {
    vocab.tokens.forEach((t, i) => this.byTiktoken.set(t, i));
  }

  toIds(tiktoken: ArrayLike<number>): Int32Array {
    const out = new Int32Array(tiktoken.length);
    for (let i = 0; i < tiktoken.length; i++) out[i] = this.byTiktoken.get(tiktoken[i] as number) ?? this.vocab.unk;
    return out;
  }

  encodeText(text: string): Int32Array {
    return this.toIds(tiktokenIds(text, this.vocab.encoding));
  }

  /** Text of restricted ids: pad ids are dropped, unknown ids shown as `unkText`. */
  decode(ids: ArrayLike<number>, unkText = '\u2047'): string {
    const enc = tiktokenEncoder(this.vocab.encoding);
    const dec = new TextDecoder('utf-8');
    let out = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) out += dec.decode(enc.decode(Uint32Array.from(run)));
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id === this.vocab.pad) continue;
      if (id >= 0 && id < this.vocab.tokens.length) run.push(this.vocab.tokens[id] as number);
      else {
        flush();
        out += unkText;
      }
    }
    flush();
    return out;
  }
}

/** Resolves a data path: absolute as is; relative against the working directory when it exists there, else against baseDir. */
export function resolveTextPath(path: string, baseDir: string, cwd: string = process.cwd()): string {
  if (isAbsolute(path)) return path;
  const fromCwd = resolve(cwd, path);
  if (existsSync(fromCwd)) return fromCwd;
  return resolve(baseDir, path);
}

/** Byte offset of the first invalid UTF-8 sequence, or -1 when the bytes are valid UTF-8. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [len, min] = [2, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [len, min] = [3, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [len, min] = [4, 0x10000];
    else return i;
    if (i + len > n) return i;
    let cp = b & (0xff >> (len + 1));
    for (let k = 1; k < len; k++) {
      const c = bytes[i + k] as number;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid UTF-8 (RFC 3629, sec. 3).
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += len;
  }
  return -1;
}

/** The documents of a corpus file: one for plain text, one per record for JSON lines. Throws one line naming the file. */
export function readCorpus(file: string, cfg: Pick<TextDataConfig, 'format' | 'text_field'>): string[] {
  return readCorpusRecords(file, { ...cfg, label_field: null }).docs;
}

/**
 * The documents and, with `label_field` (JSON lines only), each record's
 * label as a string. Throws one line naming the file (and line).
 */
export function readCorpusRecords(file: string, cfg: Pick<TextDataConfig, 'format' | 'text_field' | 'label_field'>): { docs: string[]; labels?: string[] } {
  if (!existsSync(file)) throw new TextDataError(`${file}: no such file`);
  if (!statSync(file).isFile()) throw new TextDataError(`${file}: not a file`);
  const bytes = readFileSync(file);
  if (bytes.length === 0) throw new TextDataError(`${file}: the file is empty`);
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) throw new TextDataError(`${file}: not valid UTF-8 (invalid byte 0x${(bytes[bad] as number).toString(16).padStart(2, '0')} at byte offset ${bad})`);
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const jsonl = cfg.format === 'jsonl' || (cfg.format === 'auto' && /\.(jsonl|ndjson)$/i.test(file));
  if (!jsonl) {
    if (cfg.label_field !== null) throw new TextDataError(`${file}: data.label_field '${cfg.label_field}' needs a JSON-lines corpus (one record per line), not plain text`);
    if (text.trim() === '') throw new TextDataError(`${file}: the file has no text (only whitespace)`);
    return { docs: [text] };
  }
  const docs: string[] = [];
  const labels: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (err) {
      throw new TextDataError(`${file}:${i + 1}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
    }
    const v = rec !== null && typeof rec === 'object' ? (rec as Record<string, unknown>)[cfg.text_field] : undefined;
    if (typeof v !== 'string') throw new TextDataError(`${file}:${i + 1}: the record has no string field '${cfg.text_field}'`);
    docs.push(v);
    if (cfg.label_field !== null) {
      const l = (rec as Record<string, unknown>)[cfg.label_field];
      if (typeof l !== 'string' && typeof l !== 'number') throw new TextDataError(`${file}:${i + 1}: the record has no string or number field '${cfg.label_field}' (data.label_field)`);
      labels.push(String(l));
    }
  });
  if (docs.length === 0 || docs.every((d) => d.trim() === '')) throw new TextDataError(`${file}: the file has no text records`);
  return cfg.label_field !== null ? { docs, labels } : { docs };
}

/** The train / validation documents: plain text split at a character position, JSON lines by record. */
export function splitCorpus(docs: readonly string[], trainFraction: number, file: string): { train: string[]; test: string[] } {
  if (docs.length === 1) {
    const text = docs[0] as string;
    const cut = Math.floor(text.length * trainFraction);
    return { train: [text.slice(0, cut)], test: [text.slice(cut)] };
  }
  const cut = Math.floor(docs.length * trainFraction);
  if (cut < 1 || cut >= docs.length) {
    throw new TextDataError(`${file}: ${docs.length} records cannot be split ${trainFraction} / ${1 - trainFraction} into two non-empty splits`);
  }
  return { train: docs.slice(0, cut), test: docs.slice(cut) };
}

/** The vocabulary of the training documents' tokens seen at least minCount times. */
export function buildVocabulary(trainTiktoken: readonly ArrayLike<number>[], encoding: TiktokenEncoding, minCount = 1): TextVocabulary {
  const counts = new Map<number, number>();
  for (const doc of trainTiktoken) for (let i = 0; i < doc.length; i++) counts.set(doc[i] as number, (counts.get(doc[i] as number) ?? 0) + 1);
  const tokens = [...counts.entries()].filter(([, c]) => c >= minCount).map(([t]) => t).sort((a, b) => a - b);
  return { encoding, tokens, unk: tokens.length, pad: tokens.length + 1 };
}

/** Fixed-length windows [count * seqLen] of each document's ids, starting every `stride`, the last one padded. */
export function makeWindows(docs: readonly Int32Array[], seqLen: number, stride: number, pad: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (const ids of docs) {
    if (ids.length === 0) continue;
    for (let start = 0; ; start += stride) {
      const w = new Int32Array(seqLen).fill(pad);
      w.set(ids.subarray(start, Math.min(start + seqLen, ids.length)));
      out.push(w);
      if (start + seqLen >= ids.length) break;
    }
  }
  return out;
}

/** A text data source: windows of restricted token ids [seq_len] (data space), embedded by the network. */
export interface TextDataSource extends DataSource {
  readonly vocab: TextVocabulary;
  readonly index: VocabularyIndex;
  /** The windows of this split. */
  readonly windows: readonly Int32Array[];
  /** Every token id of this split's documents, in order (for n-gram models). */
  readonly documents: readonly Int32Array[];
  readonly file: string;
}

interface Prepared {
  vocab: TextVocabulary;
  train: Int32Array[];
  test: Int32Array[];
  /** With data.label_field: the classes (the training split's label values, sorted) and each document's class id. */
  classes?: string[];
  trainLabels?: number[];
  testLabels?: number[];
}

/** A text vocabulary plus, for labelled corpora, the class names (kept with every checkpoint). */
export interface TextDataInfo extends TextVocabulary {
  readonly classes?: readonly string[];
}

/** Tokenizing Tiny Shakespeare takes ~0.3 s; eval opens both splits, so keep the last corpus. */
let cache: { key: string; value: Prepared } | undefined;

function prepare(file: string, cfg: TextDataConfig): Prepared {
  const st = statSync(file);
  const key = JSON.stringify([file, st.size, st.mtimeMs, cfg.format, cfg.text_field, cfg.label_field, cfg.encoding, cfg.train_fraction, cfg.min_count]);
  if (cache?.key === key) return cache.value;
  const { docs, labels } = readCorpusRecords(file, cfg);
  const split = splitCorpus(docs, cfg.train_fraction, file);
  const trainTk = split.train.map((d) => tiktokenIds(d, cfg.encoding));
  const testTk = split.test.map((d) => tiktokenIds(d, cfg.encoding));
  const vocab = buildVocabulary(trainTk, cfg.encoding, cfg.min_count);
  const index = new VocabularyIndex(vocab);
  const value: Prepared = { vocab, train: trainTk.map((t) => index.toIds(t)), test: testTk.map((t) => index.toIds(t)), ...(labels ? classIds(labels, split.train.length, file) : {}) };
  cache = { key, value };
  return value;
}

/** Class names (the training records' labels, sorted) and each record's class id; JSON lines split by record, the first `trainCount` train. */
function classIds(labels: readonly string[], trainCount: number, file: string): Pick<Prepared, 'classes' | 'trainLabels' | 'testLabels'> {
  const [trainNames, testNames] = [labels.slice(0, trainCount), labels.slice(trainCount)];
  const classes = [...new Set(trainNames)].sort();
  const id = new Map(classes.map((c, i) => [c, i]));
  const unseen = testNames.find((n) => !id.has(n));
  if (unseen !== undefined) throw new TextDataError(`${file}: the validation split has label '${unseen}' (data.label_field), which no training record has`);
  return { classes, trainLabels: trainNames.map((n) => id.get(n)!), testLabels: testNames.map((n) => id.get(n)!) };
}

export async function openTextData(cfg: TextDataConfig, ctx: DataContext, opts: { cwd?: string } = {}): Promise<TextDataSource> {
  const file = resolveTextPath(cfg.path, ctx.baseDir, opts.cwd);
  const p = prepare(file, cfg);
  const docs = ctx.split === 'train' ? p.train : p.test;
  const tokens = docs.reduce((n, d) => n + d.length, 0);
  const splitName = ctx.split === 'train' ? 'training' : 'validation';
  if (tokens < cfg.seq_len) {
    throw new TextDataError(`${file}: the ${splitName} split has ${tokens} tokens, fewer than one window of data.seq_len = ${cfg.seq_len}`);
  }
  const stride = cfg.stride ?? cfg.seq_len;
  const docLabels = ctx.split === 'train' ? p.trainLabels : p.testLabels;
  // Windows never cross documents, so each takes its document's class.
  const windows: Int32Array[] = [];
  const windowLabels: number[] = [];
  docs.forEach((d, i) => {
    const ws = makeWindows([d], cfg.seq_len, stride, p.vocab.pad);
    windows.push(...ws);
    if (docLabels) for (let k = 0; k < ws.length; k++) windowLabels.push(docLabels[i] as number);
  });
  const index = new VocabularyIndex(p.vocab);
  if (ctx.split === 'train') {
    ctx.log(
      `text: ${file}: ${tokens.toLocaleString('en-US')} ${cfg.encoding} tokens in the training split, vocabulary ${p.vocab.tokens.length.toLocaleString('en-US')} + unknown + pad, ` +
        `${windows.length.toLocaleString('en-US')} windows of ${cfg.seq_len}` +
        (p.classes ? `, ${p.classes.length} classes from '${cfg.label_field}'` : ''),
    );
  }
  const dataInfo: TextDataInfo = p.classes ? { ...p.vocab, classes: p.classes } : p.vocab;
  return {
    exampleShape: [cfg.seq_len, cfg.embedding_dim],
    dataShape: [cfg.seq_len],
    dataInfo,
    size: windows.length,
    ...(p.classes ? { numClasses: p.classes.length } : {}),
    vocab: p.vocab,
    index,
    windows,
    documents: docs,
    file,
    batch(indices: readonly number[]): ExampleBatch {
      const out = new Int32Array(indices.length * cfg.seq_len);
      indices.forEach((i, r) => {
        const w = windows[i];
        if (!w) throw new RangeError(`text: example ${i} is out of range (0..${windows.length - 1})`);
        out.set(w, r * cfg.seq_len);
      });
      const x = tf.tensor2d(out, [indices.length, cfg.seq_len], 'int32');
      if (!docLabels) return { x };
      return { x, labels: tf.tensor1d(indices.map((i) => windowLabels[i] as number), 'int32') };
    },
  };
}

/** Checks that a checkpoint's dataInfo is a text vocabulary (one line naming the problem). */
export function asVocabulary(info: unknown, where: string): TextVocabulary {
  const v = info as Partial<TextVocabulary> | undefined;
  if (!v || typeof v.encoding !== 'string' || !Array.isArray(v.tokens) || typeof v.unk !== 'number' || typeof v.pad !== 'number') {
    throw new Error(`${where}: the run has no text vocabulary (dataInfo); was it trained with the text plugin?`);
  }
  return v as TextVocabulary;
}
