import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Downloads to a file: Node's built-in `fetch` (redirects followed) or a
 * local file (`file://` URL or plain path), streamed to a temporary file
 * beside the target with throttled progress, flushed, then renamed into
 * place. A failure or an abort leaves no temporary file behind.
 */

/** Why a download failed: the HTTP status, the network, a short body, a local file. */
export type DownloadErrorKind = 'http' | 'network' | 'truncated' | 'local' | 'aborted';

/** A one-line download error naming the URL. */
export class DownloadError extends Error {
  constructor(
    message: string,
    readonly kind: DownloadErrorKind,
    readonly url: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** A source is an http(s) URL, a `file://` URL, or a plain local path. */
export type ResolvedSource = { readonly kind: 'http'; readonly url: string } | { readonly kind: 'local'; readonly path: string };

export function resolveSource(source: string): ResolvedSource {
  if (/^https?:\/\//i.test(source)) return { kind: 'http', url: source };
  if (/^file:\/\//i.test(source)) return { kind: 'local', path: fileURLToPath(source) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new DownloadError(`unsupported URL scheme in '${source}' (use http://, https://, file:// or a local path)`, 'local', source);
  }
  return { kind: 'local', path: resolve(source) };
}

/** Joins a base (URL or local folder) and a file name. */
export function joinSource(base: string, file: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) return `${base.replace(/\/+$/, '')}/${file}`;
  return join(base, file);
}

export interface ProgressOptions {
  /** Writes text as is (no newline added); e.g. process.stderr.write. */
  readonly write: (text: string) => void;
  /** On a TTY one line is redrawn with `\r`; otherwise whole lines are printed, rarely. */
  readonly tty: boolean;
  /** Shown before the numbers, e.g. the dataset name. */
  readonly label: string;
  /** Minimum milliseconds between updates (default: 250 on a TTY, 5000 otherwise). */
  readonly intervalMs?: number;
  /** Clock (tests). */
  readonly now?: () => number;
  /** The summary's verb (default: `downloaded`). */
  readonly verb?: string;
}

const MB = 1e6;

/** `512 B`, `29.5 kB`, `26.4 MB`. */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < MB) return `${(n / 1e3).toFixed(1)} kB`;
  return `${(n / MB).toFixed(1)} MB`;
}

/** `12.3 MB / 26.4 MB (47%) at 5.1 MB/s`; without a total, `12.3 MB at 5.1 MB/s`. */
export function formatProgress(bytes: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? bytes / MB / (elapsedMs / 1000) : 0;
  const done = total !== undefined && total > 0 ? ` / ${formatBytes(total)} (${Math.min(100, Math.floor((100 * bytes) / total))}%)` : '';
  return `${formatBytes(bytes)}${done} at ${rate.toFixed(1)} MB/s`;
}

/** A throttled progress reporter: `update` as bytes arrive, `finish` once at the end. */
export class Progress {
  private readonly now: () => number;
  private readonly start: number;
  private last = -Infinity;
  private drawn = false;
  private readonly intervalMs: number;

  constructor(
    private readonly opts: ProgressOptions,
    private readonly total: number | undefined,
  ) {
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    this.intervalMs = opts.intervalMs ?? (opts.tty ? 250 : 5000);
    // Non-TTY: the first line is due one interval in, so a fast download prints only its summary.
    if (!opts.tty) this.last = this.start;
  }

  update(bytes: number): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) return;
    this.last = t;
    const line = `${this.opts.label}: ${formatProgress(bytes, this.total, t - this.start)}`;
    if (this.opts.tty) {
      this.opts.write(`\r${line}\x1b[K`);
      this.drawn = true;
    } else {
      this.opts.write(`${line}\n`);
    }
  }

  finish(bytes: number): void {
    const ms = this.now() - this.start;
    const rate = ms > 0 ? ` (${(bytes / MB / (ms / 1000)).toFixed(1)} MB/s)` : '';
    const line = `${this.opts.label}: ${this.opts.verb ?? 'downloaded'} ${formatBytes(bytes)} in ${(ms / 1000).toFixed(1)} s${rate}`;
    this.opts.write(this.opts.tty && this.drawn ? `\r${line}\x1b[K\n` : `${line}\n`);
  }

  /** Ends a redrawn line without a summary (after an error). */
  abandon(): void {
    if (this.opts.tty && this.drawn) this.opts.write('\n');
  }
}

