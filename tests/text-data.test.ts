import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/random.js';
import { textDataSchema } from '../src/plugins/text/config.js';
import {
  buildVocabulary,
  firstInvalidUtf8,
  makeWindows,
  openTextData,
  readCorpus,
  tiktokenIds,
  VocabularyIndex,
} from '../src/plugins/text/data.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const dir = mkdtempSync(join(tmpdir(), 'difflab-text-'));
const cfg = (over: Record<string, unknown>) => textDataSchema.parse({ path: 'x.txt', seq_len: 8, ...over });
const ctx = (split: 'train' | 'test') => ({ split, baseDir: dir, rng: new Rng(0), log: () => {} });

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

describe('tokenization', () => {
  it('round-trips text through tiktoken ids and the restricted vocabulary (gpt2, offline)', () => {
    const text = 'ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.';
    const ids = tiktokenIds(text, 'gpt2');
    expect(Array.from(ids.slice(0, 3))).toEqual([33676, 4720, 25]); // 'ROM', 'EO', ':' in GPT-2's BPE
    const vocab = buildVocabulary([ids], 'gpt2');
    const index = new VocabularyIndex(vocab);
    const restricted = index.encodeText(text);
    expect(Math.max(...restricted)).toBeLessThan(vocab.tokens.length);
    expect(index.decode(restricted)).toBe(text);
    // Restricted ids are the kept tiktoken ids in ascending order; unknown and pad follow them.
    expect([...vocab.tokens].sort((a, b) => a - b)).toEqual(vocab.tokens);
    expect([vocab.unk, vocab.pad]).toEqual([vocab.tokens.length, vocab.tokens.length + 1]);
  });

  it('maps tokens outside the training vocabulary to unknown, drops pad, and honours min_count', () => {
    const vocab = buildVocabulary([tiktokenIds('the cat the dog the', 'gpt2')], 'gpt2', 2);
    const index = new VocabularyIndex(vocab);
    expect(vocab.tokens).toEqual(Array.from(tiktokenIds(' the', 'gpt2'))); // 'the', ' cat', ' the', ' dog', ' the': only ' the' twice
    const ids = index.encodeText(' the cat');
    expect(ids[1]).toBe(vocab.unk);
    expect(index.decode([...ids, vocab.pad, vocab.pad], '<unk>')).toBe(' the<unk>');
  });

  it('cuts documents into padded windows with a stride', () => {
    const w = makeWindows([Int32Array.from([1, 2, 3, 4, 5])], 3, 2, 9);
    expect(w.map((x) => Array.from(x))).toEqual([
      [1, 2, 3],
      [3, 4, 5],
    ]);
    expect(makeWindows([Int32Array.from([1, 2, 3, 4])], 3, 3, 9).map((x) => Array.from(x))).toEqual([
      [1, 2, 3],
      [4, 9, 9],
    ]);
  });
});

describe('bad corpora give one-line errors naming the file', () => {
  const expectOneLine = (fn: () => unknown, file: string, re: RegExp) => {
    let msg = '';
    try {
      fn();
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain(file);
    expect(msg).toMatch(re);
    expect(msg).not.toContain('\n');
  };

  it('empty, whitespace-only, non-UTF-8 and bad JSON lines', () => {
    const f = { format: 'auto' as const, text_field: 'text' };
    expectOneLine(() => readCorpus(file('empty.txt', ''), f), 'empty.txt', /the file is empty/);
    expectOneLine(() => readCorpus(file('blank.txt', ' \n\t\n'), f), 'blank.txt', /no text/);
    expectOneLine(() => readCorpus(file('latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])), f), 'latin1.txt', /not valid UTF-8 .*0xe9 at byte offset 3/);
    expectOneLine(() => readCorpus(file('bad.jsonl', '{"text": "ok"}\n{"text": \n'), f), 'bad.jsonl:2', /not valid JSON/);
    expectOneLine(() => readCorpus(file('field.jsonl', '{"body": "ok"}\n'), f), 'field.jsonl:1', /no string field 'text'/);
    expectOneLine(() => readCorpus(join(dir, 'missing.txt'), f), 'missing.txt', /no such file/);
  });

  it('a corpus shorter than one window', async () => {
    const p = file('short.txt', 'To be, or not to be: that is the question.\n' + 'Whether tis nobler.\n');
    await expect(openTextData(cfg({ path: p, seq_len: 64 }), ctx('train'))).rejects.toThrow(/short\.txt: the training split has \d+ tokens, fewer than one window of data\.seq_len = 64/);
  });

  it('UTF-8 validation: overlong forms, surrogates and truncated sequences are invalid; multi-byte text is fine', () => {
    expect(firstInvalidUtf8(Buffer.from('héllo wörld ✓ 𝄞', 'utf8'))).toBe(-1);
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Uint8Array.from([0xed, 0xa0, 0x80]))).toBe(0); // U+D800
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0x42, 0xe2, 0x9c]))).toBe(2); // truncated
    expect(firstInvalidUtf8(Uint8Array.from([0xf5, 0x80, 0x80, 0x80]))).toBe(0); // past U+10FFFF
  });
});

