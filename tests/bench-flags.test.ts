import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBenchFlags, type BenchFlag } from '../bench/lib/common.js';

interface Args {
  steps: number;
  skip: boolean;
  profile: boolean;
  out: string;
  device: string;
  tags: string[];
}
const defaults = (): Args => ({ steps: 6, skip: false, profile: true, out: 'a.json', device: 'cpu', tags: [] });
const flags: Record<string, BenchFlag<Args>> = {
  '--steps': { int: 'steps', min: 1 },
  '--skip': { set: 'skip' },
  '--no-profile': { set: 'profile', value: false },
  '--out': { path: 'out' },
  '--device': { string: 'device' },
  '--tag': (a, value) => a.tags.push(value()),
};

describe('parseBenchFlags (the benches\' command lines)', () => {
  it('parses every kind of flag onto a copy of the defaults', () => {
    const d = defaults();
    const a = parseBenchFlags('demo', ['--steps', '3', '--skip', '--no-profile', '--out', 'x/y.json', '--device', 'cuda', '--tag', 'p', '--tag', 'q'], d, flags);
    expect(a).toEqual({ steps: 3, skip: true, profile: false, out: resolve('x/y.json'), device: 'cuda', tags: ['p', 'q'] });
    expect(d.steps).toBe(6);
    expect(parseBenchFlags('demo', [], defaults(), flags)).toEqual(defaults());
  });

  it('names the bench, the flag and the value in one line when something is wrong', () => {
    expect(() => parseBenchFlags('demo', ['--steps', '0'], defaults(), flags)).toThrow("bench:demo: --steps needs an integer >= 1, got '0'");
    expect(() => parseBenchFlags('demo', ['--steps', '2.5'], defaults(), flags)).toThrow(/got '2.5'/);
    expect(() => parseBenchFlags('demo', ['--out'], defaults(), flags)).toThrow('bench:demo: --out needs a value');
    expect(() => parseBenchFlags('demo', ['--stpes', '3'], defaults(), flags)).toThrow("bench:demo: unknown flag '--stpes' (flags: --steps, --skip, --no-profile, --out, --device, --tag)");
  });
});
