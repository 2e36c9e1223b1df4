import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, readSafetensors, writeSafetensors } from '../../../src/core/io/safetensors.js';
import { writeFileAtomic } from '../../../src/core/io/atomic.js';

// Written by the reference implementation (Python `safetensors.numpy.save`) for
// {'w': float32 [[1.5, -2], [0.25, 3]], 'step': int32 [7]}, metadata {'format': 'difflab'}.
const REFERENCE_HEX =
  '98000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a22646966666c6162227d2c2277223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b302c31365d7d2c2273746570223a7b226474797065223a22493332222c227368617065223a5b315d2c22646174615f6f666673657473223a5b31362c32305d7d7d200000c03f000000c00000803e0000404007000000';

describe('safetensors', () => {
  it('reads what the reference implementation writes', () => {
    const { tensors, metadata } = decodeSafetensors(Buffer.from(REFERENCE_HEX, 'hex'));
    expect(metadata).toEqual({ format: 'difflab' });
    expect(tensors.get('w')).toMatchObject({ dtype: 'F32', shape: [2, 2] });
    expect([...tensors.get('w')!.data]).toEqual([1.5, -2, 0.25, 3]);
    expect([...tensors.get('step')!.data]).toEqual([7]);
  });

  it('writes files that read back exactly, 8-byte aligned, atomically', () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-st-'));
    const file = join(dir, 'weights.safetensors');
    const w = new Float32Array([1.5, -2, 0.25, 3, Math.PI, -0]);
    writeSafetensors(file, { w: { shape: [2, 3], data: w }, step: { shape: [1], data: new Int32Array([7]) } }, { format: 'difflab' });
    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
    const back = readSafetensors(file);
    expect([...back.tensors.get('w')!.data]).toEqual([...w]);
    expect(back.tensors.get('w')!.shape).toEqual([2, 3]);
    expect(back.tensors.get('step')!.dtype).toBe('I32');
    expect(back.metadata).toEqual({ format: 'difflab' });
    // No temporary files are left behind.
    expect(readdirSync(dir)).toEqual(['weights.safetensors']);
  });

  it('rejects shape/data mismatches and corrupt files with the file name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-st-'));
    expect(() => writeSafetensors(join(dir, 'x.safetensors'), { a: { shape: [3], data: new Float32Array(2) } })).toThrow(
      "'a' has 2 values for shape [3]",
    );
    expect(readdirSync(dir)).toEqual([]);
    const bad = join(dir, 'bad.safetensors');
    const ref = Buffer.from(REFERENCE_HEX, 'hex');
    writeFileSync(bad, ref.subarray(0, ref.length - 4));
    expect(() => readSafetensors(bad)).toThrow(`${bad}: tensor`);
    writeFileSync(bad, Buffer.from('abc'));
    expect(() => readSafetensors(bad)).toThrow(`${bad}: not a safetensors file`);
  });

  it('atomic writes replace the old file whole', () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-atomic-'));
    const file = join(dir, 'a.json');
    writeFileAtomic(file, '{"v":1}');
    writeFileAtomic(file, '{"v":2}');
    expect(readFileSync(file, 'utf8')).toBe('{"v":2}');
    expect(readdirSync(dir)).toEqual(['a.json']);
  });
});
