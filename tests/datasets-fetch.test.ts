import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { extractTarGz, safeEntryPath } from '../src/core/io/archive.js';
import { fetchDataset, globToRegExp, type DatasetSpec } from '../src/core/io/dataset-fetch.js';
import { formatProgress, Progress } from '../src/core/io/download.js';
import { KNOWN_DATASETS, registerDatasetsCommand } from '../src/cli/datasets-command.js';

// ---------------------------------------------------------------- a tiny tar encoder

interface TarInput {
  readonly name: string;
  readonly data?: Buffer | string;
  /** '0' file (default), '5' folder, '2' symlink, 'g' pax global header. */
  readonly type?: '0' | '5' | '2' | 'g';
  /** How a name over 100 bytes is stored (default: pax). */
  readonly long?: 'pax' | 'gnu' | 'prefix';
  readonly linkname?: string;
}

function header(name: string, size: number, type: string, opts: { prefix?: string; linkname?: string; gnu?: boolean } = {}): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, at: number, len: number) => h.write(s, at, Math.min(len, Buffer.byteLength(s)), 'utf8');
  const octal = (n: number, len: number) => `${n.toString(8).padStart(len - 1, '0')}\0`;
  put(name, 0, 100);
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(1_700_000_000, 12), 136, 'ascii');
  h.write(type, 156, 'ascii');
  if (opts.linkname) put(opts.linkname, 157, 100);
  h.write(opts.gnu ? 'ustar  \0' : 'ustar\u000000', 257, 'latin1');
  put('user', 265, 32);
  put('group', 297, 32);
  if (opts.prefix) put(opts.prefix, 345, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
  return `${len}${body}`;
}

function tar(entries: readonly TarInput[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const type = e.type ?? '0';
    if (type === 'g') {
      out.push(header('pax_global_header', data.length, 'g'), padded(data));
      continue;
    }
    let name = e.name;
    let prefix: string | undefined;
    if (Buffer.byteLength(name) > 100) {
      if (e.long === 'gnu') {
        const ln = Buffer.from(`${name}\0`);
        out.push(header('././@LongLink', ln.length, 'L', { gnu: true }), padded(ln));
        name = name.slice(0, 100);
      } else if (e.long === 'prefix') {
        const cut = name.lastIndexOf('/', 155);
        prefix = name.slice(0, cut);
        name = name.slice(cut + 1);
      } else {
        const pax = Buffer.from(paxRecord('path', name));
        out.push(header('PaxHeader/x', pax.length, 'x'), padded(pax));
        name = name.slice(0, 100);
      }
    }
    out.push(header(name, type === '0' ? data.length : 0, type, { ...(prefix ? { prefix } : {}), ...(e.linkname ? { linkname: e.linkname } : {}) }));
    if (type === '0') out.push(padded(data));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

const tarGz = (entries: readonly TarInput[]) => gzipSync(tar(entries));

// ---------------------------------------------------------------- fixtures

const ROOT = 'free-spoken-digit-dataset-1.0.10';
/** Incompressible, deterministic bytes (so archives are a few kB and progress has something to show). */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
const wav = (i: number) => Buffer.concat([Buffer.from('RIFF'), noise(4000 + 100 * i, i + 1)]);

/** A GitHub-style archive: a global pax header with the commit, a root folder, extra files, the recordings. */
function fsddArchive(n = 3, extra: TarInput[] = []): Buffer {
  return tarGz([
    { name: 'pax_global_header', type: 'g', data: paxRecord('comment', '0123456789abcdef0123456789abcdef01234567') },
    { name: `${ROOT}/`, type: '5' },
    { name: `${ROOT}/README.md`, data: '# FSDD\n' },
    { name: `${ROOT}/recordings/`, type: '5' },
    ...Array.from({ length: n }, (_, i) => ({ name: `${ROOT}/recordings/${i}_george_${i}.wav`, data: wav(i) })),
    { name: `${ROOT}/recordings/notes.txt`, data: 'not a wav' },
    { name: `${ROOT}/utils/${'deep/'.repeat(30)}spectrogram.py`, data: 'print(1)\n', long: 'gnu' },
    { name: `${ROOT}/link.wav`, type: '2', linkname: '/etc/passwd' },
    ...extra,
  ]);
}

function fakeFsdd(url: string, count = 3): DatasetSpec {
  return {
    ...KNOWN_DATASETS.find((d) => d.name === 'fsdd')!,
    source: { kind: 'tar.gz', url, stripComponents: 1, include: ['recordings/*.wav'] },
    expect: { counts: [{ pattern: 'recordings/*.wav', count, what: '.wav files' }] },
  };
}

const FILES = { 'a-images.gz': gzipSync(Buffer.alloc(3000, 7)), 'a-labels.gz': gzipSync(Buffer.alloc(30, 1)) };

function fakeFiles(baseUrl: string): DatasetSpec {
  return {
    name: 'fake-mnist',
    title: 'Fake MNIST',
    license: 'MIT',
    attribution: 'Test Authors',
    homepage: 'https://example.invalid/fake',
    source: { kind: 'files', baseUrl, files: Object.keys(FILES) },
    expect: {
      files: Object.entries(FILES).map(([path, data]) => ({ path, bytes: data.length, gunzippedBytes: path.includes('images') ? 3000 : 30 })),
    },
  };
}

// ---------------------------------------------------------------- a local HTTP server

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base: string;
const routes = new Map<string, Handler>();
const hits = new Map<string, number>();

function serve(path: string, body: Buffer, opts: { length?: boolean; chunk?: number } = {}): void {
  routes.set(path, (_req, res) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/x-gzip' };
    if (opts.length !== false) headers['content-length'] = body.length;
    res.writeHead(200, headers);
    const step = opts.chunk ?? body.length;
    for (let i = 0; i < body.length; i += step) res.write(body.subarray(i, i + step));
    res.end();
  });
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const h = routes.get(path);
    if (h) return h(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
});

let dir: string;
let logs: string[];
let progress: string[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'difflab-datasets-'));
  logs = [];
  progress = [];
  routes.clear();
  hits.clear();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const opts = (extra: Record<string, unknown> = {}) => ({
  to: join(dir, 'fsdd'),
  log: (l: string) => logs.push(l),
  progress: { tty: false, intervalMs: 0, write: (t: string) => progress.push(t) },
  ...extra,
});

