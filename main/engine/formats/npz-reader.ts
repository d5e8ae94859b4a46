/**
 * NumPy `.npz` (zip of `.npy`) reader.
 *
 * Gemma Scope ships SAEs as `params.npz` up to ~3.8 GB, so the reader parses the zip central directory itself
 * (zip64 included, zip-reader.ts) and reads one entry at a time straight into its typed array: the file is never
 * slurped. Entries may be stored or deflated (zlib's streaming inflater, fed in chunks). CRC-32 is verified.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';

import { InputError } from '../errors';
import { DTYPE_BYTES, decodeNpy, npyHeaderEnd, parseNpyHeader, type NpyArray, type NpyHeader } from './npy';
import { SIG_LOCAL, readAt, readCentralDirectory, type NpzEntryInfo, type ZipEntry } from './zip-reader';

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

/** Compressed bytes handed to the inflater at a time (≤ 64 MiB of output even at deflate's maximum ratio). */
const FEED_CHUNK = 64 << 10;
/** `.npy` headers are a few hundred bytes; anything past this before the data starts is not an array. */
const MAX_NPY_HEADER = 1 << 20;

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
