import { Worker, type WorkerOptions } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Starting the worker from TypeScript source and from compiled JS.
 *
 * This module finds its sibling entry: `worker.ts` when it is itself running
 * as .ts (vitest, tsx), `worker.js` in dist/. A .ts entry, or a .ts model
 * factory, needs a TypeScript loader inside the worker. Node 20 does not
 * apply `execArgv: ['--import', 'tsx']` to a worker's entry module (the
 * loader registers too late; measured: "Unknown file extension .ts"), so the
 * worker instead starts from a two-line ES module bootstrap that calls tsx's
 * `register()` and then imports the entry. tsx is a devDependency: the
 * dist/ JS path with JS factories needs nothing but Node.
 */
export function workerEntryUrl(): URL {
  const here = import.meta.url;
  return new URL(/\.(m|c)?ts$/.test(new URL(here).pathname) ? './worker.ts' : './worker.js', here);
}

let tsxApi: string | undefined;

/** file: URL of tsx's ESM register API, resolved from this package. */
function tsxRegisterUrl(): string {
  if (tsxApi) return tsxApi;
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('tsx/package.json');
  } catch {
    throw new Error(
      'a data-parallel worker must load TypeScript (its entry or the model factory is .ts) but `tsx` is not installed; ' +
        'install tsx or use compiled JS (dist/ and a .js factory)',
    );
  }
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    exports?: Record<string, string | { import?: string | { default?: string } }>;
  };
  const entry = pkg.exports?.['./esm/api'];
  const imp = typeof entry === 'string' ? entry : entry?.import;
  const rel = typeof imp === 'string' ? imp : imp?.default;
  if (!rel) throw new Error(`tsx at ${dirname(pkgJson)} has no ./esm/api export`);
  tsxApi = pathToFileURL(join(dirname(pkgJson), rel)).href;
  return tsxApi;
}

export function startWorker(needsTypeScript: boolean, options: WorkerOptions = {}): Worker {
  const entry = workerEntryUrl();
  const ts = needsTypeScript || /\.(m|c)?ts$/.test(entry.pathname);
  if (!ts) return new Worker(entry, options);
  const bootstrap =
    `import { register } from ${JSON.stringify(tsxRegisterUrl())};\n` +
    `register();\n` +
    `await import(${JSON.stringify(entry.href)});\n`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), options);
}