/** The test folder holds exactly these names: no staging folders, temp files or half targets. */
function expectOnly(...names: string[]): void {
  expect(readdirSync(dir).sort()).toEqual([...names].sort());
}

async function failure(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
  expect(err.message.split('\n')).toHaveLength(1);
  return err.message;
}

// ---------------------------------------------------------------- tests

describe('tar reader', () => {
  it('reads ustar prefixes, GNU long names and pax paths; skips links and folders', async () => {
    const long = `${'x'.repeat(60)}/${'y'.repeat(70)}/z.bin`;
    const gz = join(dir, 'a.tar.gz');
    writeFileSync(
      gz,
      tarGz([
        { name: 'pax_global_header', type: 'g', data: paxRecord('comment', 'abc') },
        { name: 'top/', type: '5' },
        { name: `top/pax/${long}`, data: 'pax', long: 'pax' },
        { name: `top/gnu/${long}`, data: 'gnu', long: 'gnu' },
        { name: `top/pre/${long}`, data: 'prefix', long: 'prefix' },
        { name: './top/plain.txt', data: Buffer.alloc(1500, 65) },
        { name: 'top/empty', data: '' },
        { name: 'top/link', type: '2', linkname: '../../outside' },
      ]),
    );
    const r = await extractTarGz(gz, join(dir, 'out'));
    expect(r).toEqual({ entries: 7, files: 5, bytes: 3 + 3 + 6 + 1500 });
    expect(readFileSync(join(dir, 'out/top/pax', long), 'utf8')).toBe('pax');
    expect(readFileSync(join(dir, 'out/top/gnu', long), 'utf8')).toBe('gnu');
    expect(readFileSync(join(dir, 'out/top/pre', long), 'utf8')).toBe('prefix');
    expect(readFileSync(join(dir, 'out/top/plain.txt')).length).toBe(1500);
    expect(existsSync(join(dir, 'out/top/link'))).toBe(false);
  });

  it('refuses absolute and .. entry paths', () => {
    expect(safeEntryPath('a/./b//c')).toBe('a/b/c');
    expect(safeEntryPath('./')).toBe('');
    for (const bad of ['../x', 'a/../../x', 'a/..', '/etc/passwd', '\\x', 'C:/x', 'a\\..\\..\\x']) expect(safeEntryPath(bad)).toBeNull();
    expect(globToRegExp('recordings/*.wav').test('recordings/0_a_1.wav')).toBe(true);
    expect(globToRegExp('recordings/*.wav').test('recordings/x/0.wav')).toBe(false);
    expect(globToRegExp('recordings/*.wav').test('recordingsX0.wav')).toBe(false);
  });
});