export interface DownloadOptions {
  /** Progress reporting; none when absent. */
  readonly progress?: Omit<ProgressOptions, 'label'> & { readonly label?: string };
  readonly signal?: AbortSignal;
  /** The fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch;
}

export interface DownloadResult {
  readonly bytes: number;
  /** The URL after redirects (http) or the local path. */
  readonly finalUrl: string;
}

function causeText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } } | undefined;
  const c = e?.cause;
  if (c?.code && c.message && !c.message.includes(c.code)) return `${c.code}: ${c.message}`;
  return c?.message ?? c?.code ?? e?.message ?? String(err);
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return Boolean(signal?.aborted) || (err as { name?: string } | undefined)?.name === 'AbortError';
}

/**
 * Streams `source` (http(s) URL, `file://` URL or local path) into `dest`
 * through a temporary file in the same folder, then renames it into place.
 */
export async function downloadToFile(source: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const src = resolveSource(source);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.download`);
  const fh = await open(tmp, 'w');
  let closed = false;
  let progress: Progress | undefined;
  try {
    let bytes = 0;
    let finalUrl: string;
    let total: number | undefined;
    let chunks: AsyncIterable<Uint8Array>;
    if (src.kind === 'local') {
      finalUrl = src.path;
      try {
        const st = await stat(src.path);
        if (!st.isFile()) throw new DownloadError(`${src.path}: not a file`, 'local', source);
        total = st.size;
      } catch (err) {
        if (err instanceof DownloadError) throw err;
        throw new DownloadError(`cannot read ${src.path}: ${(err as NodeJS.ErrnoException).code ?? causeText(err)}`, 'local', source);
      }
      chunks = createReadStream(src.path, options.signal ? { signal: options.signal } : {});
    } else {
      const doFetch = options.fetch ?? fetch;
      let res: Response;
      try {
        res = await doFetch(src.url, {
          redirect: 'follow',
          // The bytes as stored: no transparent decompression of .gz files.
          headers: { 'accept-encoding': 'identity' },
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        if (isAbort(err, options.signal)) throw new DownloadError(`download of ${src.url} interrupted`, 'aborted', src.url);
        throw new DownloadError(`download of ${src.url} failed: ${causeText(err)}`, 'network', src.url);
      }
      finalUrl = res.url || src.url;
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        const shown = finalUrl !== src.url ? `${src.url} (redirected to ${finalUrl})` : src.url;
        throw new DownloadError(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} for ${shown}`, 'http', src.url, res.status);
      }
      const len = res.headers.get('content-length');
      const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
      total = len !== null && !encoded && /^\d+$/.test(len) ? Number(len) : undefined;
      if (!res.body) throw new DownloadError(`download of ${src.url} failed: empty response`, 'network', src.url);
      chunks = res.body as unknown as AsyncIterable<Uint8Array>;
    }
    if (options.progress) {
      progress = new Progress({ label: basename(dest), ...(src.kind === 'local' ? { verb: 'copied' } : {}), ...options.progress }, total);
    }
    try {
      for await (const chunk of chunks) {
        let off = 0;
        while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off)).bytesWritten;
        bytes += chunk.byteLength;
        progress?.update(bytes);
      }
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      const url = src.kind === 'http' ? src.url : src.path;
      if (isAbort(err, options.signal)) throw new DownloadError(`download of ${url} interrupted`, 'aborted', url);
      if (src.kind === 'local') throw new DownloadError(`cannot read ${src.path}: ${causeText(err)}`, 'local', source);
      throw new DownloadError(`download of ${url} failed after ${bytes} bytes: ${causeText(err)}`, 'network', url);
    }
    const url = src.kind === 'http' ? src.url : src.path;
    if (total !== undefined && bytes !== total) {
      throw new DownloadError(`download of ${url} truncated: got ${bytes} of ${total} bytes`, 'truncated', url);
    }
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tmp, dest);
    progress?.finish(bytes);
    progress = undefined;
    return { bytes, finalUrl };
  } finally {
    progress?.abandon();
    if (!closed) await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
  }
}
