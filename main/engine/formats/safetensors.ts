/**
 * Safetensors reader/writer (https://github.com/huggingface/safetensors#format).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets:[b,e]},
 * "__metadata__"?: {str: str}}`, then the raw little-endian data; offsets are relative to the end of the header.
 *
 * The reader parses only the header and reads one tensor's bytes at a time (checkpoints are many GB; never
 * slurp). There is no maintained npm reader, and the format is small enough to own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { InputError } from '../errors';
import { assertFinite } from './finite';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
/** Dtypes `readF32` converts; the others are listed (and validated) but not readable as floats. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file (header already added), half-open. */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly entries: Map<string, SafetensorsEntry>;
  readonly metadata: Record<string, string>;
  /** Byte length of the 8-byte prefix + JSON header (data starts here). */
  readonly headerBytes: number;
  /** The raw JSON header bytes (e.g. to hash a checkpoint without reading its data). */
  readonly headerJson: string;
  /** The tensor converted to float32 (F32, BF16, F16), reading only its own bytes; NaN/Inf refused. */
  readF32(name: string): Float32Array;
  /** The tensor's raw little-endian bytes, exactly as stored. */
  readRaw(name: string): Buffer;
  /**
   * `length` raw bytes of a tensor starting `offset` bytes into its data, read into `dest` at `destOffset`
   * (e.g. embedding rows). Bounds-checked against the tensor.
   */
  readRawRange(name: string, offset: number, length: number, dest: Uint8Array, destOffset?: number): void;
  close(): void;
}

/** Headers bigger than this are not safetensors (the reference implementation caps at 100 MB too). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const entrySchema = z.object({
  dtype: z.enum(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
const metadataSchema = z.record(z.string(), z.string());

export function openSafetensors(file: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new InputError({ file, expected: 'a readable safetensors file', got: (err as NodeJS.ErrnoException).code ?? String(err) }, err);
  }
  try {
    return parse(file, fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function parse(file: string, fd: number): SafetensorsFile {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw new InputError({ file, expected: 'a safetensors file (8-byte header length first)', got: `${size} bytes` });
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER_BYTES || headerLen < 2) {
    throw new InputError({ file, expected: 'a safetensors JSON header length between 2 bytes and 100 MB', got: `${headerLen}` });
  }
  if (8 + headerLen > size) {
    throw new InputError({ file, expected: `a header of ${headerLen} bytes (file truncated?)`, got: `a file of ${size} bytes` });
  }
  const headerBuf = Buffer.alloc(headerLen);
  readFully(fd, headerBuf, 8);
  const headerJson = headerBuf.toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(headerJson);
  } catch (err) {
    throw new InputError({ file, expected: 'a JSON safetensors header', got: (err as Error).message }, err);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InputError({ file, expected: 'a JSON object as safetensors header', got: Array.isArray(raw) ? 'an array' : typeof raw });
  }
  const dataStart = 8 + headerLen;
  // JSON.parse keeps the last of two equal keys: a header naming a tensor twice is refused instead.
  const dup = firstDuplicateTopLevelKey(headerJson);
  if (dup !== undefined) throw new InputError({ file, tensor: dup, expected: 'each tensor listed once in the header', got: 'it listed twice' });
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      const m = metadataSchema.safeParse(value);
      if (!m.success) throw new InputError({ file, field: '__metadata__', expected: 'a map of string to string', got: JSON.stringify(value).slice(0, 120) });
      metadata = m.data;
      continue;
    }
    const e = entrySchema.safeParse(value);
    if (!e.success) {
      throw new InputError({ file, tensor: name, expected: '{dtype, shape, data_offsets} with a known dtype', got: JSON.stringify(value).slice(0, 120) });
    }
    const { dtype, shape, data_offsets: [b, en] } = e.data;
    const count = shape.reduce((a, d) => a * d, 1);
    const want = count * DTYPE_SIZE[dtype];
    if (en < b || en - b !== want) {
      throw new InputError({ file, tensor: name, expected: `${want} bytes for ${dtype}[${shape.join(',')}]`, got: `data_offsets [${b}, ${en}] (${en - b} bytes)` });
    }
    if (dataStart + en > size) {
      throw new InputError({ file, tensor: name, expected: `data up to byte ${dataStart + en} (file truncated?)`, got: `a file of ${size} bytes` });
    }
    entries.set(name, { dtype, shape, begin: dataStart + b, end: dataStart + en });
  }
  // Tensors must not share bytes (aliased data_offsets would make two weights one, or a tiny file many tensors).
  const spans = [...entries].filter(([, e]) => e.end > e.begin).sort((x, y) => x[1].begin - y[1].begin);
  for (let i = 1; i < spans.length; i++) {
    const [prevName, prev] = spans[i - 1];
    const [name, e] = spans[i];
    if (e.begin < prev.end) {
      throw new InputError({
        file,
        tensor: name,
        field: 'data_offsets',
        expected: `bytes of its own (tensor "${prevName}" ends at data offset ${prev.end - dataStart})`,
        got: `data_offsets [${e.begin - dataStart}, ${e.end - dataStart}], overlapping it`,
      });
    }
  }
  let open = true;
  const entryOf = (name: string): SafetensorsEntry => {
    if (!open) throw new Error(`safetensors file ${file} is closed`);
    const e = entries.get(name);
    if (!e) throw new InputError({ file, tensor: name, expected: 'the tensor to be present', got: `${entries.size} other tensors` });
    return e;
  };
  const readRaw = (name: string): Buffer => {
    const e = entryOf(name);
    const buf = Buffer.alloc(e.end - e.begin);
    const n = readFully(fd, buf, e.begin);
    if (n !== buf.length) throw new InputError({ file, tensor: name, expected: `${buf.length} bytes of data (file truncated?)`, got: `${n} bytes` });
    return buf;
  };
  const readRawRange = (name: string, offset: number, length: number, dest: Uint8Array, destOffset = 0): void => {
    const e = entryOf(name);
    if (offset < 0 || length < 0 || e.begin + offset + length > e.end) {
      throw new RangeError(`${file}: bytes [${offset}, ${offset + length}) are outside tensor ${name} (${e.end - e.begin} bytes)`);
    }
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, dest, destOffset + done, length - done, e.begin + offset + done);
      if (n === 0) throw new InputError({ file, tensor: name, expected: `${length} bytes at offset ${offset} (file truncated?)`, got: `${done} bytes` });
      done += n;
    }
  };
  return {
    path: file,
    entries,
    readRawRange,
    metadata,
    headerBytes: dataStart,
    headerJson,
    readRaw,
    readF32(name: string): Float32Array {
      const e = entryOf(name);
      if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') {
        throw new InputError({ file, tensor: name, expected: 'dtype F32, BF16 or F16', got: e.dtype });
      }
      const data = toF32(readRaw(name), e.dtype);
      assertFinite(data, { file, tensor: name }, (i) => `index ${i} of shape [${e.shape.join(', ')}]`);
      return data;
    },
    close() {
      if (open) {
        open = false;
        fs.closeSync(fd);
      }
    },
  };
}

/**
 * The first key that appears twice at the top level of a JSON object text, or undefined. A linear scan that
 * tracks strings and nesting depth (the header has already parsed as JSON, so it is well formed).
 */