describe('progress', () => {
  it('shows bytes, rate and percent; throttles; no percent without a total', () => {
    expect(formatProgress(13_200_000, 26_400_000, 2000)).toBe('13.2 MB / 26.4 MB (50%) at 6.6 MB/s');
    expect(formatProgress(13_200_000, undefined, 2000)).toBe('13.2 MB at 6.6 MB/s');
    let t = 0;
    const lines: string[] = [];
    const p = new Progress({ label: 'x', tty: false, write: (s) => lines.push(s), now: () => t }, 1e9);
    for (t = 0; t <= 12_000; t += 10) p.update(t * 1000);
    p.finish(12e6);
    // Not a TTY: one line per 5 s plus the summary, whole lines only.
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(lines[2]).toBe('x: downloaded 12.0 MB in 12.0 s (1.0 MB/s)\n');
    const tty: string[] = [];
    t = 0;
    const q = new Progress({ label: 'x', tty: true, write: (s) => tty.push(s), now: () => t }, undefined);
    for (t = 0; t <= 1000; t += 10) q.update(t);
    q.finish(1000);
    // A TTY: one redrawn line, at most 4 updates a second.
    expect(tty.length).toBeLessThanOrEqual(6);
    expect(tty[0]!.startsWith('\rx: ')).toBe(true);
    expect(tty.at(-1)!.endsWith('\n')).toBe(true);
  });
});

