#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { BACKEND_NAMES, probeBackends, selectBackend, type BackendReport } from '../core/backend/select.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Prints a one-line error and exits non-zero: the CLI's contract for bad input. */
function fail(err: unknown, code = 1): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`difflab: ${msg.split('\n')[0]}\n`);
  process.exit(code);
}

function backendTable(reports: readonly BackendReport[], selected: string | undefined): string {
  const rows = reports.map((r) => [r.name === selected ? `* ${r.name}` : `  ${r.name}`, r.available ? 'yes' : 'no', r.reason]);
  const head = ['  backend', 'available', 'reason'];
  const w0 = Math.max(head[0]!.length, ...rows.map((r) => r[0]!.length));
  const w1 = Math.max(head[1]!.length, ...rows.map((r) => r[1]!.length));
  const line = (r: string[]) => `${r[0]!.padEnd(w0)}  ${r[1]!.padEnd(w1)}  ${r[2]}`;
  return [line(head), ...rows.map(line)].join('\n');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('difflab')
    .description('Train, sample and evaluate diffusion models on any modality.')
    .version(pkg.version, '-v, --version')
    .option('--backend <name>', `tensor backend: ${BACKEND_NAMES.join(', ')} (default: best available; env DIFFLAB_BACKEND)`)
    .showHelpAfterError('(run difflab --help for usage)')
    .exitOverride();

  program
    .command('backends')
    .description('list every tensor backend, whether it is available and why, and which one is selected')
    .option('--json', 'print JSON instead of a table')
    .action(async (opts: { json?: boolean }) => {
      const forced = program.opts<{ backend?: string }>().backend;
      const reports = await probeBackends();
      const selected = await selectBackend(forced);
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ selected: selected.name, chosenBecause: selected.chosenBecause, addedKernels: selected.addedKernels, backends: reports }, null, 2)}\n`,
        );
      } else {
        process.stdout.write(`${backendTable(reports, selected.name)}\n\nselected: ${selected.name} (${selected.chosenBecause})\n`);
        if (selected.addedKernels.length) {
          process.stdout.write(`difflab kernels registered on ${selected.name}: ${selected.addedKernels.join(', ')}\n`);
        }
      }
    });

  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors already printed their message.
      process.exit(err.exitCode);
    }
    fail(err);
  }
}

await main();
