/**
 * NumPy `.npz` (zip of `.npy`) reader and writer.
 *
 * Gemma Scope ships SAEs as `params.npz` up to ~3.8 GB, so the reader parses the zip central directory itself
 * (zip64 included) and reads one entry at a time straight into its typed array: the file is never slurped.
 * Entries may be stored or deflated (fflate's streaming inflater, fed in chunks). CRC-32 is verified.
 * The writer emits `.npy` v1.0 (64-byte aligned header, C order, little-endian) and writes atomically
 * (temp file + rename), switching to zip64 records only when a size or offset needs it.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { deflateSync } from 'fflate';

import { InputError } from '../errors';

export type NpyDtype = 'f2' | 'f4' | 'f8' | 'i1' | 'i2' | 'i4' | 'i8' | 'u1' | 'u2' | 'u4' | 'u8' | 'b1';
export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** Row-major (C order) values. `f2` is widened to Float32Array; `b1` is Uint8Array of 0/1. */
  data: NpyData;
}

export interface NpzEntryInfo {
  /** Array name (the zip entry name without `.npy`). */
  name: string;
  /** Zip entry name as stored. */
  entryName: string;
  method: 'stored' | 'deflated';
  compressedSize: number;
  uncompressedSize: number;
}

/**
 * What the caller knows about an array before reading it. Checked against the entry's `.npy` header, which is
 * inflated first, so an array that is not what the caller can use is refused before its data is allocated.
 */
export interface NpzReadOptions {
  /** The shape the caller needs, and why (for the message), e.g. `{shape: [2304, 16384], why: 'from W_enc'}`. */
  expect?: { shape: number[]; why: string };
  /** The most data bytes (after the header) the caller accepts. */
  maxBytes?: number;
}

export interface NpzFile {
  readonly path: string;
  readonly entries: Map<string, NpzEntryInfo>;
  /** Reads and decodes one array; `name` with or without `.npy`. */
  read(name: string, opts?: NpzReadOptions): Promise<NpyArray>;
  /** Reads one array as float32 (f2/f4/f8 only); throws an InputError naming the tensor for other dtypes. */
  readF32(name: string, opts?: NpzReadOptions): Promise<{ shape: number[]; data: Float32Array }>;
  close(): Promise<void>;
}

const DTYPE_BYTES: Record<NpyDtype, number> = {
  f2: 2, f4: 4, f8: 8, i1: 1, i2: 2, i4: 4, i8: 8, u1: 1, u2: 2, u4: 4, u8: 8, b1: 1,
};

// ---------------------------------------------------------------------------------------------------------------
// .npy header
// ---------------------------------------------------------------------------------------------------------------

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the data after the header. */
  dataOffset: number;
  /** Column-major data (numpy writes it for transposed arrays); decodeNpy converts it to C order. */
  fortranOrder: boolean;
}

/**
 * Parses the `.npy` preamble + header dict (versions 1.0, 2.0 and 3.0). Only little-endian (or byte-order-free)
 * dtypes and C order are accepted: that is what numpy writes on every platform SparseRM runs on.
 */