export function firstDuplicateTopLevelKey(json: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const ch = json.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      const start = i;
      for (i++; i < json.length; i++) {
        const c = json.charCodeAt(i);
        if (c === 0x5c /* \ */) i++;
        else if (c === 0x22) break;
      }
      if (depth === 1) {
        let j = i + 1;
        while (j < json.length && /\s/.test(json[j])) j++;
        if (json[j] === ':') {
          const key = JSON.parse(json.slice(start, i + 1)) as string;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
    } else if (ch === 0x7b || ch === 0x5b) depth++;
    else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return undefined;
}

/** pread until the buffer is full or EOF (one readSync may return fewer bytes than asked for large reads). */
function readFully(fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, Math.min(buf.length - done, 1 << 30), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Converts little-endian raw bytes of a float dtype to float32. */
export function toF32(raw: Uint8Array, dtype: FloatDtype): Float32Array {
  if (dtype === 'F32') {
    // Copy into a fresh aligned buffer: the source may sit at an odd offset inside a pooled Buffer.
    const out = new Float32Array(raw.length / 4);
    new Uint8Array(out.buffer).set(raw);
    return out;
  }
  const n = raw.length / 2;
  const u16 = new Uint16Array(n);
  new Uint8Array(u16.buffer).set(raw);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(n);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
    return new Float32Array(u32.buffer);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16ToF32(u16[i]);
  return out;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal / zero
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → IEEE half bits, round to nearest even, overflow → ±Inf, subnormals kept. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // too small even for a subnormal
    mant |= 0x800000;
    const shift = 14 - e; // 13 + (1 - e)
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m; // a carry into the exponent field is the correct smallest normal
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export interface TensorToWrite {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

/** Encodes a float32 array in a float dtype's little-endian bytes. */
export function encodeFloat(data: Float32Array, dtype: FloatDtype): Buffer {
  if (dtype === 'F32') return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const u16 = new Uint16Array(data.length);
  const conv = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < data.length; i++) u16[i] = conv(data[i]);
  return Buffer.from(u16.buffer);
}

/**
 * Writes a safetensors file atomically (temp file in the same folder, then rename), so a crash never leaves
 * a half-written file under the final name. Tensors are written in the given order, 8-byte aligned header.
 */
export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new InputError({ tensor: name, expected: 'a tensor name other than __metadata__' });
    const count = t.shape.reduce((a, d) => a * d, 1);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0) || count !== t.data.length) {
      throw new InputError({ tensor: name, file, expected: `${count} values for shape [${t.shape.join(',')}]`, got: `${t.data.length}` });
    }
    if (!(t.dtype in DTYPE_SIZE) || !['F32', 'BF16', 'F16'].includes(t.dtype)) {
      throw new InputError({ tensor: name, file, expected: 'dtype F32, BF16 or F16', got: String(t.dtype) });
    }
    const bytes = count * DTYPE_SIZE[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so data starts 8-byte aligned (what the reference writer does; lets readers mmap).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, lenBuf);
    fs.writeSync(fd, headerBuf);
    for (const t of Object.values(tensors)) writeAll(fd, encodeFloat(t.data, t.dtype));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, Math.min(buf.length - done, 1 << 30));
}
