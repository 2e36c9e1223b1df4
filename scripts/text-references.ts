/**
 * Reference lines for `difflab eval` on text: windows sampled from n-gram
 * models of the training split (k = 1, 2, 3; each next token drawn from the
 * training tokens that follow the same k-1 tokens), scored exactly as eval
 * scores samples (the KN 5-gram model's perplexity, distinct-1/2/3). They
 * place a model's sample perplexity between "word frequencies only" and
 * "local order copied from the training text" (docs/text.md).
 *
 *   npx tsx scripts/text-references.ts [config] [--n 64]
 */
import { loadRunConfig } from '../src/core/config/load.js';
import { Rng } from '../src/core/random.js';
import { createDifflab } from '../src/container.js';
import type { TextDataConfig } from '../src/plugins/text/config.js';
import { openTextData, type TextDataSource } from '../src/plugins/text/data.js';
import { kneserNeyFor } from '../src/plugins/text/metrics.js';
import { distinctN } from '../src/plugins/text/ngram.js';
import { dirname } from 'node:path';

const args = process.argv.slice(2);
const nAt = args.indexOf('--n');
const n = nAt >= 0 ? Number(args[nAt + 1]) : 64;
if (!Number.isInteger(n) || n < 1) throw new Error(`text-references: --n needs a positive integer, got '${args[nAt + 1]}'`);
const configFile = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--n') ?? 'configs/text-shakespeare.yaml';
const config = loadRunConfig(configFile, createDifflab().plugins);
const data = config.data as TextDataConfig;
const train = (await openTextData(data, { split: 'train', baseDir: dirname(configFile), rng: new Rng(0), log: () => {} })) as TextDataSource;
const lm = kneserNeyFor(train);
const tokens = train.documents.flatMap((doc) => Array.from(doc));
const rng = new Rng(0);

function ngramWindows(k: number, length: number): number[][] {
  const next = new Map<string, number[]>();
  for (let i = k - 1; i < tokens.length; i++) {
    const h = tokens.slice(i - k + 1, i).join(',');
    const followers = next.get(h) ?? [];
    followers.push(tokens[i] as number);
    next.set(h, followers);
  }
  return Array.from({ length: n }, () => {
    const row: number[] = [];
    while (row.length < length) {
      const pool = (row.length >= k - 1 ? next.get(row.slice(row.length - (k - 1)).join(',')) : undefined) ?? tokens;
      row.push(pool[rng.int(pool.length)] as number);
    }
    return row;
  });
}

for (const k of [1, 2, 3]) {
  const rows = ngramWindows(k, data.seq_len);
  const ppl = lm.perplexity(rows).perplexity;
  const distinct = [1, 2, 3].map((d) => distinctN(rows, d).toFixed(3)).join(' / ');
  console.log(`${n} windows of ${data.seq_len} tokens from the training split's ${k}-gram model: KN 5-gram perplexity ${ppl.toFixed(2)}, distinct-1/2/3 ${distinct}`);
}
