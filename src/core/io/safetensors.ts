import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';

/**
 * The safetensors format (https://github.com/huggingface/safetensors#format):
 * an 8-byte little-endian header length N, N bytes of JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
 * then the raw little-endian tensor bytes. Readable by PyTorch, JAX and
 * numpy through the `safetensors` package.
 */
export type SafetensorsDtype = 'F32' | 'I32' | 'F64' | 'U8';

export interface NamedArray {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array | Float64Array | Uint8Array;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, F64: 8, U8: 1 };

function dtypeOf(data: NamedArray['data']): SafetensorsDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Float64Array) return 'F64';
  return 'U8';
}

/** Serializes named arrays (and string metadata) to safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, { shape: readonly number[]; data: NamedArray['data'] }>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header['__metadata__'] = metadata;
  let offset = 0;
  const names = Object.keys(tensors).sort();
  for (const name of names) {
    const t = tensors[name]!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`safetensors: '${name}' has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const dtype = dtypeOf(t.data);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so tensor data starts 8-byte aligned (as the reference writer does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.byteLength));
  const parts: Uint8Array[] = [len, head];
  for (const name of names) {
    const d = tensors[name]!.data;
    parts.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return parts;
}

/** Parses safetensors bytes. `source` names the file in error messages. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new Error(`${source}: not a safetensors file (too short)`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.readBigUInt64LE(0));
  if (n > bytes.byteLength - 8) throw new Error(`${source}: truncated safetensors header`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(view.subarray(8, 8 + n).toString('utf8'));
  } catch {
    throw new Error(`${source}: safetensors header is not valid JSON`);
  }
  const base = 8 + n;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (!(e.dtype in BYTES)) throw new Error(`${source}: tensor '${name}' has unsupported dtype ${e.dtype}`);
    const dtype = e.dtype as SafetensorsDtype;
    const [begin, end] = e.data_offsets;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype] || base + end > bytes.byteLength) {
      throw new Error(`${source}: tensor '${name}' is truncated or its offsets do not match its shape`);
    }
    // Copy so the array is aligned whatever the header length.
    const raw = new Uint8Array(end - begin);
    raw.set(bytes.subarray(base + begin, base + end));
    const buf = raw.buffer;
    const data = dtype === 'F32' ? new Float32Array(buf) : dtype === 'I32' ? new Int32Array(buf) : dtype === 'F64' ? new Float64Array(buf) : new Uint8Array(buf);
    tensors.set(name, { dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

export function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: readonly number[]; data: NamedArray['data'] }>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function readSafetensors(path: string): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return decodeSafetensors(bytes, path);
}
