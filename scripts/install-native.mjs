#!/usr/bin/env node
/**
 * `npm run install:native [-- --tf-version X.Y.Z] [--force] [--check]`
 *
 * Builds a working @tensorflow/tfjs-node (native TensorFlow for tfjs)
 * without its installer's download from storage.googleapis.com:
 *
 *  1. downloads the `tensorflow-cpu` wheel from PyPI with pip (cached in
 *     .native/wheels, gitignored) and unpacks only its shared libraries and
 *     C API headers into .native/tensorflow-<version>/;
 *  2. checks that the library exports every TF_* / TFE_* function the
 *     tfjs-node binding calls and needs no libpython;
 *  3. installs @tensorflow/tfjs-node (the version of our @tensorflow/tfjs)
 *     with `npm install --no-save --ignore-scripts`, so package.json and
 *     package-lock.json stay as they are and `npm ci` never runs its installer;
 *  4. stages the library as deps/lib/libtensorflow.so* (where its binding.gyp
 *     links and where its own installer looks before downloading) and the
 *     headers as deps/include, and builds the addon with node-gyp against the
 *     local node headers (no header download);
 *  5. verifies in a fresh process: backend 'tensorflow', a matMul, and a
 *     conv2d gradient equal to the cpu backend's.
 *
 * Idempotent: a finished build (stamp in deps/difflab-native.json) is only
 * verified again. `npm ci` / `npm install` remove the package again (it is
 * not in package.json); rerun this script then (the wheel stays cached).
 * Each failure is one line `install:native: error: ...` and exit code 1.
 *
 * Why TensorFlow 2.12.1 and not the 2.9.1 tfjs-node was built against: the
 * 2.9.x wheels have no libtensorflow_cc.so.2; their C API lives inside the
 * Python extension `_pywrap_tensorflow_internal.so`, which leaves libpython
 * symbols undefined (dlopen fails on `PyTuple_Type`). From 2.12 the wheel
 * carries libtensorflow_cc.so.2 with the whole C API and no Python
 * dependency; the C API the binding uses is unchanged (checked in step 2).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(ROOT, '.native');
const PKG = '@tensorflow/tfjs-node';
const PKG_DIR = join(ROOT, 'node_modules', ...PKG.split('/'));
const DEFAULT_TF = '2.12.1';
/** Python tags tried for the wheel download, newest first (the libraries inside do not depend on it). */
const PYTHON_TAGS = ['3.11', '3.10', '3.9'];

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};
const log = (msg) => console.log(`install:native: ${msg}`);

function parseArgs(argv) {
  const a = { tf: process.env.DIFFLAB_TF_VERSION || DEFAULT_TF, force: false, check: false };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--tf-version') a.tf = argv[++i] ?? fail('--tf-version needs a version, e.g. 2.12.1');
    else if (f === '--force') a.force = true;
    else if (f === '--check') a.check = true;
    else fail(`unknown flag ${f} (flags: --tf-version X.Y.Z, --force, --check)`);
  }
  if (!/^\d+\.\d+\.\d+$/.test(a.tf)) fail(`--tf-version ${a.tf}: expected X.Y.Z`);
  return a;
}

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