describe('fetchDataset', () => {
  it('downloads through a redirect, keeps recordings/*.wav, verifies, writes README.md, leaves nothing else', async () => {
    serve('/fsdd.tar.gz', fsddArchive(3), { chunk: 700 });
    routes.set('/archive/v1.tar.gz', (_req, res) => {
      res.writeHead(302, { location: '/fsdd.tar.gz' });
      res.end();
    });
    const r = await fetchDataset(fakeFsdd(`${base}/archive/v1.tar.gz`), opts());
    expect(r).toMatchObject({ status: 'fetched', files: 3 });
    expectOnly('fsdd');
    expect(readdirSync(join(dir, 'fsdd')).sort()).toEqual(['README.md', 'recordings']);
    expect(readdirSync(join(dir, 'fsdd/recordings')).sort()).toEqual(['0_george_0.wav', '1_george_1.wav', '2_george_2.wav']);
    expect(readFileSync(join(dir, 'fsdd/recordings/2_george_2.wav')).equals(wav(2))).toBe(true);
    const readme = readFileSync(join(dir, 'fsdd/README.md'), 'utf8');
    expect(readme).toContain('Free Spoken Digit Dataset, CC BY-SA 4.0, Jakobovski et al. (https://github.com/Jakobovski/free-spoken-digit-dataset)');
    expect(hits.get('/archive/v1.tar.gz')).toBe(1);
    // Content-Length known: percent in the progress lines, then a summary.
    const text = progress.join('');
    expect(text).toMatch(/fsdd: [\d.]+ kB \/ [\d.]+ kB \(\d+%\) at [\d.]+ MB\/s\n/);
    expect(text).toMatch(/fsdd: downloaded [\d.]+ kB in/);
  });

  it('works without Content-Length (chunked), with progress but no percent', async () => {
    serve('/chunked.tar.gz', fsddArchive(3), { length: false, chunk: 500 });
    const r = await fetchDataset(fakeFsdd(`${base}/chunked.tar.gz`), opts());
    expect(r.status).toBe('fetched');
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.join('')).not.toContain('%');
    expect(progress.join('')).toMatch(/fsdd: [\d.]+ kB at [\d.]+ MB\/s/);
    expectOnly('fsdd');
  });

  it('HTTP 404: one line with the status and URL, no target, no leftovers', async () => {
    const msg = await failure(fetchDataset(fakeFsdd(`${base}/missing.tar.gz`), opts()));
    expect(msg).toBe(`fsdd: HTTP 404 Not Found for ${base}/missing.tar.gz`);
    expectOnly();
  });

  it('truncated or corrupt gzip, a short body, an HTML page: errors, no leftovers', async () => {
    const gz = fsddArchive(3);
    serve('/trunc.tar.gz', gz.subarray(0, Math.floor(gz.length / 2)));
    expect(await failure(fetchDataset(fakeFsdd(`${base}/trunc.tar.gz`), opts()))).toMatch(/^fsdd: .*trunc\.tar\.gz: truncated gzip data/);
    expectOnly();

    const bad = Buffer.from(gz);
    for (let i = 40; i < bad.length - 40; i += 97) bad[i] = bad[i]! ^ 0x5a;
    serve('/bad.tar.gz', bad);
    expect(await failure(fetchDataset(fakeFsdd(`${base}/bad.tar.gz`), opts()))).toMatch(/^fsdd: .*bad\.tar\.gz: corrupt (gzip data|tar)/);
    expectOnly();

    // The connection drops before Content-Length bytes arrived.
    routes.set('/short.tar.gz', (_req, res) => {
      res.writeHead(200, { 'content-length': gz.length });
      res.write(gz.subarray(0, 1000), () => res.destroy());
    });
    expect(await failure(fetchDataset(fakeFsdd(`${base}/short.tar.gz`), opts()))).toMatch(/^fsdd: download of .*short\.tar\.gz failed after 1000 bytes/);
    expectOnly();

    routes.set('/login', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!DOCTYPE html><html>sign in</html>');
    });
    expect(await failure(fetchDataset(fakeFsdd(`${base}/login`), opts()))).toMatch(/not a gzip file; it looks like an HTML page/);
    expectOnly();
  });

  it('rejects an entry whose path escapes the target, writing nothing outside', async () => {
    for (const evil of [`${ROOT}/recordings/../../../evil.wav`, '/tmp/evil-difflab.wav']) {
      serve('/evil.tar.gz', fsddArchive(3, [{ name: evil, data: 'pwned' }]));
      const msg = await failure(fetchDataset(fakeFsdd(`${base}/evil.tar.gz`), opts()));
      expect(msg).toContain(`entry '${evil}' escapes the target folder (path traversal)`);
      expectOnly();
    }
    expect(existsSync('/tmp/evil-difflab.wav')).toBe(false);
  });

  it('verification failure names what was expected and found', async () => {
    serve('/two.tar.gz', fsddArchive(2));
    const msg = await failure(fetchDataset(fakeFsdd(`${base}/two.tar.gz`), opts()));
    expect(msg).toBe(`fsdd: verification of ${base}/two.tar.gz failed: expected 3 .wav files in recordings/, found 2`);
    expectOnly();
  });

  it('leaves an existing complete copy alone; --force replaces it; an incomplete one needs --force', async () => {
    serve('/fsdd.tar.gz', fsddArchive(3));
    const spec = fakeFsdd(`${base}/fsdd.tar.gz`);
    await fetchDataset(spec, opts());
    writeFileSync(join(dir, 'fsdd/marker'), 'mine');
    const again = await fetchDataset(spec, opts());
    expect(again.status).toBe('present');
    expect(logs.at(-1)).toMatch(/is already complete \(3 files\); leaving it alone/);
    expect(hits.get('/fsdd.tar.gz')).toBe(1);
    expect(existsSync(join(dir, 'fsdd/marker'))).toBe(true);

    const forced = await fetchDataset(spec, opts({ force: true }));
    expect(forced.status).toBe('fetched');
    expect(hits.get('/fsdd.tar.gz')).toBe(2);
    expect(existsSync(join(dir, 'fsdd/marker'))).toBe(false);
    expectOnly('fsdd');

    // A failed --force keeps the old copy.
    writeFileSync(join(dir, 'fsdd/marker'), 'mine');
    await failure(fetchDataset(fakeFsdd(`${base}/missing.tar.gz`), opts({ force: true })));
    expect(existsSync(join(dir, 'fsdd/marker'))).toBe(true);
    expectOnly('fsdd');

    rmSync(join(dir, 'fsdd/recordings/0_george_0.wav'));
    expect(await failure(fetchDataset(spec, opts()))).toMatch(/exists but is not a complete copy \(expected 3 \.wav files in recordings\/, found 2\); use --force/);
    expect((await fetchDataset(spec, opts({ force: true }))).status).toBe('fetched');
  });

  it('--url: a local path or a file:// URL to an archive; a network failure says how to use --url', async () => {
    const archive = join(dir, 'mirror.tar.gz');
    writeFileSync(archive, fsddArchive(3));
    // A port nothing listens on: connection refused, as offline as it gets.
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    const spec = fakeFsdd(`http://127.0.0.1:${port}/never-used.tar.gz`);
    expect((await fetchDataset(spec, opts({ url: archive }))).status).toBe('fetched');
    expect((await fetchDataset(spec, opts({ url: pathToFileURL(archive).href, force: true }))).status).toBe('fetched');
    expect(readdirSync(join(dir, 'fsdd/recordings'))).toHaveLength(3);
    expect(readFileSync(join(dir, 'fsdd/README.md'), 'utf8')).toContain(`fetched from: ${pathToFileURL(archive).href}`);
    expectOnly('fsdd', 'mirror.tar.gz');

    expect(await failure(fetchDataset(spec, opts({ url: join(dir, 'nope.tar.gz'), to: join(dir, 'x') })))).toMatch(/nope\.tar\.gz: no such file/);
    const msg = await failure(fetchDataset(spec, opts({ to: join(dir, 'x') })));
    expect(msg).toBe(
      `fsdd: download of http://127.0.0.1:${port}/never-used.tar.gz failed: connect ECONNREFUSED 127.0.0.1:${port}; no network? download the archive elsewhere and run: difflab datasets fetch fsdd --url <mirror URL | file:// URL | local path to the .tar.gz>`,
    );
    expect(msg).toContain('difflab datasets fetch fsdd --url <mirror URL | file:// URL | local path to the .tar.gz>');
    expect(await failure(fetchDataset(spec, opts({ url: 'ftp://example.invalid/x.tar.gz', to: join(dir, 'x') })))).toMatch(/unsupported URL scheme/);
    expectOnly('fsdd', 'mirror.tar.gz');
  });

  it('a files dataset: from a base URL or a local folder; sizes verified (or the uncompressed size)', async () => {
    for (const [name, data] of Object.entries(FILES)) serve(`/fm/${name}`, data);
    const spec = fakeFiles(`${base}/fm`);
    const to = join(dir, 'fm');
    expect(await fetchDataset(spec, opts({ to }))).toMatchObject({ status: 'fetched', files: 2 });
    expect(readdirSync(to).sort()).toEqual(['README.md', 'a-images.gz', 'a-labels.gz']);
    expect(progress.join('')).toContain('fake-mnist/a-images.gz: downloaded');

    // Same content, other gzip bytes (a mirror's header): accepted by the uncompressed size.
    const mirror = join(dir, 'mirror');
    mkdirSync(mirror);
    writeFileSync(join(mirror, 'a-images.gz'), gzipSync(Buffer.alloc(3000, 7), { level: 1 }));
    writeFileSync(join(mirror, 'a-labels.gz'), FILES['a-labels.gz']);
    expect((await fetchDataset(spec, opts({ to, url: mirror, force: true }))).status).toBe('fetched');

    writeFileSync(join(mirror, 'a-labels.gz'), gzipSync(noise(31, 5)));
    const msg = await failure(fetchDataset(spec, opts({ to: join(dir, 'fm2'), url: mirror })));
    expect(msg).toMatch(/^fake-mnist: verification of .*mirror failed: a-labels\.gz: expected \d+ bytes \(or 30 uncompressed\), found \d+ \(31 uncompressed\)$/);

    routes.delete('/fm/a-labels.gz');
    expect(await failure(fetchDataset(spec, opts({ to: join(dir, 'fm2') })))).toBe(`fake-mnist: HTTP 404 Not Found for ${base}/fm/a-labels.gz`);
    expectOnly('fm', 'mirror');
  });

  it('an abort mid-download (Ctrl-C) leaves nothing; stale staging folders of dead fetches are removed', async () => {
    const gz = fsddArchive(3);
    const controller = new AbortController();
    routes.set('/slow.tar.gz', (_req, res) => {
      res.writeHead(200, { 'content-length': gz.length });
      res.write(gz.subarray(0, 500), () => setTimeout(() => controller.abort(new Error('interrupted')), 50));
    });
    mkdirSync(join(dir, '.fsdd.partial-999999999-dead'));
    const msg = await failure(fetchDataset(fakeFsdd(`${base}/slow.tar.gz`), opts({ signal: controller.signal })));
    expect(msg).toMatch(/^fsdd: interrupted; nothing was written to /);
    expectOnly();
  });
});

