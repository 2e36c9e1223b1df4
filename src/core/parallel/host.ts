import * as tf from '@tensorflow/tfjs';
import type { HostBatch, HostDType, HostTensor, NamedHostTensor } from './types.js';

/** Reads a tensor into host memory (a copy; the tensor is not disposed). */
export function toHost(t: tf.Tensor): HostTensor {
  const dtype = hostDType(t.dtype);
  const data = t.dataSync() as Float32Array | Int32Array;
  return { shape: [...t.shape], dtype, data: dtype === 'float32' ? Float32Array.from(data) : Int32Array.from(data) };
}

export function hostDType(d: tf.DataType): HostDType {
  if (d === 'float32' || d === 'int32') return d;
  if (d === 'bool') return 'int32';
  throw new Error(`tensors of dtype ${d} cannot be exchanged with trainers (use float32 or int32)`);
}

export function fromHost(h: HostTensor): tf.Tensor {
  return tf.tensor(h.data, [...h.shape], h.dtype);
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isTensor(v: HostTensor | tf.Tensor): v is tf.Tensor {
  return v instanceof tf.Tensor;
}

/** Normalizes a batch to host tensors and checks that every entry has the same row count. */
export function hostBatch(batch: HostBatch): { rows: number; entries: [string, HostTensor][] } {
  const entries: [string, HostTensor][] = [];
  let rows: number | undefined;
  let first = '';
  for (const [name, value] of Object.entries(batch)) {
    const h = isTensor(value) ? toHost(value) : value;
    if (h.shape.length === 0) throw new Error(`batch entry '${name}' is a scalar; every entry needs a batch dimension`);
    if (h.data.length !== sizeOf(h.shape)) {
      throw new Error(`batch entry '${name}' has ${h.data.length} values for shape [${h.shape.join(', ')}]`);
    }
    const r = h.shape[0] as number;
    if (rows === undefined) {
      rows = r;
      first = name;
    } else if (r !== rows) {
      throw new Error(`batch entries disagree on the batch size: '${first}' has ${rows} rows, '${name}' has ${r}`);
    }
    entries.push([name, h]);
  }
  if (rows === undefined) throw new Error('the batch has no entries');
  if (rows === 0) throw new Error('the batch has 0 rows');
  return { rows, entries };
}

/**
 * Rows per replica: contiguous shards, the first `rows % n` one row larger,
 * so the split (and therefore every result) depends only on rows and n.
 */
export function shardSizes(rows: number, n: number): number[] {
  const base = Math.floor(rows / n);
  const extra = rows % n;
  return Array.from({ length: n }, (_, k) => base + (k < extra ? 1 : 0));
}

/** Rows [offset, offset + count) of a host tensor (a copy, safe to transfer). */
export function sliceRows(h: HostTensor, offset: number, count: number): HostTensor {
  const rowSize = sizeOf(h.shape.slice(1));
  const data = h.data.slice(offset * rowSize, (offset + count) * rowSize);
  return { shape: [count, ...h.shape.slice(1)], dtype: h.dtype, data };
}

export function checkShapes(
  what: string,
  expected: readonly { readonly name: string; readonly shape: readonly number[] }[],
  got: readonly HostTensor[],
): void {
  if (got.length !== expected.length) {
    throw new Error(`${what}: expected ${expected.length} tensors, got ${got.length}`);
  }
  expected.forEach((v, i) => {
    const g = got[i] as HostTensor;
    if (g.shape.length !== v.shape.length || g.shape.some((d, j) => d !== v.shape[j])) {
      throw new Error(`${what}: tensor ${i} ('${v.name}') has shape [${g.shape.join(', ')}], expected [${v.shape.join(', ')}]`);
    }
    if (g.data.length !== sizeOf(g.shape)) {
      throw new Error(`${what}: tensor ${i} ('${v.name}') has ${g.data.length} values for its shape`);
    }
  });
}

export function named(name: string, h: HostTensor): NamedHostTensor {
  return { name, shape: h.shape, dtype: h.dtype, data: h.data };
}
