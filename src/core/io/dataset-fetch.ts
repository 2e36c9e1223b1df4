import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { createGunzip } from 'node:zlib';
import { extractTarGz } from './archive.js';
import { DownloadError, downloadToFile, joinSource, resolveSource, type ProgressOptions } from './download.js';

/**
 * Fetching a dataset described by a `DatasetSpec`: download (or read a local
 * copy), extract what is kept into a staging folder beside the target,
 * verify it against the spec's expectations, write a README.md with the
 * license line, and only then rename the staging folder into place. Nothing
 * half-written is left behind after a failure or an abort.
 */

/** One `.tar.gz` archive, of which the files matching `include` are kept. */
export interface ArchiveSource {
  readonly kind: 'tar.gz';
  readonly url: string;
  /** Leading path segments dropped from every entry (GitHub archives: 1, the `<repo>-<tag>/` folder). */
  readonly stripComponents: number;
  /** Globs over the stripped paths (`*` within one segment), e.g. `recordings/*.wav`. */
  readonly include: readonly string[];
}

/** Separate files under one base URL, stored as they are. */
export interface FilesSource {
  readonly kind: 'files';
  readonly baseUrl: string;
  readonly files: readonly string[];
}

export interface ExpectedFile {
  /** Relative to the dataset folder. */
  readonly path: string;
  /** Exact size when known. */
  readonly bytes?: number;
  /** For a .gz file: its uncompressed size, accepted when `bytes` differs (a mirror's gzip header may differ). */
  readonly gunzippedBytes?: number;
}

export interface ExpectedCount {
  /** Glob relative to the dataset folder, `*` only in the last segment, e.g. `recordings/*.wav`. */
  readonly pattern: string;
  readonly count: number;
  /** What is counted, for messages, e.g. `.wav files`. */
  readonly what?: string;
}

/** What a complete copy holds; checked after every fetch and before leaving an existing copy alone. */
export interface DatasetExpectation {
  readonly files?: readonly ExpectedFile[];
  readonly counts?: readonly ExpectedCount[];
}

export interface DatasetSpec {
  readonly name: string;
  readonly title: string;
  /** e.g. `CC BY-SA 4.0`. */
  readonly license: string;
  /** e.g. `Jakobovski et al.`. */
  readonly attribution: string;
  readonly homepage: string;
  readonly source: ArchiveSource | FilesSource;
  readonly expect: DatasetExpectation;
  /** Where the data files lie inside the dataset folder ('' = the folder itself), for messages. */
  readonly dataDir?: string;
  /** Approximate download size in bytes, for `datasets list`. */
  readonly approxBytes?: number;
}

/** The license/attribution line printed after a fetch and written to README.md. */
export function licenseLine(spec: DatasetSpec): string {
  return `${spec.title}, ${spec.license}, ${spec.attribution} (${spec.homepage})`;
}

/** A one-line error about a dataset fetch. */
export class DatasetFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetFetchError';
  }
}

/** `*` matches within one path segment; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${body}$`);
}

async function gunzippedSize(path: string): Promise<number | null> {
  let n = 0;
  try {
    for await (const chunk of createReadStream(path).pipe(createGunzip())) n += (chunk as Buffer).length;
    return n;
  } catch {
    return null;
  }
}

export type Verification = { readonly ok: true; readonly files: number; readonly bytes: number } | { readonly ok: false; readonly reason: string };

/** Checks a dataset folder against its expectations. */
export async function verifyDataset(dir: string, expect: DatasetExpectation): Promise<Verification> {
  let files = 0;
  let bytes = 0;
  for (const f of expect.files ?? []) {
    const p = join(dir, f.path);
    const st = await stat(p).catch(() => null);
    if (!st?.isFile()) return { ok: false, reason: `missing ${f.path}` };
    if (f.bytes !== undefined && st.size !== f.bytes) {
      const unzipped = f.gunzippedBytes !== undefined ? await gunzippedSize(p) : null;
      if (unzipped !== f.gunzippedBytes) {
        const alt = f.gunzippedBytes !== undefined ? ` (or ${f.gunzippedBytes} uncompressed)` : '';
        const found = unzipped !== null && f.gunzippedBytes !== undefined ? `${st.size} (${unzipped} uncompressed)` : `${st.size}`;
        return { ok: false, reason: `${f.path}: expected ${f.bytes} bytes${alt}, found ${found}` };
      }
    }
    files++;
    bytes += st.size;
  }
  for (const c of expect.counts ?? []) {
    const sub = posix.dirname(c.pattern);
    const re = globToRegExp(posix.basename(c.pattern));
    const folder = sub === '.' ? dir : join(dir, sub);
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => null);
    const matched = entries ? entries.filter((e) => e.isFile() && re.test(e.name)) : [];
    const where = sub === '.' ? '' : ` in ${sub}/`;
    if (matched.length !== c.count) {
      return { ok: false, reason: `expected ${c.count} ${c.what ?? `files matching ${posix.basename(c.pattern)}`}${where}, found ${matched.length}` };
    }
    files += matched.length;
    for (const e of matched) bytes += (await stat(join(folder, e.name))).size;
  }
  return { ok: true, files, bytes };
}

export interface FetchDatasetOptions {
  /** The dataset folder (default: `datasets/<name>` under the working directory). */
  readonly to?: string;
  /** Replaces the spec's URL: an archive URL / `file://` URL / local path, or for a files source a base URL or local folder. */
  readonly url?: string;
  /** Replace an existing copy. */
  readonly force?: boolean;
  /** Status lines (stderr in the CLI). */
  readonly log?: (line: string) => void;
  /** Download progress (stderr in the CLI); none when absent. */
  readonly progress?: Omit<ProgressOptions, 'label'>;
  readonly signal?: AbortSignal;
  readonly fetch?: typeof fetch;
}