export function parseNpyHeader(bytes: Uint8Array, where: { file: string; tensor: string }): NpyHeader {
  const bad = (expected: string, got?: string) => new InputError({ ...where, expected, got });
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw bad('a .npy array (magic \\x93NUMPY)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad('a complete .npy header', 'truncated data');
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else {
    throw bad('.npy format version 1, 2 or 3', `version ${major}`);
  }
  if (bytes.length < start + headerLen) throw bad('a complete .npy header', 'truncated data');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad("a .npy header dict with 'descr', 'fortran_order' and 'shape'", JSON.stringify(text.trim()));
  }
  const m = /^([<>|=])([fiub])(\d+)$/.exec(descr);
  if (!m) throw bad('a numeric dtype such as <f4', descr);
  const [, order, kind, size] = m;
  const dtype = `${kind}${size}` as NpyDtype;
  if (!(dtype in DTYPE_BYTES)) throw bad('a numeric dtype such as <f4', descr);
  if (order === '>' && DTYPE_BYTES[dtype] > 1) throw bad('little-endian data (<)', `big-endian ${descr}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw bad('non-negative integer dimensions', `shape (${shapeText})`);
      return n;
    });
  return { dtype, shape, dataOffset: start + headerLen, fortranOrder: fortran === 'True' };
}

/**
 * How many leading bytes hold the whole `.npy` preamble + header, or undefined while fewer than 12 bytes are
 * known. Lets a streaming reader parse the header before it allocates the data.
 */
export function npyHeaderEnd(bytes: Uint8Array): number | undefined {
  if (bytes.length < 12) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return bytes[6] === 1 ? 10 + dv.getUint16(8, true) : 12 + dv.getUint32(8, true);
}

/** `.npy` v1.0 header for a C-order little-endian array, padded so the data starts on a 64-byte boundary. */
export function npyHeaderBytes(dtype: NpyDtype, shape: number[]): Uint8Array {
  const order = DTYPE_BYTES[dtype] === 1 ? '|' : '<';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${order}${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (dict.length > 0xffff) throw new Error('npy header too long for format 1.0');
  const out = new Uint8Array(10 + dict.length);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return 'f4';
  if (data instanceof Float64Array) return 'f8';
  if (data instanceof Int8Array) return 'i1';
  if (data instanceof Int16Array) return 'i2';
  if (data instanceof Int32Array) return 'i4';
  if (data instanceof BigInt64Array) return 'i8';
  if (data instanceof Uint8Array) return 'u1';
  if (data instanceof Uint16Array) return 'u2';
  if (data instanceof Uint32Array) return 'u4';
  if (data instanceof BigUint64Array) return 'u8';
  throw new TypeError('unsupported typed array for .npy');
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Wraps raw little-endian bytes (already sized right) as the typed array for `dtype`, copying only to align. */
function typedView(dtype: NpyDtype, bytes: Uint8Array): NpyData {
  const el = DTYPE_BYTES[dtype];
  const aligned = bytes.byteOffset % el === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset, byteLength } = aligned;
  const n = byteLength / el;
  switch (dtype) {
    case 'f4': return new Float32Array(buffer, byteOffset, n);
    case 'f8': return new Float64Array(buffer, byteOffset, n);
    case 'i1': return new Int8Array(buffer, byteOffset, n);
    case 'i2': return new Int16Array(buffer, byteOffset, n);
    case 'i4': return new Int32Array(buffer, byteOffset, n);
    case 'i8': return new BigInt64Array(buffer, byteOffset, n);
    case 'u1':
    case 'b1': return new Uint8Array(buffer, byteOffset, n);
    case 'u2': return new Uint16Array(buffer, byteOffset, n);
    case 'u4': return new Uint32Array(buffer, byteOffset, n);
    case 'u8': return new BigUint64Array(buffer, byteOffset, n);
    case 'f2': {
      const h = new Uint16Array(buffer, byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
  }
}

/** Decodes a whole `.npy` file image. */
export function decodeNpy(bytes: Uint8Array, where: { file: string; tensor: string }): NpyArray {
  const header = parseNpyHeader(bytes, where);
  const count = header.shape.reduce((a, b) => a * b, 1);
  const need = count * DTYPE_BYTES[header.dtype];
  const have = bytes.length - header.dataOffset;
  if (have !== need) {
    throw new InputError({
      ...where,
      expected: `${need} data bytes for ${header.dtype} shape [${header.shape.join(', ')}]`,
      got: have < need ? `${have} (truncated)` : `${have} (trailing bytes)`,
    });
  }
  const data = typedView(header.dtype, bytes.subarray(header.dataOffset, header.dataOffset + need));
  return {
    dtype: header.dtype,
    shape: header.shape,
    data: header.fortranOrder && header.shape.length > 1 ? fortranToC(data, header.shape) : data,
  };
}

/**
 * Reorders column-major values to row-major. 2-D (the SAE case: Gemma Scope files can hold transposed W_enc /
 * W_dec) is a blocked transpose for cache locality; higher ranks walk the index odometer.
 */
export function fortranToC<T extends NpyData>(src: T, shape: number[]): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const s = src as unknown as ArrayLike<number> & { [i: number]: number };
  const o = out as unknown as { [i: number]: number };
  if (shape.length === 2) {
    const [rows, cols] = shape;
    const B = 64;
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(rows, r0 + B);
      for (let c0 = 0; c0 < cols; c0 += B) {
        const c1 = Math.min(cols, c0 + B);
        for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) o[r * cols + c] = s[c * rows + r];
      }
    }
    return out;
  }
  const n = shape.length;
  const fStride = new Array<number>(n);
  fStride[0] = 1;
  for (let k = 1; k < n; k++) fStride[k] = fStride[k - 1] * shape[k - 1];
  const idx = new Array<number>(n).fill(0);
  for (let i = 0; i < src.length; i++) {
    let f = 0;
    for (let k = 0; k < n; k++) f += idx[k] * fStride[k];
    o[i] = s[f];
    for (let k = n - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// zip reader
// ---------------------------------------------------------------------------------------------------------------

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
/** Compressed bytes handed to the inflater at a time (≤ 64 MiB of output even at deflate's maximum ratio). */
const FEED_CHUNK = 64 << 10;

interface ZipEntry extends NpzEntryInfo {
  crc: number;
  localHeaderOffset: number;
  nameLen: number;
}

async function readAt(fh: fs.promises.FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === len ? buf : buf.subarray(0, done);
}

/** A zip64 field as a safe integer; undefined when it is too large to be a real size or offset. */
function u64(buf: Buffer, off: number): number | undefined {
  if (off + 8 > buf.length) return undefined;
  const v = buf.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
}

/** Deflate cannot expand data more than 1032:1 (a 258-byte match costs at least 2 bits). */
const MAX_DEFLATE_RATIO = 1032;
/** `.npy` headers are a few hundred bytes; anything past this before the data starts is not an array. */
const MAX_NPY_HEADER = 1 << 20;

async function readCentralDirectory(fh: fs.promises.FileHandle, file: string): Promise<ZipEntry[]> {
  const size = (await fh.stat()).size;
  const notZip = (got: string) => new InputError({ file, expected: 'an .npz file (a zip archive of .npy arrays)', got });
  if (size < 22) throw notZip(`${size} bytes`);
  // The end-of-central-directory record sits in the last 22 + (≤ 65535 comment) bytes.
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = await readAt(fh, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const head = await readAt(fh, 0, 4);
    const looksZip = head.length === 4 && head.readUInt32LE(0) === SIG_LOCAL;
    throw notZip(looksZip ? 'a zip without its central directory (truncated file?)' : 'no zip signature');
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const eocdAbs = size - tailLen + eocd;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: the locator (20 bytes) sits just before the classic EOCD and points at the zip64 EOCD record.
    const zip64 = (got: string) => new InputError({ file, field: 'zip64 end of central directory', expected: 'a zip64 record inside the file with sizes and offsets that fit it', got });
    if (eocdAbs < 20) throw notZip('zip64 fields without a zip64 locator');
    const loc = await readAt(fh, eocdAbs - 20, 20);
    if (loc.length !== 20 || loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) throw notZip('zip64 fields without a zip64 locator');
    const recOffset = u64(loc, 8);
    if (recOffset === undefined || recOffset + 56 > size) throw zip64(`a record offset past the end of the file`);
    const rec = await readAt(fh, recOffset, 56);
    if (rec.length !== 56 || rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw notZip('a broken zip64 end record');
    const c = u64(rec, 32);
    const s = u64(rec, 40);
    const o = u64(rec, 48);
    if (c === undefined || s === undefined || o === undefined) throw zip64('a 64-bit count, size or offset larger than any file');
    count = c;
    cdSize = s;
    cdOffset = o;
  }
  if (cdOffset + cdSize > size) throw notZip(`a central directory past the end of the file (truncated file?)`);
  // Each central record takes at least 46 bytes: a count the directory cannot hold is a lie.
  if (count * 46 > cdSize) throw notZip(`${count} entries declared in a ${cdSize}-byte central directory`);
  const cd = await readAt(fh, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  const seen = new Map<string, string>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw notZip(`a broken central directory entry #${i}`);
    const flags = cd.readUInt16LE(p + 8);
    const methodCode = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw notZip(`a broken central directory entry #${i} (runs past the directory)`);
    const entryName = cd.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLen);
    const bad = (field: string, expected: string, got: string) => new InputError({ file, tensor: entryName, field, expected, got });
    // zip64 extended information: only the fields saturated in the fixed record are present, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (e + 4 + len > extraEnd) throw bad('extra field', 'extra fields inside the central directory record', `a field of ${len} bytes running past it`);
      if (id === 0x0001) {
        const field = cd.subarray(e + 4, e + 4 + len);
        let q = 0;
        const next = (what: string): number => {
          const v = u64(field, q);
          if (v === undefined) {
            throw bad(`zip64 ${what}`, `a 64-bit ${what} that fits the file`, q + 8 > field.length ? `a zip64 field of ${len} bytes without it` : `${field.readBigUInt64LE(q)}`);
          }
          q += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = next('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('local header offset');
      }
      e += 4 + len;
    }
    p = extraEnd + commentLen;
    if (entryName.endsWith('/')) continue;
    if (flags & 0x1) throw new InputError({ file, tensor: entryName, expected: 'an unencrypted zip entry', got: 'encrypted' });
    if (methodCode !== 0 && methodCode !== 8) {
      throw new InputError({ file, tensor: entryName, expected: 'zip method stored (0) or deflated (8)', got: `method ${methodCode}` });
    }
    if (localHeaderOffset + 30 + nameLen + compressedSize > size) {
      throw bad('compressed size', `entry data inside the file (${size} bytes)`, `${compressedSize} bytes at offset ${localHeaderOffset} (truncated file?)`);
    }
    if (methodCode === 0 && uncompressedSize !== compressedSize) {
      throw bad('uncompressed size', `the compressed size (${compressedSize}) for a stored entry`, String(uncompressedSize));
    }
    if (methodCode === 8 && uncompressedSize > compressedSize * MAX_DEFLATE_RATIO + 1024) {
      throw bad('uncompressed size', `at most ${MAX_DEFLATE_RATIO}× the compressed size (${compressedSize}) for deflate`, String(uncompressedSize));
    }
    const name = entryName.replace(/\.npy$/, '');
    const dup = seen.get(name);
    if (dup !== undefined) {
      throw new InputError({ file, tensor: name, expected: 'each array stored once in the archive', got: `two entries "${dup}" and "${entryName}"` });
    }
    seen.set(name, entryName);
    entries.push({
      name,
      entryName,
      method: methodCode === 0 ? 'stored' : 'deflated',
      compressedSize,
      uncompressedSize,
      crc,
      localHeaderOffset,
      nameLen,
    });
  }
  // Entries must not share bytes: overlapping entries let a small file expand to many arrays of the same data.
  const byOffset = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const end = prev.localHeaderOffset + 30 + prev.nameLen + prev.compressedSize;
    if (byOffset[i].localHeaderOffset < end) {
      throw new InputError({
        file,
        tensor: byOffset[i].name,
        expected: `entries that do not overlap (the previous entry "${prev.entryName}" ends at byte ${end})`,
        got: `a local header at byte ${byOffset[i].localHeaderOffset}`,
      });
    }
  }
  return entries;
}

