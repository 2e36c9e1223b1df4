/**
 * The driver of bench/gpu/run.sh: everything difflab can try on a machine
 * with an NVIDIA GPU and no internet, in one go, into one JSON file.
 *
 *  1. machine: nvidia-smi, the Vulkan loader and ICDs Dawn needs;
 *  2. WebGPU through the `webgpu` package (Dawn) on the NVIDIA Vulkan
 *     driver: the adapter it finds, and difflab's probe;
 *  3. the backend suite on it (tests/backend/backend-parity.test.ts with
 *     DIFFLAB_TEST_BACKEND=webgpu: kernels, gradients and a training run
 *     against the cpu backend, leak checks);
 *  4. the image training benchmark (bench/train-image.ts) with a webgpu row,
 *     and PyTorch on CUDA on the same U-Net when a python with a CUDA build
 *     of torch is found (DIFFLAB_TORCH_PYTHON, bench/.venv-cuda, bench/.venv,
 *     python3, in that order).
 *
 * Every part that does not run is recorded with why, and the JSON is written
 * whatever happens. Usage: node --import tsx bench/gpu/run.ts --out FILE
 * [--with-wasm] (also time wasm on all cores; off by default: minutes).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface NotRun {
  part: string;
  why: string;
}

function sh(cmd: string, args: readonly string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string; error?: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs, env, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error.message } : {}) };
}

const lastLine = (text: string): string => text.split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? '';

function machine(): Record<string, unknown> {
  const smi = sh('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']);
  const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const icds = icdDirs.flatMap((d) => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : []));
  const ldconfig = sh('ldconfig', ['-p']);
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    nvidia_smi: smi.status === 0 ? smi.stdout.trim() : `not available: ${smi.error ?? lastLine(smi.stderr)}`,
    vulkan_loader: /libvulkan\.so\.1\b/.test(ldconfig.stdout) ? 'libvulkan.so.1 found by ldconfig' : 'libvulkan.so.1 not found by ldconfig',
    vulkan_icds: icds,
  };
}

/** Dawn's adapter, asked in a child process (Dawn writes driver warnings straight to stderr). */
function webgpuAdapter(): Record<string, unknown> {
  const script = `const { create } = await import('webgpu');
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
let info = null;
if (a) { const i = a.info ?? (a.requestAdapterInfo ? await a.requestAdapterInfo() : {}); info = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description }; }
process.stdout.write(JSON.stringify({ found: !!a, info, features: a ? [...a.features] : [] }));`;
  const r = sh(process.execPath, ['--input-type=module', '-e', script], 120_000);
  try {
    return { ...(JSON.parse(lastLine(r.stdout)) as Record<string, unknown>), dawn_stderr: r.stderr.split('\n').filter(Boolean).slice(-8) };
  } catch {
    return { found: false, error: lastLine(r.stderr) || r.error || `exit ${r.status}` };
  }
}

interface TorchPython {
  python: string;
  torch: string;
  cuda: boolean;
  device?: string;
}

