/**
 * NumPy `.npy` arrays: dtypes, the header (parse and write), decoding a whole `.npy` image into its typed array
 * (f2 widened to f32, Fortran order converted to C order). The zip container around them is npz-reader.ts /
 * npz-writer.ts.
 */
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

export const DTYPE_BYTES: Record<NpyDtype, number> = {
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

export function dtypeOf(data: NpyData): NpyDtype {
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