class NpzReader implements NpzFile {
  constructor(
    readonly path: string,
    private readonly fh: fs.promises.FileHandle,
    private readonly fileSize: number,
    private readonly zipEntries: Map<string, ZipEntry>,
    readonly entries: Map<string, NpzEntryInfo>,
  ) {}

  private entry(name: string): ZipEntry {
    const key = name.replace(/\.npy$/, '');
    const e = this.zipEntries.get(key);
    if (!e) {
      throw new InputError({
        file: this.path,
        tensor: key,
        expected: `an entry "${key}.npy" in the archive`,
        got: `entries ${[...this.zipEntries.keys()].join(', ') || '(none)'}`,
      });
    }
    return e;
  }

  /**
   * A deflated entry's uncompressed bytes as chunks, through zlib's streaming inflater (backpressured, so nothing is inflated ahead of the consumer). Breaking out of the loop
   * stops the inflater: a consumer that stops at the declared size never inflates a bomb.
   */
  private async *chunks(e: ZipEntry, dataStart: number): AsyncGenerator<Buffer> {
    const inflater = zlib.createInflateRaw({ chunkSize: 256 << 10 });
    let feedError: unknown;
    const feed = async () => {
      try {
        for (let pos = 0; pos < e.compressedSize && !inflater.destroyed; pos += FEED_CHUNK) {
          const chunk = await readAt(this.fh, dataStart + pos, Math.min(FEED_CHUNK, e.compressedSize - pos));
          if (inflater.destroyed) return;
          if (!inflater.write(chunk)) {
            await new Promise<void>((r) => {
              const done = () => {
                inflater.off('drain', done);
                inflater.off('close', done);
                r();
              };
              inflater.on('drain', done);
              inflater.on('close', done);
            });
          }
        }
        if (!inflater.destroyed) inflater.end();
      } catch (err) {
        feedError = err;
        inflater.destroy(err as Error);
      }
    };
    void feed();
    try {
      for await (const out of inflater) yield out as Buffer;
    } catch (err) {
      throw new InputError({ file: this.path, tensor: e.name, expected: 'valid deflate data', got: ((feedError ?? err) as Error).message }, err);
    } finally {
      inflater.destroy();
    }
  }