/** The last non-empty line of a command's stderr (or stdout), for one-line errors. */
function lastLine(r) {
  const pick = (text) => (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean).pop();
  return pick(r.stderr) ?? pick(r.stdout) ?? r.error?.message ?? `exit ${r.status ?? r.signal}`;
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function sha(file) {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'absent';
}

// ------------------------------------------------------------------ 1. wheel

function python() {
  for (const p of ['python3', 'python']) if (run(p, ['-m', 'pip', '--version']).status === 0) return p;
  return fail('no python3 with pip on PATH: pip downloads the tensorflow-cpu wheel from PyPI');
}

function findWheel(dir, version) {
  if (!existsSync(dir)) return undefined;
  const w = readdirSync(dir).find((f) => f.startsWith(`tensorflow_cpu-${version}-`) && f.endsWith('.whl'));
  return w ? join(dir, w) : undefined;
}

function ensureWheel(version) {
  const dir = join(CACHE, 'wheels');
  let wheel = findWheel(dir, version);
  if (wheel) {
    log(`wheel cached: ${relative(ROOT, wheel)}`);
    return wheel;
  }
  mkdirSync(dir, { recursive: true });
  const py = python();
  let why = '';
  for (const tag of PYTHON_TAGS) {
    log(`downloading tensorflow-cpu==${version} (python ${tag} wheel, manylinux2014_x86_64) with pip...`);
    const r = run(py, [
      '-m', 'pip', 'download', `tensorflow-cpu==${version}`, '--no-deps', '--only-binary=:all:',
      '--python-version', tag, '--platform', 'manylinux2014_x86_64', '-d', dir, '--quiet',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    wheel = findWheel(dir, version);
    if (r.status === 0 && wheel) return wheel;
    why = lastLine(r);
  }
  return fail(`pip could not download tensorflow-cpu==${version} for python ${PYTHON_TAGS.join('/')}: ${why}`);
}

/** Member paths inside the wheel we need: the libraries and the C API headers. */
const LIB_CC = 'tensorflow/libtensorflow_cc.so.2';
const LIB_FW = 'tensorflow/libtensorflow_framework.so.2';
const PYWRAP = 'tensorflow/python/_pywrap_tensorflow_internal.so';
const HEADER_DIRS = ['tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/', 'tensorflow/include/tensorflow/tsl/'];

/** Unpacks members (exact names, or prefixes ending in '/') with python's zipfile; returns the names it found. */
function unzip(wheel, dest, members) {
  const script = `
import json, os, shutil, sys, zipfile
wheel, dest, wanted = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
found = []
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        n = info.filename
        if n.endswith('/') or not any(n == w or (w.endswith('/') and n.startswith(w)) for w in wanted):
            continue
        out = os.path.join(dest, n)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + '.part', 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(out + '.part', out)
        os.chmod(out, 0o755 if n.endswith(('.so', '.so.2')) else 0o644)
        found.append(n)
print(json.dumps(found))
`;
  const r = run(python(), ['-c', script, wheel, dest, JSON.stringify(members)], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) fail(`could not unpack ${relative(ROOT, wheel)}: ${lastLine(r)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]');
}

function hasNm() {
  return run('nm', ['--version']).status === 0;
}

/** Dynamic symbols of a library: defined names and undefined names (version suffixes dropped). */
function dynamicSymbols(lib) {
  const parse = (args) => {
    const r = run('nm', ['-D', ...args, lib], { maxBuffer: 512 << 20 });
    if (r.status !== 0) fail(`nm -D ${relative(ROOT, lib)} failed: ${lastLine(r)}`);
    return new Set(r.stdout.split('\n').map((l) => l.trim().split(/\s+/).pop()?.split('@')[0]).filter(Boolean));
  };
  return { defined: parse(['--defined-only']), undefined: parse(['--undefined-only']) };
}

/** Unpacks the wheel's libraries and headers once into .native/tensorflow-<version>. */
function ensureUnpacked(version, wheel) {
  const dest = join(CACHE, `tensorflow-${version}`);
  const done = join(dest, '.complete');
  if (existsSync(done)) return dest;
  rmSync(dest, { recursive: true, force: true });
  log(`unpacking libraries and C API headers from ${relative(ROOT, wheel)}...`);
  const found = unzip(wheel, dest, [LIB_CC, LIB_FW, ...HEADER_DIRS]);
  if (!found.includes(LIB_CC)) {
    // The 2.9-2.11 layout: explain with the evidence from the library that does hold the C API.
    let detail = `its C API is inside ${PYWRAP}, a Python extension`;
    if (unzip(wheel, dest, [PYWRAP]).length && hasNm()) {
      const syms = dynamicSymbols(join(dest, PYWRAP));
      const py = [...syms.undefined].filter((s) => /^_?Py/.test(s));
      detail += ` that exports TFE_NewContext=${syms.defined.has('TFE_NewContext')} but leaves ${py.length} libpython symbols undefined (e.g. ${py.includes('PyTuple_Type') ? 'PyTuple_Type' : py[0]}), so dlopen fails outside python`;
    }
    rmSync(dest, { recursive: true, force: true });
    fail(`tensorflow-cpu ${version}: the wheel has no ${LIB_CC}; ${detail}; use --tf-version ${DEFAULT_TF} (or any 2.12+)`);
  }
  if (!found.includes(LIB_FW)) fail(`tensorflow-cpu ${version}: the wheel has no ${LIB_FW}`);
  if (!found.some((f) => f.endsWith('tensorflow/c/eager/c_api.h'))) fail(`tensorflow-cpu ${version}: the wheel has no tensorflow/c/eager/c_api.h header`);
  writeFileSync(done, `${JSON.stringify({ wheel: relative(ROOT, wheel), files: found.length })}\n`);
  return dest;
}

// ------------------------------------------------------------------ 2. C API check

/** TF_* / TFE_* functions the binding calls that the library must export (inline helpers and its own classes excluded). */
function requiredSymbols(pkgDir, includeDir) {
  const src = readdirSync(join(pkgDir, 'binding')).map((f) => readFileSync(join(pkgDir, 'binding', f), 'utf8')).join('\n');
  const names = new Set([...src.matchAll(/\b(TFE?_[A-Z][A-Za-z0-9_]*)\s*\(/g)].map((m) => m[1]));
  const own = new Set([...src.matchAll(/\b(?:class|struct)\s+(TFE?_[A-Za-z0-9_]+)/g)].map((m) => m[1]));
  // Header-only helpers (e.g. TF_TString_* in ctstring_internal.h, whose folder moved between versions).
  const inline = new Set();
  const scan = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) scan(join(dir, e.name));
      else if (e.name.endsWith('.h')) {
        for (const m of readFileSync(join(dir, e.name), 'utf8').matchAll(/\binline\b[^;{()]*\b(TFE?_[A-Za-z0-9_]+)\s*\(/g)) inline.add(m[1]);
      }
    }
  };
  scan(includeDir);
  return [...names].filter((n) => !own.has(n) && !inline.has(n)).sort();
}

function checkCApi(version, unpacked, pkgDir) {
  if (!hasNm()) {
    log('nm not found (binutils): skipping the C API symbol check; the verification step still loads the addon');
    return;
  }
  const lib = join(unpacked, LIB_CC);
  const syms = dynamicSymbols(lib);
  const need = requiredSymbols(pkgDir, join(unpacked, 'tensorflow/include'));
  const missing = need.filter((n) => !syms.defined.has(n));
  if (missing.length) fail(`tensorflow-cpu ${version}: libtensorflow_cc.so.2 lacks ${missing.length} C API functions the binding calls: ${missing.join(', ')}`);
  const py = [...syms.undefined].filter((s) => /^_?Py/.test(s));
  if (py.length) fail(`tensorflow-cpu ${version}: libtensorflow_cc.so.2 needs ${py.length} libpython symbols (e.g. ${py[0]})`);
  log(`C API check: libtensorflow_cc.so.2 ${version} exports all ${need.length} TF_/TFE_ functions the binding calls, needs no libpython`);
}

// ------------------------------------------------------------------ 3. package

function tfjsVersion() {
  const v = readJson(join(ROOT, 'node_modules/@tensorflow/tfjs/package.json'))?.version;
  return v ?? fail('node_modules/@tensorflow/tfjs is missing: run `npm ci` first');
}

function ensurePackage(version) {
  const have = readJson(join(PKG_DIR, 'package.json'))?.version;
  // Its runtime dependencies too: an interrupted install can leave the package without them.
  const deps = ['@mapbox/node-pre-gyp', 'google-protobuf'];
  const depsThere = deps.every((d) => [ROOT, PKG_DIR].some((base) => existsSync(join(base, 'node_modules', d, 'package.json'))));
  if (have === version && depsThere && existsSync(join(PKG_DIR, 'binding/tfjs_backend.cc'))) {
    log(`${PKG}@${version} already installed`);
    return;
  }
  // --no-save keeps package.json and package-lock.json as they are; --ignore-scripts skips its downloading installer.
  const guarded = ['package.json', 'package-lock.json'].map((f) => ({ f: join(ROOT, f), before: sha(join(ROOT, f)), bytes: existsSync(join(ROOT, f)) ? readFileSync(join(ROOT, f)) : undefined }));
  log(`npm install --no-save --ignore-scripts ${PKG}@${version}...`);
  const r = run('npm', ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', `${PKG}@${version}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const g of guarded) {
    if (sha(g.f) !== g.before && g.bytes) {
      writeFileSync(g.f, g.bytes);
      log(`warning: npm changed ${relative(ROOT, g.f)} despite --no-save; restored it`);
    }
  }
  if (r.status !== 0) fail(`npm install ${PKG}@${version} failed: ${lastLine(r)}`);
  const got = readJson(join(PKG_DIR, 'package.json'))?.version;
  if (got !== version) fail(`npm installed ${PKG}@${got ?? 'nothing'} at ${relative(ROOT, PKG_DIR)}, expected ${version}`);
}

// ------------------------------------------------------------------ 4. stage + build

function placeFile(src, dest) {
  rmSync(dest, { force: true });
  try {
    linkSync(src, dest); // a hard link: no second copy of a 500 MB library on the same disk
  } catch {
    copyFileSync(src, dest);
  }
}

function stage(unpacked, pkgDir) {
  const deps = join(pkgDir, 'deps');
  rmSync(deps, { recursive: true, force: true });
  const lib = join(deps, 'lib');
  mkdirSync(lib, { recursive: true });
  placeFile(join(unpacked, LIB_CC), join(lib, 'libtensorflow_cc.so.2'));
  placeFile(join(unpacked, LIB_FW), join(lib, 'libtensorflow_framework.so.2'));
  // binding.gyp links -ltensorflow -ltensorflow_framework; the addon then records the sonames (libtensorflow_cc.so.2,
  // libtensorflow_framework.so.2) found through its rpath $ORIGIN/../../deps/lib. tfjs-node's own installer skips its
  // download when deps/lib/libtensorflow.so.<its version> exists, so `npm rebuild` would not try the network either.
  const links = { 'libtensorflow.so': 'libtensorflow_cc.so.2', 'libtensorflow.so.2': 'libtensorflow_cc.so.2', 'libtensorflow_framework.so': 'libtensorflow_framework.so.2' };
  const own = readFileSync(join(pkgDir, 'scripts/deps-constants.js'), 'utf8').match(/LIBTENSORFLOW_VERSION = '([\d.]+)'/)?.[1];
  if (own) {
    links[`libtensorflow.so.${own}`] = 'libtensorflow_cc.so.2';
    links[`libtensorflow_framework.so.${own}`] = 'libtensorflow_framework.so.2';
  }
  for (const [name, target] of Object.entries(links)) symlinkSync(target, join(lib, name));
  copyDir(join(unpacked, 'tensorflow/include'), join(deps, 'include'));
}

function copyDir(src, dest) {
  mkdirSync(dest, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    if (e.isDirectory()) copyDir(join(src, e.name), join(dest, e.name));
    else copyFileSync(join(src, e.name), join(dest, e.name));
  }
}

function nodeGyp() {
  const candidates = [
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    join(ROOT, 'node_modules/node-gyp/bin/node-gyp.js'),
  ];
  const r = run('npm', ['root', '-g']);
  if (r.status === 0) candidates.push(join(r.stdout.trim(), 'npm/node_modules/node-gyp/bin/node-gyp.js'));
  return candidates.find((c) => existsSync(c)) ?? fail(`node-gyp not found (looked in: ${candidates.join(', ')}); it ships with npm`);
}

/** A node installation prefix with headers, so node-gyp does not download them. */
function nodeDir() {
  const env = process.env.npm_config_nodedir;
  const candidates = [env, resolve(dirname(process.execPath), '..'), '/usr', '/usr/local'].filter(Boolean);
  const ok = candidates.find((d) => existsSync(join(d, 'include/node/node_api.h')) && existsSync(join(d, 'include/node/common.gypi')));
  return ok ?? fail(`node headers (include/node/node_api.h, common.gypi) not found under ${candidates.join(', ')}: install your distribution's nodejs headers package or set npm_config_nodedir`);
}

/** Where tfjs-node's loader (node-pre-gyp `find`) looks for the addon. */
function addonPath(pkgDir) {
  const r = run(process.execPath, ['-e', `process.stdout.write(require('@mapbox/node-pre-gyp').find(${JSON.stringify(join(pkgDir, 'package.json'))}))`], { cwd: pkgDir });
  if (r.status !== 0) fail(`@mapbox/node-pre-gyp could not name the addon path: ${lastLine(r)}`);
  return r.stdout.trim();
}

function build(pkgDir) {
  const target = addonPath(pkgDir);
  const napi = /napi-v(\d+)/.exec(target)?.[1] ?? fail(`unexpected addon path ${target} (no napi-vN folder)`);
  const gyp = nodeGyp();
  const dir = nodeDir();
  log(`building the addon with node-gyp (node headers from ${dir}, N-API ${napi})...`);
  const logFile = join(CACHE, 'build.log');
  const r = run(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--', '-Dmodule_name=tfjs_binding', `-Dmodule_path=${dirname(target)}`, `-Dnapi_build_version=${napi}`], {
    cwd: pkgDir,
    env: { ...process.env, npm_config_nodedir: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  writeFileSync(logFile, `${r.stdout}\n${r.stderr}`);
  if (r.status !== 0) {
    const first = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => /error|undefined reference|cannot find/i.test(l) && !/^gyp (ERR|info)/.test(l));
    fail(`node-gyp build failed: ${(first ?? lastLine(r)).trim()} (full log: ${relative(ROOT, logFile)})`);
  }
  if (!existsSync(target)) fail(`node-gyp finished but ${relative(ROOT, target)} is missing (log: ${relative(ROOT, logFile)})`);
  return target;
}

// ------------------------------------------------------------------ 5. verify

const VERIFY = `(async () => {
const tf = require(${JSON.stringify(PKG)});
const out = { backend: tf.getBackend(), tensorflow: tf.backend().binding ? tf.backend().binding.TF_Version : null };
if (out.backend !== 'tensorflow') { console.log(JSON.stringify({ error: 'tf.getBackend() is ' + out.backend + ", not 'tensorflow'" })); process.exit(1); }
const m = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync().flat();
if (String(m) !== '19,22,43,50') { console.log(JSON.stringify({ error: 'matMul gave ' + m + ', expected 19,22,43,50' })); process.exit(1); }
const xs = Float32Array.from({ length: 2 * 6 * 6 * 3 }, (_, i) => Math.sin(i * 0.37));
const ws = Float32Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i * 0.21));
const grads = () => tf.tidy(() => {
  const x = tf.tensor4d(xs, [2, 6, 6, 3]); const w = tf.tensor4d(ws, [3, 3, 3, 4]);
  const g = tf.grads((a, b) => tf.sum(tf.square(tf.conv2d(a, b, 1, 'same'))))([x, w]);
  return g.map((t) => Array.from(t.dataSync()));
});
const native = grads();
await tf.setBackend('cpu');
const ref = grads();
let err = 0;
native.forEach((g, k) => g.forEach((v, i) => { err = Math.max(err, Math.abs(v - ref[k][i]) / (1 + Math.abs(ref[k][i]))); }));
out.conv2dGradMaxRelErr = err;
if (!(err < 1e-4)) { console.log(JSON.stringify({ ...out, error: 'conv2d gradient differs from the cpu backend by ' + err })); process.exit(1); }
console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e).split('\\n')[0] })); process.exit(1); });
`;

function verify() {
  const r = run(process.execPath, ['-e', VERIFY], { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let j;
  try {
    j = JSON.parse(last);
  } catch {
    fail(`${PKG} failed to load: ${lastLine(r)}`);
  }
  if (r.status !== 0 || j.error) fail(`${PKG} loaded but the check failed: ${j.error ?? lastLine(r)}`);
  return j;
}

// ------------------------------------------------------------------ main

function main() {
  const args = parseArgs(process.argv.slice(2));
  if (platform() !== 'linux' || arch() !== 'x64') fail(`only linux x64 is supported (this is ${platform()} ${arch()}): the wheel route uses manylinux x86_64 libraries`);
  if (args.check) {
    const j = verify();
    log(`ok: ${PKG} loads, backend '${j.backend}', TensorFlow ${j.tensorflow}, conv2d gradient max rel. error vs cpu ${j.conv2dGradMaxRelErr.toExponential(1)}`);
    return;
  }
  const tfjs = tfjsVersion();
  const stampFile = join(PKG_DIR, 'deps', 'difflab-native.json');
  const stamp = readJson(stampFile);
  const wanted = { tensorflow: args.tf, tfjsNode: tfjs };
  let target;
  if (!args.force && stamp?.tensorflow === wanted.tensorflow && stamp?.tfjsNode === wanted.tfjsNode && readJson(join(PKG_DIR, 'package.json'))?.version === tfjs && existsSync(stamp.addon ?? '')) {
    log(`already built (TensorFlow ${stamp.tensorflow}, ${PKG}@${stamp.tfjsNode}); verifying`);
  } else {
    const wheel = ensureWheel(args.tf);
    const unpacked = ensureUnpacked(args.tf, wheel);
    ensurePackage(tfjs);
    checkCApi(args.tf, unpacked, PKG_DIR);
    stage(unpacked, PKG_DIR);
    target = build(PKG_DIR);
    writeFileSync(stampFile, `${JSON.stringify({ ...wanted, wheel: relative(ROOT, wheel), addon: target, built: new Date().toISOString() }, null, 2)}\n`);
  }
  const j = verify();
  log(`ok: ${PKG}@${tfjs} on TensorFlow ${j.tensorflow} (backend '${j.backend}'), matMul and conv2d gradient match the cpu backend (max rel. error ${j.conv2dGradMaxRelErr.toExponential(1)})`);
  log('difflab now prefers it: `npx difflab backends` (or `npx tsx src/cli/main.ts backends`)');
}

try {
  main();
} catch (err) {
  console.error(`install:native: error: ${err instanceof Failure ? err.message : (err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  process.exit(1);
}