// ---------------------------------------------------------------- the command

/** Runs the CLI from source without blocking this process (the test server must answer it). */
function difflab(args: string[], onStart?: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
    onStart?.(child);
  });
}

describe('difflab datasets', () => {
  it('fetch: unknown name, HTTP error and verification failure are one-line errors with exit 1', async () => {
    const unknown = await difflab(['datasets', 'fetch', 'mnist']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe("difflab: unknown dataset 'mnist'; known datasets: fsdd, fashion-mnist");

    const to = join(dir, 'fsdd');
    const missing = await difflab(['datasets', 'fetch', 'fsdd', '--to', to, '--url', `${base}/gone.tar.gz`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n').at(-1)).toBe(`difflab: fsdd: HTTP 404 Not Found for ${base}/gone.tar.gz`);
    expectOnly();

    // The real fsdd entry expects 3,000 recordings.
    serve('/small.tar.gz', fsddArchive(3));
    const small = await difflab(['datasets', 'fetch', 'fsdd', '--to', to, '--url', `${base}/small.tar.gz`]);
    expect(small.code).toBe(1);
    expect(small.stderr.trim().split('\n').at(-1)).toBe(`difflab: fsdd: verification of ${base}/small.tar.gz failed: expected 3000 .wav files in recordings/, found 3`);
    expectOnly();
  });

  it('fetch: Ctrl-C during a download exits non-zero and leaves nothing', async () => {
    const gz = fsddArchive(3);
    let child: ReturnType<typeof spawn> | undefined;
    routes.set('/stall.tar.gz', (_req, res) => {
      res.writeHead(200, { 'content-length': gz.length });
      res.write(gz.subarray(0, 500), () => setTimeout(() => child?.kill('SIGINT'), 200));
    });
    const r = await difflab(['datasets', 'fetch', 'fsdd', '--to', join(dir, 'fsdd'), '--url', `${base}/stall.tar.gz`], (c) => (child = c));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^difflab: fsdd: interrupted; nothing was written to /);
    expectOnly();
  });

  it('fetch and list in-process with an injected table; the license line is printed', async () => {
    serve('/fsdd.tar.gz', fsddArchive(3));
    const out: string[] = [];
    const err: string[] = [];
    const program = new Command().exitOverride();
    registerDatasetsCommand(program, {
      datasets: [fakeFsdd(`${base}/fsdd.tar.gz`)],
      print: (l) => out.push(l),
      log: (l) => err.push(l),
      progressTty: false,
      progressWrite: (t) => err.push(t),
    });
    const to = join(dir, 'fsdd');
    await program.parseAsync(['node', 'difflab', 'datasets', 'fetch', 'fsdd', '--to', to]);
    expect(out[0]).toBe(`fsdd: 3 files, 0.0 MB in ${join(to, 'recordings')}`);
    expect(out[1]).toBe('fsdd: Free Spoken Digit Dataset, CC BY-SA 4.0, Jakobovski et al. (https://github.com/Jakobovski/free-spoken-digit-dataset)');
    await program.parseAsync(['node', 'difflab', 'datasets', 'fetch', 'fsdd', '--to', to]);
    expect(err.at(-1)).toMatch(/already complete/);
    await expect(program.parseAsync(['node', 'difflab', 'datasets', 'fetch', 'nope'])).rejects.toThrow("unknown dataset 'nope'; known datasets: fsdd");

    out.length = 0;
    await program.parseAsync(['node', 'difflab', 'datasets', 'list']);
    expect(out[0]).toMatch(/^name\s+size\s+license\s+in datasets\/\s+source$/);
    expect(out[1]).toMatch(/^fsdd\s+20 MB\s+CC BY-SA 4\.0\s+(absent|complete|incomplete)\s+http/);
  });

  it('the real table: fsdd from the GitHub v1.0.10 archive, fashion-mnist as four IDX files with their sizes', () => {
    const fsdd = KNOWN_DATASETS.find((d) => d.name === 'fsdd')!;
    expect(fsdd.source).toMatchObject({ kind: 'tar.gz', url: 'https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz' });
    expect(fsdd.expect.counts).toEqual([{ pattern: 'recordings/*.wav', count: 3000, what: '.wav files' }]);
    const fm = KNOWN_DATASETS.find((d) => d.name === 'fashion-mnist')!;
    expect(fm.license).toBe('MIT');
    expect(fm.expect.files?.map((f) => [f.path, f.bytes])).toEqual([
      ['train-images-idx3-ubyte.gz', 26421880],
      ['train-labels-idx1-ubyte.gz', 29515],
      ['t10k-images-idx3-ubyte.gz', 4422102],
      ['t10k-labels-idx1-ubyte.gz', 5148],
    ]);
  });
});
