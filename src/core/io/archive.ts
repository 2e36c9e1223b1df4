import { createReadStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

/**
 * A small streaming reader for `.tar.gz` archives, enough for GitHub's
 * archives: ustar (with the name prefix), GNU long names (`L`/`K`) and pax
 * headers (`x` per entry, `g` global, ignored). Only regular files are
 * written; links, devices and the like are skipped. Entry paths that would
 * land outside the target (absolute, or with a `..` segment) are rejected
 * before anything of them is written.
 */

/** A one-line archive error naming the archive file. */
export class ArchiveError extends Error {
  constructor(
    message: string,
    readonly archive: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

const BLOCK = 512;
const PIECE = 1 << 20;

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private done = false;
  /** Bytes handed out so far (offsets in error messages). */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(n: number): Promise<void> {
    while (this.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length) {
        this.chunks.push(b);
        this.length += b.length;
      }
    }
  }

  /** Up to `n` bytes from the front (at least 1 unless the stream ended); no copy when one chunk holds them. */
  async some(n: number): Promise<Buffer> {
    await this.fill(1);
    const first = this.chunks[0];
    if (!first) return Buffer.alloc(0);
    const k = Math.min(n, first.length);
    const out = first.subarray(0, k);
    if (k === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(k);
    this.length -= k;
    this.offset += k;
    return out;
  }

  /** Exactly `n` bytes, or fewer if the stream ended first. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const b = await this.some(n - got);
      if (!b.length) break;
      parts.push(b);
      got += b.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Reads and discards the rest of the stream. */
  async drain(): Promise<void> {
    this.chunks = [];
    this.length = 0;
    while (!(await this.it.next()).done) {
      /* discard */
    }
    this.done = true;
  }
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
}

/** An octal numeric field, or GNU's base-256 form (high bit set). */
function parseNumber(b: Buffer, what: string, fail: (m: string) => never): number {
  if (b[0]! & 0x80) {
    if (b[0] === 0xff) fail(`negative ${what}`);
    let v = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    if (!Number.isSafeInteger(v)) fail(`${what} too large`);
    return v;
  }
  const s = cString(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) fail(`bad ${what} field '${s}'`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer, stored: number): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return stored === unsigned || stored === signed;
}

/** pax records: `<len> <key>=<value>\n`. */
function parsePax(data: Buffer, fail: (m: string) => never): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    if (space < 0) fail('bad pax header');
    const len = Number(data.subarray(i, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= space - i || i + len > data.length) fail('bad pax header record length');
    const rec = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq < 0) fail('bad pax header record');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * The entry path made relative and checked: `./` and empty segments go,
 * absolute paths and `..` segments are refused (null).
 */
export function safeEntryPath(name: string): string | null {
  if (name.startsWith('/') || name.startsWith('\\') || /^[a-zA-Z]:/.test(name)) return null;
  const parts = name.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return null;
  return parts.join('/');
}

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface ExtractOptions {
  /**
   * Where a regular file goes: its path inside the target (relative, `/`
   * separated), or null to skip it. Gets the entry's checked path. Default:
   * every file at its own path.
   */
  readonly select?: (path: string) => string | null;
  readonly signal?: AbortSignal;
}

export interface ExtractResult {
  /** Entries in the archive (files, folders, links; not the long-name/pax records). */
  readonly entries: number;
  /** Files written and their bytes. */
  readonly files: number;
  readonly bytes: number;
}

function entryType(flag: string): TarEntryType {
  if (flag === '0' || flag === '\0' || flag === '7') return 'file';
  if (flag === '5') return 'directory';
  if (flag === '2') return 'symlink';
  if (flag === '1') return 'hardlink';
  return 'other';
}

/**
 * Extracts an uncompressed tar stream into `targetDir`. `label` names the
 * archive in errors. The stream is read to its end, so a compressed
 * source's integrity check runs even after the end-of-archive marker.
 */
export async function extractTar(
  chunks: AsyncIterable<Uint8Array>,
  targetDir: string,
  label: string,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  const root = resolve(targetDir);
  const reader = new ByteReader(chunks[Symbol.asyncIterator]());
  const fail = (m: string): never => {
    throw new ArchiveError(`${label}: corrupt tar: ${m}`, label);
  };
  const made = new Set<string>();
  let entries = 0;
  let files = 0;
  let bytes = 0;
  let longName: string | undefined;
  let pax: Record<string, string> = {};

  const readExact = async (n: number, what: string): Promise<Buffer> => {
    const b = await reader.read(n);
    if (b.length < n) fail(`archive ends inside ${what} (truncated)`);
    return b;
  };
  const skip = async (n: number, what: string): Promise<void> => {
    while (n > 0) {
      const b = await reader.some(Math.min(n, PIECE));
      if (!b.length) fail(`archive ends inside ${what} (truncated)`);
      n -= b.length;
    }
  };
  const pad = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');
    const at = reader.offset;
    const h = await reader.read(BLOCK);
    if (h.length === 0) break; // no end marker, but ended on a block boundary: accepted, as tar does
    if (h.length < BLOCK) fail(`archive ends inside a header at byte ${at} (truncated)`);
    if (h.every((b) => b === 0)) {
      await reader.drain();
      break;
    }
    const stored = parseNumber(h.subarray(148, 156), 'checksum', fail);
    if (!checksumOk(h, stored)) fail(`bad header checksum at byte ${at}`);
    const flag = String.fromCharCode(h[156]!);
    let size = parseNumber(h.subarray(124, 136), 'size', fail);

    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size > 1 << 20) fail(`extended header of ${size} bytes at byte ${at}`);
      const data = await readExact(size, 'an extended header');
      await skip(pad(size), 'padding');
      if (flag === 'L') longName = cString(data);
      else if (flag === 'x') pax = { ...pax, ...parsePax(data, fail) };
      continue; // 'K' (long link name) and 'g' (global, e.g. GitHub's commit id) are not needed
    }

    let name = cString(h.subarray(0, 100));
    const magic = h.subarray(257, 263).toString('latin1');
    if (magic === 'ustar\0') {
      const prefix = cString(h.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    if (pax['path'] !== undefined) name = pax['path'];
    if (pax['size'] !== undefined) {
      if (!/^\d+$/.test(pax['size'])) fail(`bad pax size '${pax['size']}'`);
      size = Number(pax['size']);
    }
    longName = undefined;
    pax = {};
    entries++;

    const path = safeEntryPath(name);
    if (path === null) {
      throw new ArchiveError(`${label}: entry '${name}' escapes the target folder (path traversal); refusing to extract`, label);
    }
    const type = entryType(flag);
    const rel = type === 'file' && path !== '' ? (options.select ? options.select(path) : path) : null;
    if (rel === null) {
      await skip(size + pad(size), `entry '${name}'`);
      continue;
    }
    const checked = safeEntryPath(rel);
    const dest = checked ? resolve(root, checked) : '';
    if (!checked || !dest.startsWith(root + sep)) {
      throw new ArchiveError(`${label}: entry '${name}' maps to '${rel}', outside the target folder`, label);
    }
    const dir = dirname(dest);
    if (!made.has(dir)) {
      await mkdir(dir, { recursive: true });
      made.add(dir);
    }
    const fh = await open(dest, 'w');
    try {
      let left = size;
      while (left > 0) {
        const b = await reader.some(Math.min(left, PIECE));
        if (!b.length) fail(`archive ends inside '${name}' (truncated)`);
        let off = 0;
        while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
        left -= b.length;
      }
    } finally {
      await fh.close();
    }
    await skip(pad(size), 'padding');
    files++;
    bytes += size;
  }
  return { entries, files, bytes };
}

/**
 * Extracts a `.tar.gz` file into `targetDir` (created as needed). Corrupt or
 * truncated gzip data, a corrupt tar, or an unsafe path is an ArchiveError
 * naming `label` (default: the archive path); what was written by then stays
 * for the caller to remove (extract into a staging folder).
 */
export async function extractTarGz(archive: string, targetDir: string, options: ExtractOptions & { readonly label?: string } = {}): Promise<ExtractResult> {
  const label = options.label ?? archive;
  let head: Buffer;
  try {
    const fh = await open(archive, 'r');
    try {
      head = Buffer.alloc(16);
      const { bytesRead } = await fh.read(head, 0, 16, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new ArchiveError(`${label}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, label);
  }
  if (head.length < 2 || head[0] !== 0x1f || head[1] !== 0x8b) {
    const text = head.toString('latin1').trimStart();
    const hint = text.startsWith('<') ? '; it looks like an HTML page, not an archive' : head.length === 0 ? '; the file is empty' : '';
    throw new ArchiveError(`${label}: not a gzip file${hint}`, label);
  }
  await mkdir(targetDir, { recursive: true });
  const gunzip = createGunzip();
  const piping = pipeline(createReadStream(archive, options.signal ? { signal: options.signal } : {}), gunzip);
  piping.catch(() => undefined); // its error also reaches the reader through `gunzip`
  try {
    const result = await extractTar(gunzip, targetDir, label, options);
    await piping;
    return result;
  } catch (err) {
    gunzip.destroy();
    if (err instanceof ArchiveError) throw err;
    if (options.signal?.aborted) throw err;
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && e.code.startsWith('Z_')) {
      const what = e.code === 'Z_BUF_ERROR' ? 'truncated gzip data' : 'corrupt gzip data';
      throw new ArchiveError(`${label}: ${what} (${e.message})`, label);
    }
    throw err;
  }
}