export interface FetchDatasetResult {
  readonly status: 'fetched' | 'present';
  readonly dir: string;
  readonly files: number;
  readonly bytes: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes staging folders of this target left by fetches that were killed outright. */
async function removeStale(parent: string, name: string): Promise<void> {
  const prefix = `.${name}.partial-`;
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue;
    const pid = Number(e.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) await rm(join(parent, e), { recursive: true, force: true });
  }
}

function readme(spec: DatasetSpec, source: string): string {
  return [
    `# ${spec.title}`,
    '',
    `${licenseLine(spec)}`,
    '',
    `- license: ${spec.license}`,
    `- authors: ${spec.attribution}`,
    `- home: ${spec.homepage}`,
    `- fetched from: ${source}`,
    `- fetched on: ${new Date().toISOString().slice(0, 10)} by \`difflab datasets fetch ${spec.name}\``,
    '',
    'Redistributing this data (or a slice of it) means keeping this license and attribution line with it.',
    '',
  ].join('\n');
}

function describeFailure(spec: DatasetSpec, err: unknown): string {
  if (err instanceof DownloadError && err.kind === 'network') {
    const what = spec.source.kind === 'tar.gz' ? 'the archive' : 'the files';
    const arg = spec.source.kind === 'tar.gz' ? '<mirror URL | file:// URL | local path to the .tar.gz>' : '<mirror base URL | local folder holding them>';
    return `${spec.name}: ${err.message}; no network? download ${what} elsewhere and run: difflab datasets fetch ${spec.name} --url ${arg}`;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return `${spec.name}: ${msg.split('\n')[0]}`;
}

/**
 * Fetches `spec` into its folder. An existing complete copy is left alone
 * unless `force`; an existing incomplete one is an error unless `force`.
 * Throws a one-line DatasetFetchError naming the dataset (and the URL or
 * file) on any failure, after removing everything it wrote.
 */
export async function fetchDataset(spec: DatasetSpec, options: FetchDatasetOptions = {}): Promise<FetchDatasetResult> {
  const log = options.log ?? (() => undefined);
  const target = resolve(options.to ?? join('datasets', spec.name));
  const parent = dirname(target);
  const name = basename(target);
  const shown = options.to ?? join('datasets', spec.name);

  if (existsSync(target)) {
    const v = await verifyDataset(target, spec.expect);
    if (!options.force) {
      if (v.ok) {
        log(`${spec.name}: ${shown} is already complete (${v.files} files); leaving it alone (--force fetches it again)`);
        return { status: 'present', dir: target, files: v.files, bytes: v.bytes };
      }
      throw new DatasetFetchError(`${spec.name}: ${shown} exists but is not a complete copy (${v.reason}); use --force to replace it`);
    }
  }

  await mkdir(parent, { recursive: true });
  await removeStale(parent, name);
  const stage = join(parent, `.${name}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(stage);
  const source = options.url ?? (spec.source.kind === 'tar.gz' ? spec.source.url : spec.source.baseUrl);
  const common = {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  try {
    if (spec.source.kind === 'tar.gz') {
      const src = resolveSource(source);
      let archive: string;
      if (src.kind === 'local') {
        archive = src.path;
        if (!existsSync(archive)) throw new DatasetFetchError(`${spec.name}: ${archive}: no such file`);
        log(`${spec.name}: reading ${archive}`);
      } else {
        archive = join(stage, '.archive.tar.gz');
        log(`${spec.name}: downloading ${src.url}`);
        await downloadToFile(src.url, archive, {
          ...common,
          ...(options.progress ? { progress: { ...options.progress, label: spec.name } } : {}),
        });
      }
      const strip = spec.source.stripComponents;
      const include = spec.source.include.map(globToRegExp);
      const select = (p: string): string | null => {
        const parts = p.split('/');
        if (parts.length <= strip) return null;
        const rel = parts.slice(strip).join('/');
        return include.some((re) => re.test(rel)) ? rel : null;
      };
      log(`${spec.name}: extracting ${spec.source.include.join(', ')}`);
      await extractTarGz(archive, stage, { select, label: src.kind === 'local' ? archive : source, ...(options.signal ? { signal: options.signal } : {}) });
      if (src.kind === 'http') await rm(archive, { force: true });
    } else {
      for (const file of spec.source.files) {
        const url = joinSource(source, file);
        log(`${spec.name}: ${resolveSource(url).kind === 'http' ? 'downloading' : 'copying'} ${url}`);
        await downloadToFile(url, join(stage, file), {
          ...common,
          ...(options.progress ? { progress: { ...options.progress, label: `${spec.name}/${file}` } } : {}),
        });
      }
    }
    const v = await verifyDataset(stage, spec.expect);
    if (!v.ok) throw new DatasetFetchError(`${spec.name}: verification of ${source} failed: ${v.reason}`);
    await writeFile(join(stage, 'README.md'), readme(spec, source));
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');

    // Into place: the old copy (with --force) steps aside first and comes back if the rename fails.
    let old: string | undefined;
    if (existsSync(target)) {
      old = join(parent, `.${name}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
      await rename(target, old);
    }
    try {
      await rename(stage, target);
    } catch (err) {
      if (old) await rename(old, target).catch(() => undefined);
      throw err;
    }
    if (old) await rm(old, { recursive: true, force: true });
    return { status: 'fetched', dir: target, files: v.files, bytes: v.bytes };
  } catch (err) {
    if (options.signal?.aborted) throw new DatasetFetchError(`${spec.name}: interrupted; nothing was written to ${shown}`);
    if (err instanceof DatasetFetchError) throw err;
    throw new DatasetFetchError(describeFailure(spec, err));
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