describe('data sources', () => {
  it('JSON lines split by record; windows are int32 ids in data space, embedded to [seq_len, embedding_dim]', async () => {
    const recs = Array.from({ length: 10 }, (_, i) => JSON.stringify({ text: `record number ${i} says hello to the world and more words here` }));
    const p = file('c.jsonl', `${recs.join('\n')}\n`);
    const train = await openTextData(cfg({ path: p, embedding_dim: 16 }), ctx('train'));
    const test = await openTextData(cfg({ path: p, embedding_dim: 16 }), ctx('test'));
    expect(train.documents.length).toBe(9);
    expect(test.documents.length).toBe(1);
    expect(train.exampleShape).toEqual([8, 16]);
    expect(train.dataShape).toEqual([8]);
    const b = train.batch([0, 1], new Rng(0));
    expect(b.x.shape).toEqual([2, 8]);
    expect(b.x.dtype).toBe('int32');
    expect(train.index.decode(b.x.dataSync())).toBe(train.index.decode([...train.windows[0]!, ...train.windows[1]!]));
    b.x.dispose();
  });

  it('data.label_field: every window takes its record\'s class (training values, sorted), batches carry int32 labels; bad labels are one-line errors', async () => {
    // Long records so that some span two windows; labels are strings or numbers.
    const recs = Array.from({ length: 10 }, (_, i) =>
      JSON.stringify({ text: `${i % 2 ? 'the sea is wide and deep and blue' : 'the hill is high'} ${'and so on '.repeat(i % 3)}`, mood: i % 2 ? 'sea' : 1 }),
    );
    const p = file('labelled.jsonl', `${recs.join('\n')}\n`);
    const c = cfg({ path: p, embedding_dim: 16, label_field: 'mood' });
    const train = await openTextData(c, ctx('train'));
    expect(train.numClasses).toBe(2);
    expect((train.dataInfo as { classes: string[] }).classes).toEqual(['1', 'sea']);
    const b = train.batch([...Array(train.size).keys()], new Rng(0));
    const labels = Array.from(b.labels!.dataSync());
    expect(b.labels!.dtype).toBe('int32');
    // Rebuild the expected labels window by window from the records.
    const expected = train.documents.flatMap((d, i) => Array.from({ length: Math.max(1, Math.ceil(d.length / 8)) }, () => (i % 2 ? 1 : 0)));
    expect(labels).toEqual(expected);
    expect(labels.length).toBeGreaterThan(9); // some records span two windows
    tf.dispose([b.x, b.labels!]);
    const test = await openTextData(c, ctx('test'));
    expect(test.numClasses).toBe(2);

    await expect(openTextData(cfg({ path: file('plain.txt', 'some plain text here and more'), label_field: 'mood' }), ctx('train'))).rejects.toThrow(
      /plain\.txt: data\.label_field 'mood' needs a JSON-lines corpus/,
    );
    const missing = file('missing.jsonl', `${JSON.stringify({ text: 'a b c d e f g h i j' })}\n${JSON.stringify({ text: 'k l m', mood: 'x' })}\n`);
    await expect(openTextData(cfg({ path: missing, label_field: 'mood', train_fraction: 0.5 }), ctx('train'))).rejects.toThrow(
      /missing\.jsonl:1: the record has no string or number field 'mood' \(data\.label_field\)/,
    );
    const unseen = file('unseen.jsonl', [0, 1, 2, 3].map((i) => JSON.stringify({ text: 'words and words and words again', mood: i < 3 ? 'a' : 'b' })).join('\n'));
    await expect(openTextData(cfg({ path: unseen, label_field: 'mood', train_fraction: 0.75 }), ctx('test'))).rejects.toThrow(
      /unseen\.jsonl: the validation split has label 'b' \(data\.label_field\), which no training record has/,
    );
  });

  const shakespeare = join(process.cwd(), '../shared/datasets/tinyshakespeare/input.txt');
  it.skipIf(!existsSync(shakespeare))('Tiny Shakespeare: the first 90 % of the characters train, the last 10 % validate (skipped when ../shared/datasets is absent)', async () => {
    const c = cfg({ path: shakespeare, seq_len: 64 });
    const train = await openTextData(c, ctx('train'));
    const test = await openTextData(c, ctx('test'));
    const text = readCorpus(shakespeare, { format: 'text', text_field: 'text' })[0]!;
    const cut = Math.floor(text.length * 0.9);
    expect(text.length).toBe(1_115_394);
    expect(train.index.decode(train.documents[0]!)).toBe(text.slice(0, cut));
    // The validation split is the rest of the text, in training-vocabulary ids (unseen tokens -> unknown).
    expect(Array.from(test.documents[0]!)).toEqual(Array.from(train.index.toIds(tiktokenIds(text.slice(cut), 'gpt2'))));
    expect(test.documents[0]!.includes(train.vocab.unk)).toBe(true);
    expect(train.size).toBe(Math.ceil(train.documents[0]!.length / 64));
  });
});