  /**
   * The uncompressed entry bytes, CRC-checked. The `.npy` header is parsed from the first inflated bytes, so the
   * array is allocated once at the size its header and the zip directory agree on (and the caller accepts), and
   * inflating stops at the first byte past it.
   */
  private async entryBytes(e: ZipEntry, opts: NpzReadOptions = {}): Promise<Uint8Array> {
    const where = { file: this.path, tensor: e.name };
    const local = await readAt(this.fh, e.localHeaderOffset, 30);
    if (local.length !== 30 || local.readUInt32LE(0) !== SIG_LOCAL) {
      throw new InputError({ ...where, expected: 'a zip local header at the offset the central directory names', got: 'something else' });
    }
    const dataStart = e.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataStart + e.compressedSize > this.fileSize) {
      throw new InputError({
        ...where,
        expected: `${e.compressedSize} bytes of entry data`,
        got: `${Math.max(0, this.fileSize - dataStart)} (truncated file)`,
      });
    }
    if (e.method === 'stored') return this.storedBytes(e, dataStart, opts);
    let out: Uint8Array | null = null;
    let written = 0;
    let crc = 0;
    let head: Buffer = Buffer.alloc(0);
    for await (const chunk of this.chunks(e, dataStart)) {
      crc = zlib.crc32(chunk, crc);
      if (out) {
        if (written + chunk.length > out.length) throw this.tooBig(e, out.length);
        out.set(chunk, written);
        written += chunk.length;
        continue;
      }
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const end = npyHeaderEnd(head);
      if (end === undefined || head.length < end) {
        if (head.length > MAX_NPY_HEADER) throw new InputError({ ...where, expected: `a .npy header under ${MAX_NPY_HEADER} bytes`, got: `${end ?? 'no'} header length` });
        continue;
      }
      out = this.allocate(e, parseNpyHeader(head, where), opts);
      if (head.length > out.length) throw this.tooBig(e, out.length);
      out.set(head, 0);
      written = head.length;
      head = Buffer.alloc(0);
    }
    if (!out) {
      if (head.length) parseNpyHeader(head, where); // throws: names what is missing
      throw new InputError({ ...where, expected: 'a .npy array (magic \\x93NUMPY)', got: 'an empty entry' });
    }
    if (written !== out.length) {
      throw new InputError({ ...where, expected: `${out.length} inflated bytes`, got: `${written} (corrupt or truncated entry)` });
    }
    if (crc >>> 0 !== e.crc) {
      throw new InputError({ ...where, expected: `CRC-32 ${e.crc.toString(16)}`, got: `${(crc >>> 0).toString(16)} (corrupt entry)` });
    }
    return out;
  }

  /** A stored entry: header first (to size and check it), then the data straight into the array, no copies. */
  private async storedBytes(e: ZipEntry, dataStart: number, opts: NpzReadOptions): Promise<Uint8Array> {
    const where = { file: this.path, tensor: e.name };
    let head = await readAt(this.fh, dataStart, Math.min(e.compressedSize, 4096));
    const end = npyHeaderEnd(head);
    if (end !== undefined && end > head.length && end <= Math.min(e.compressedSize, MAX_NPY_HEADER)) head = await readAt(this.fh, dataStart, end);
    if (head.length === 0) throw new InputError({ ...where, expected: 'a .npy array (magic \\x93NUMPY)', got: 'an empty entry' });
    const out = this.allocate(e, parseNpyHeader(head, where), opts);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await this.fh.read(out, done, Math.min(out.length - done, 1 << 30), dataStart + done);
      if (bytesRead === 0) throw new InputError({ ...where, expected: `${out.length} bytes of entry data`, got: `${done} (truncated file)` });
      done += bytesRead;
    }
    const crc = out.length ? zlib.crc32(out) : 0;
    if (crc >>> 0 !== e.crc) {
      throw new InputError({ ...where, expected: `CRC-32 ${e.crc.toString(16)}`, got: `${(crc >>> 0).toString(16)} (corrupt entry)` });
    }
    return out;
  }

  private tooBig(e: ZipEntry, size: number): InputError {
    return new InputError({ file: this.path, tensor: e.name, expected: `${size} uncompressed bytes (the size the zip directory declares)`, got: 'more data (corrupt entry or a decompression bomb); stopped there' });
  }

  /** Checks the header against the zip directory and the caller's expectations, then allocates the entry once. */
  private allocate(e: ZipEntry, header: NpyHeader, opts: NpzReadOptions): Uint8Array {
    const where = { file: this.path, tensor: e.name };
    const dataBytes = header.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[header.dtype];
    if (opts.expect) {
      const want = opts.expect.shape;
      if (header.shape.length !== want.length || header.shape.some((d, i) => d !== want[i])) {
        throw new InputError({ ...where, expected: `shape [${want.join(', ')}] (${opts.expect.why})`, got: `[${header.shape.join(', ')}]` });
      }
    }
    if (opts.maxBytes !== undefined && dataBytes > opts.maxBytes) {
      throw new InputError({ ...where, expected: `at most ${opts.maxBytes} bytes of data`, got: `${header.dtype} shape [${header.shape.join(', ')}] (${dataBytes} bytes)` });
    }
    const total = header.dataOffset + dataBytes;
    if (total !== e.uncompressedSize) {
      throw new InputError({
        ...where,
        field: 'uncompressed size',
        expected: `${total} bytes (the .npy header says ${header.dtype} shape [${header.shape.join(', ')}])`,
        got: `${e.uncompressedSize} declared in the zip directory`,
      });
    }
    try {
      return new Uint8Array(total);
    } catch (err) {
      throw new InputError({ ...where, expected: `an array that fits in memory`, got: `${total} bytes` }, err);
    }
  }

  async read(name: string, opts?: NpzReadOptions): Promise<NpyArray> {
    const e = this.entry(name);
    return decodeNpy(await this.entryBytes(e, opts), { file: this.path, tensor: e.name });
  }

  async readF32(name: string, opts?: NpzReadOptions): Promise<{ shape: number[]; data: Float32Array }> {
    const arr = await this.read(name, opts);
    if (arr.data instanceof Float32Array) return { shape: arr.shape, data: arr.data };
    if (arr.dtype === 'f8') return { shape: arr.shape, data: Float32Array.from(arr.data as Float64Array) };
    throw new InputError({ file: this.path, tensor: name.replace(/\.npy$/, ''), expected: 'a floating-point array (<f4, <f8 or <f2)', got: arr.dtype });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Opens an `.npz` and reads its directory only; arrays are read one at a time on demand. */
export async function openNpz(file: string): Promise<NpzFile> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (err) {
    throw new InputError({ file, expected: 'a readable .npz file', got: (err as NodeJS.ErrnoException).code ?? String(err) }, err);
  }
  try {
    const size = (await fh.stat()).size;
    const list = await readCentralDirectory(fh, file);
    const zipEntries = new Map(list.map((e) => [e.name, e]));
    const entries = new Map<string, NpzEntryInfo>(
      list.map((e) => [e.name, { name: e.name, entryName: e.entryName, method: e.method, compressedSize: e.compressedSize, uncompressedSize: e.uncompressedSize }]),
    );
    return new NpzReader(file, fh, size, zipEntries, entries);
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Reads every array of an `.npz` (fine for small files; prefer `openNpz` + `read(name)` for big SAEs). */
export async function readNpz(file: string): Promise<Map<string, NpyArray>> {
  const npz = await openNpz(file);
  try {
    const out = new Map<string, NpyArray>();
    for (const name of npz.entries.keys()) out.set(name, await npz.read(name));
    return out;
  } finally {
    await npz.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// zip writer
// ---------------------------------------------------------------------------------------------------------------

export interface NpzWriteArray {
  shape: number[];
  data: NpyData;
}

export interface WriteNpzOptions {
  /** Deflate each entry (numpy.savez_compressed); default false (numpy.savez). */
  compress?: boolean;
  /** Always write zip64 records (tests use it to exercise the > 4 GB path on small files). */
  forceZip64?: boolean;
}

// MS-DOS date/time for 1980-01-01 00:00 keeps output byte-identical across runs (content-addressed caches).
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** Writes an `.npz` atomically: a temp file beside the target, fsync, then rename. */
export async function writeNpz(file: string, arrays: Record<string, NpzWriteArray>, opts: WriteNpzOptions = {}): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const fh = await fs.promises.open(tmp, 'w');
  const central: Buffer[] = [];
  let offset = 0;
  const write = async (b: Uint8Array) => {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await fh.write(b, done, b.length - done, offset + done);
      done += bytesWritten;
    }
    offset += b.length;
  };
  try {
    for (const [name, arr] of Object.entries(arrays)) {
      const count = arr.shape.reduce((a, b) => a * b, 1);
      if (count !== arr.data.length) {
        throw new TypeError(`writeNpz: array "${name}" has ${arr.data.length} values but shape [${arr.shape.join(', ')}]`);
      }
      const header = npyHeaderBytes(dtypeOf(arr.data), arr.shape);
      const raw = new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength);
      const usize = header.length + raw.length;
      let crc = zlib.crc32(header);
      // Node's crc32 returns 0 for a zero-length view instead of passing the running value through.
      if (raw.length > 0) crc = zlib.crc32(raw, crc);
      let payload: Uint8Array[];
      if (opts.compress) {
        const whole = new Uint8Array(usize);
        whole.set(header, 0);
        whole.set(raw, header.length);
        payload = [deflateSync(whole, { level: 6 })];
      } else {
        payload = [header, raw];
      }
      const csize = payload.reduce((a, b) => a + b.length, 0);
      const entryName = Buffer.from(`${name}.npy`, 'utf8');
      const localOffset = offset;
      const z64 = !!opts.forceZip64 || usize >= 0xffffffff || csize >= 0xffffffff || localOffset >= 0xffffffff;
      const method = opts.compress ? 8 : 0;

      // Local header: zip64 sizes go in its extra field.
      const localExtra = z64 ? Buffer.alloc(20) : Buffer.alloc(0);
      if (z64) {
        localExtra.writeUInt16LE(0x0001, 0);
        localExtra.writeUInt16LE(16, 2);
        localExtra.writeBigUInt64LE(BigInt(usize), 4);
        localExtra.writeBigUInt64LE(BigInt(csize), 12);
      }
      const local = Buffer.alloc(30);
      local.writeUInt32LE(SIG_LOCAL, 0);
      local.writeUInt16LE(z64 ? 45 : 20, 4);
      local.writeUInt16LE(0x800, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt16LE(DOS_TIME, 10);
      local.writeUInt16LE(DOS_DATE, 12);
      local.writeUInt32LE(crc >>> 0, 14);
      local.writeUInt32LE(z64 ? 0xffffffff : csize, 18);
      local.writeUInt32LE(z64 ? 0xffffffff : usize, 22);
      local.writeUInt16LE(entryName.length, 26);
      local.writeUInt16LE(localExtra.length, 28);
      await write(local);
      await write(entryName);
      await write(localExtra);
      for (const part of payload) await write(part);

      const cdExtra = z64 ? Buffer.alloc(28) : Buffer.alloc(0);
      if (z64) {
        cdExtra.writeUInt16LE(0x0001, 0);
        cdExtra.writeUInt16LE(24, 2);
        cdExtra.writeBigUInt64LE(BigInt(usize), 4);
        cdExtra.writeBigUInt64LE(BigInt(csize), 12);
        cdExtra.writeBigUInt64LE(BigInt(localOffset), 20);
      }
      const cd = Buffer.alloc(46);
      cd.writeUInt32LE(SIG_CENTRAL, 0);
      cd.writeUInt16LE((3 << 8) | (z64 ? 45 : 20), 4);
      cd.writeUInt16LE(z64 ? 45 : 20, 6);
      cd.writeUInt16LE(0x800, 8);
      cd.writeUInt16LE(method, 10);
      cd.writeUInt16LE(DOS_TIME, 12);
      cd.writeUInt16LE(DOS_DATE, 14);
      cd.writeUInt32LE(crc >>> 0, 16);
      cd.writeUInt32LE(z64 ? 0xffffffff : csize, 20);
      cd.writeUInt32LE(z64 ? 0xffffffff : usize, 24);
      cd.writeUInt16LE(entryName.length, 28);
      cd.writeUInt16LE(cdExtra.length, 30);
      cd.writeUInt32LE((0o100644 << 16) >>> 0, 38);
      cd.writeUInt32LE(z64 ? 0xffffffff : localOffset, 42);
      central.push(cd, entryName, cdExtra);
    }
    const cdOffset = offset;
    for (const part of central) await write(part);
    const cdSize = offset - cdOffset;
    const n = Object.keys(arrays).length;
    const z64End = !!opts.forceZip64 || n >= 0xffff || cdOffset >= 0xffffffff || cdSize >= 0xffffffff;
    if (z64End) {
      const rec = Buffer.alloc(56);
      const recOffset = offset;
      rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
      rec.writeBigUInt64LE(44n, 4);
      rec.writeUInt16LE(45, 12);
      rec.writeUInt16LE(45, 14);
      rec.writeBigUInt64LE(BigInt(n), 24);
      rec.writeBigUInt64LE(BigInt(n), 32);
      rec.writeBigUInt64LE(BigInt(cdSize), 40);
      rec.writeBigUInt64LE(BigInt(cdOffset), 48);
      await write(rec);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
      loc.writeBigUInt64LE(BigInt(recOffset), 8);
      loc.writeUInt32LE(1, 16);
      await write(loc);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(SIG_EOCD, 0);
    end.writeUInt16LE(z64End ? 0xffff : n, 8);
    end.writeUInt16LE(z64End ? 0xffff : n, 10);
    end.writeUInt32LE(z64End ? 0xffffffff : cdSize, 12);
    end.writeUInt32LE(z64End ? 0xffffffff : cdOffset, 16);
    await write(end);
    await fh.sync();
    await fh.close();
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}