/** The first python whose torch sees a CUDA device, or the reasons none does. */
function findCudaTorch(): { found?: TorchPython; tried: Record<string, string> } {
  const candidates = [process.env['DIFFLAB_TORCH_PYTHON'], join(ROOT, 'bench/.venv-cuda/bin/python'), join(ROOT, 'bench/.venv/bin/python'), 'python3'].filter(
    (p): p is string => !!p && (!p.includes('/') || existsSync(p)),
  );
  const tried: Record<string, string> = {};
  const probe = 'import json, torch; ok = torch.cuda.is_available(); print(json.dumps({"torch": torch.__version__, "cuda": ok, "device": torch.cuda.get_device_name(0) if ok else None}))';
  for (const py of candidates) {
    const r = sh(py, ['-c', probe], 120_000);
    if (r.status !== 0) {
      tried[py] = `no torch: ${lastLine(r.stderr) || r.error || `exit ${r.status}`}`;
      continue;
    }
    const j = JSON.parse(lastLine(r.stdout)) as { torch: string; cuda: boolean; device: string | null };
    if (j.cuda) return { found: { python: py, torch: j.torch, cuda: true, ...(j.device ? { device: j.device } : {}) }, tried };
    tried[py] = `torch ${j.torch} sees no CUDA device${j.torch.includes('+cpu') ? ' (a CPU-only build)' : ''}`;
  }
  return { tried };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const outIdx = argv.indexOf('--out');
  const out = resolve(outIdx >= 0 ? (argv[outIdx + 1] ?? '') : join(process.env['OUT'] ?? join(ROOT, 'bench/results'), 'gpu-results.json'));
  const withWasm = argv.includes('--with-wasm');
  const tmp = mkdtempSync(join(tmpdir(), 'difflab-gpu-'));
  const notRun: NotRun[] = [];
  const result: Record<string, unknown> = { schema: 'difflab-gpu-run/1', started: new Date().toISOString(), machine: machine() };
  const save = (): void => {
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify({ ...result, not_run: notRun, finished: new Date().toISOString() }, null, 2)}\n`);
  };
  try {
    // 2. WebGPU: the raw adapter and difflab's own probe (which also loads the backend).
    const adapter = webgpuAdapter();
    const { probeBackends } = await import(pathToFileURL(join(ROOT, 'src/core/backend/select.ts')).href);
    const reports = (await probeBackends()) as { name: string; available: boolean; reason: string }[];
    const webgpu = reports.find((r) => r.name === 'webgpu');
    result['webgpu'] = { adapter, difflab_probe: webgpu, backends: reports };
    save();
    if (!webgpu?.available) notRun.push({ part: 'webgpu', why: webgpu?.reason ?? 'no webgpu report' });
    notRun.push({
      part: 'tfjs-node-gpu',
      why: 'not attempted: it needs a CUDA build of libtensorflow; install:native builds the CPU one from the tensorflow-cpu wheel only',
    });

    // 3. The backend suite on WebGPU.
    if (webgpu?.available) {
      const report = join(tmp, 'vitest.json');
      const r = sh(
        process.execPath,
        [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', 'tests/backend/backend-parity.test.ts', '--reporter=json', `--outputFile=${report}`],
        15 * 60_000,
        { ...process.env, DIFFLAB_TEST_BACKEND: 'webgpu' },
      );
      if (existsSync(report)) {
        const j = JSON.parse(readFileSync(report, 'utf8')) as {
          numPassedTests: number;
          numFailedTests: number;
          numPendingTests: number;
          testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
        };
        const failures = j.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status === 'failed')).map((a) => ({ test: a.fullName, error: (a.failureMessages[0] ?? '').split('\n')[0] }));
        result['backend_tests'] = { backend: 'webgpu', exit: r.status, passed: j.numPassedTests, failed: j.numFailedTests, skipped: j.numPendingTests, failures };
      } else {
        result['backend_tests'] = { backend: 'webgpu', exit: r.status, error: lastLine(r.stderr) || r.error };
      }
    } else {
      notRun.push({ part: 'backend tests on webgpu', why: 'no WebGPU adapter' });
    }
    save();

    // 4. The image training benchmark: a webgpu row (skipped with its reason when there is none) and PyTorch on CUDA.
    const torch = findCudaTorch();
    result['pytorch_cuda'] = torch.found ?? { found: false, tried: torch.tried };
    if (!torch.found) notRun.push({ part: 'pytorch cuda', why: `no python with a CUDA build of torch: ${Object.entries(torch.tried).map(([p, w]) => `${p}: ${w}`).join('; ')}` });
    if (!webgpu?.available && !torch.found) {
      notRun.push({ part: 'bench:train-image', why: 'neither a WebGPU adapter nor CUDA torch: nothing to time on the GPU' });
    } else {
      const file = join(tmp, 'train-image.json');
      const args = [
        '--import', 'tsx', join(ROOT, 'bench/train-image.ts'),
        '--backend', 'webgpu',
        '--out', file,
        ...(withWasm ? [] : ['--skip-wasm']),
        ...(torch.found ? ['--torch-device', 'cuda'] : ['--skip-torch']),
      ];
      const env = { ...process.env, ...(torch.found ? { DIFFLAB_TORCH_PYTHON: torch.found.python } : {}) };
      const r = sh(process.execPath, args, 30 * 60_000, env);
      result['train_image'] = existsSync(file)
        ? { exit: r.status, report: JSON.parse(readFileSync(file, 'utf8')) as unknown, table: r.stdout.split('\n').filter((l) => l.startsWith('|')) }
        : { exit: r.status, error: lastLine(r.stderr) || r.error };
      if (!torch.found) notRun.push({ part: 'bench:train-image pytorch rows', why: 'no CUDA torch (see pytorch_cuda)' });
    }
  } catch (err) {
    result['error'] = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  } finally {
    save();
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`bench/gpu: wrote ${out}`);
  for (const n of notRun) console.log(`  not run: ${n.part}: ${n.why}`);
  if (result['error']) {
    console.error(`bench/gpu: error: ${String(result['error'])}`);
    process.exitCode = 1;
  }
}

await main();
