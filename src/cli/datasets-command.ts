import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { fetchDataset, licenseLine, verifyDataset, type DatasetSpec } from '../core/io/dataset-fetch.js';

/**
 * `difflab datasets fetch <name> [--to DIR] [--url URL] [--force]` and
 * `difflab datasets list`. Registered on the main program by
 * `registerDatasetsCommand(program)`.
 */

const FASHION_FILES = [
  { path: 'train-images-idx3-ubyte.gz', bytes: 26421880, gunzippedBytes: 47040016 },
  { path: 'train-labels-idx1-ubyte.gz', bytes: 29515, gunzippedBytes: 60008 },
  { path: 't10k-images-idx3-ubyte.gz', bytes: 4422102, gunzippedBytes: 7840016 },
  { path: 't10k-labels-idx1-ubyte.gz', bytes: 5148, gunzippedBytes: 10008 },
] as const;

/** The datasets `difflab datasets fetch` knows. */
export const KNOWN_DATASETS: readonly DatasetSpec[] = [
  {
    name: 'fsdd',
    title: 'Free Spoken Digit Dataset',
    license: 'CC BY-SA 4.0',
    attribution: 'Jakobovski et al.',
    homepage: 'https://github.com/Jakobovski/free-spoken-digit-dataset',
    source: {
      kind: 'tar.gz',
      url: 'https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz',
      stripComponents: 1,
      include: ['recordings/*.wav'],
    },
    // 6 speakers x 10 digits x 50 recordings, 16-bit PCM mono 8 kHz.
    expect: { counts: [{ pattern: 'recordings/*.wav', count: 3000, what: '.wav files' }] },
    dataDir: 'recordings',
    approxBytes: 20e6,
  },
  {
    name: 'fashion-mnist',
    title: 'Fashion-MNIST',
    license: 'MIT',
    attribution: 'Zalando SE',
    homepage: 'https://github.com/zalandoresearch/fashion-mnist',
    source: {
      kind: 'files',
      baseUrl: 'https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion',
      files: FASHION_FILES.map((f) => f.path),
    },
    expect: { files: FASHION_FILES },
    approxBytes: FASHION_FILES.reduce((s, f) => s + f.bytes, 0),
  },
];

export interface DatasetsCommandOptions {
  /** The dataset table (default: KNOWN_DATASETS). Tests pass their own. */
  readonly datasets?: readonly DatasetSpec[];
  /** Status and progress (default: stderr), results (default: stdout). */
  readonly log?: (line: string) => void;
  readonly print?: (line: string) => void;
  /** Progress drawing: TTY redraws one line; otherwise rare whole lines (default: stderr's isTTY). */
  readonly progressTty?: boolean;
  readonly progressWrite?: (text: string) => void;
  readonly fetch?: typeof fetch;
}

function findDataset(table: readonly DatasetSpec[], name: string): DatasetSpec {
  const spec = table.find((d) => d.name === name);
  if (!spec) throw new Error(`unknown dataset '${name}'; known datasets: ${table.map((d) => d.name).join(', ')}`);
  return spec;
}

export function registerDatasetsCommand(program: Command, options: DatasetsCommandOptions = {}): Command {
  const table = options.datasets ?? KNOWN_DATASETS;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const datasets = program.command('datasets').description('list and fetch the datasets difflab knows (with their licenses)');

  datasets
    .command('list')
    .description('list the known datasets, their licenses and whether datasets/<name> holds a complete copy')
    .action(async () => {
      const rows: string[][] = [['name', 'size', 'license', 'in datasets/', 'source']];
      for (const d of table) {
        const dir = join('datasets', d.name);
        const state = existsSync(dir) ? ((await verifyDataset(dir, d.expect)).ok ? 'complete' : 'incomplete') : 'absent';
        const url = d.source.kind === 'tar.gz' ? d.source.url : d.source.baseUrl;
        rows.push([d.name, d.approxBytes ? `${Math.round(d.approxBytes / 1e6)} MB` : '?', d.license, state, url]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) print(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
      print('');
      for (const d of table) print(`${d.name}: ${licenseLine(d)}`);
    });

  datasets
    .command('fetch')
    .description('download a dataset into datasets/<name> (verified, written atomically), with its license in README.md')
    .argument('<name>', `dataset: ${table.map((d) => d.name).join(', ')}`)
    .option('--to <dir>', 'dataset folder (default: datasets/<name>)')
    .option('--url <url>', 'download from here instead: a mirror URL, a file:// URL or a local path (for a multi-file dataset: the base URL or folder holding the files)')
    .option('--force', 'replace an existing copy')
    .action(async (name: string, opts: { to?: string; url?: string; force?: boolean }) => {
      const spec = findDataset(table, name);
      const controller = new AbortController();
      const onSigint = () => controller.abort(new Error('interrupted'));
      process.once('SIGINT', onSigint);
      try {
        const r = await fetchDataset(spec, {
          ...(opts.to !== undefined ? { to: opts.to } : {}),
          ...(opts.url !== undefined ? { url: opts.url } : {}),
          ...(opts.force ? { force: true } : {}),
          log,
          progress: {
            tty: options.progressTty ?? Boolean(process.stderr.isTTY),
            write: options.progressWrite ?? ((text: string) => process.stderr.write(text)),
          },
          signal: controller.signal,
          ...(options.fetch ? { fetch: options.fetch } : {}),
        });
        const where = spec.dataDir ? join(opts.to ?? join('datasets', spec.name), spec.dataDir) : (opts.to ?? join('datasets', spec.name));
        if (r.status === 'fetched') print(`${spec.name}: ${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB in ${where}`);
        print(`${spec.name}: ${licenseLine(spec)}`);
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
  return datasets;
}
