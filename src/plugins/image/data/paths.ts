import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ImageDataError, firstLine } from './source.js';

/**
 * Resolves a data path from a config.
 *
 * Rule: an absolute path is used as is. A relative path is first tried
 * against the current working directory (so `../shared/datasets/...` works
 * from the project root, where commands are run); when nothing exists there it
 * is resolved against `baseDir`, the folder of the config file. When it
 * exists in neither place the baseDir form is returned, so the error that
 * follows names the path the config most likely meant.
 */
export function resolveDataPath(path: string, baseDir: string, cwd: string = process.cwd()): string {
  if (isAbsolute(path)) return path;
  const fromCwd = resolve(cwd, path);
  if (existsSync(fromCwd)) return fromCwd;
  return resolve(baseDir, path);
}

/** Reads a whole file, or throws a one-line error naming it. */
export function readFileOrThrow(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageDataError(`${file}: cannot read (${code ?? firstLine(err)})`);
  }
}

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a file and gunzips it when its first bytes are the gzip magic (whatever its name). */
export function readMaybeGzip(file: string): Buffer {
  const raw = readFileOrThrow(file);
  if (!isGzip(raw)) return raw;
  try {
    return gunzipSync(raw);
  } catch (err) {
    throw new ImageDataError(`${file}: corrupt or truncated gzip data (${firstLine(err)})`);
  }
}
