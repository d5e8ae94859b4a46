/**
 * Hostile .npz files (issue 9, rows 4 and 9/10): a deflate bomb stops at the declared size with bounded memory,
 * zip64 oddities and duplicate or overlapping entries are InputErrors naming the file and the entry.
 * Every archive is built by hand here, small on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';

import { openNpz, npyHeaderBytes, type NpzFile } from '../../../main/engine/formats/npz';
import { InputError } from '../../../main/engine/errors';
import { tempDir } from '../../helpers/paths';

interface RawEntry {
  name: string;
  /** Bytes as stored in the archive (already deflated when method 8). */
  payload: Buffer;
  method: 0 | 8;
  crc: number;
  /** Declared sizes (default: the true ones). */
  usize: number;
  csize?: number;
  /** Write the sizes as zip64 extra fields with these 64-bit values (the fixed fields say 0xffffffff). */
  zip64?: { usize: bigint; csize: bigint };
  /** Local header offset to declare instead of the true one (overlapping entries). */
  offset?: number;
  /** Do not write this entry's local header + data (it aliases another's). */
  skipData?: boolean;
}

/** A minimal zip writer that declares whatever the test says. */
function buildZip(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const csize = e.csize ?? e.payload.length;
    const at = offset;
    if (!e.skipData) {
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(0x800, 6);
      local.writeUInt16LE(e.method, 8);
      local.writeUInt32LE(e.crc >>> 0, 14);
      local.writeUInt32LE(Math.min(csize, 0xffffffff), 18);
      local.writeUInt32LE(Math.min(e.usize, 0xffffffff), 22);
      local.writeUInt16LE(name.length, 26);
      parts.push(local, name, e.payload);
      offset += 30 + name.length + e.payload.length;
    }
    const extra = e.zip64 ? Buffer.alloc(20) : Buffer.alloc(0);
    if (e.zip64) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(e.zip64.usize, 4);
      extra.writeBigUInt64LE(e.zip64.csize, 12);
    }
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(0x800, 8);
    cd.writeUInt16LE(e.method, 10);
    cd.writeUInt32LE(e.crc >>> 0, 16);
    cd.writeUInt32LE(e.zip64 ? 0xffffffff : csize, 20);
    cd.writeUInt32LE(e.zip64 ? 0xffffffff : e.usize, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(extra.length, 30);
    cd.writeUInt32LE(e.offset ?? at, 42);
    central.push(cd, name, extra);
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBuf, end]);
}

function npy(shape: number[], fill = 1): Buffer {
  const header = npyHeaderBytes('f4', shape);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill);
  return Buffer.concat([Buffer.from(header), Buffer.from(data.buffer)]);
}

function stored(name: string, bytes: Buffer): RawEntry {
  return { name, payload: bytes, method: 0, crc: zlib.crc32(bytes), usize: bytes.length };
}

async function inputError(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InputError);
  return err as InputError;
}

async function withNpz<T>(file: string, f: (npz: NpzFile) => Promise<T>): Promise<T> {
  const npz = await openNpz(file);
  try {
    return await f(npz);
  } finally {
    await npz.close();
  }
}

describe('npz deflate bomb', () => {
  it('stops inflating W_enc at its declared 65,664 bytes although the stream holds 1 GiB: bounded memory and time', async () => {
    // A [128, 128] f4 .npy (128-byte header + 65,536 data bytes = 65,664) followed by 1 GiB more zeros.
    // Full-flushed deflate segments can be repeated: 64 × 16 MiB of zeros cost ~1 MB on disk.
    const header = npy([128, 128], 0);
    const flush = { finishFlush: zlib.constants.Z_FULL_FLUSH };
    const segment = zlib.deflateRawSync(Buffer.alloc(16 << 20), flush);
    const stream = Buffer.concat([zlib.deflateRawSync(header, flush), ...Array.from({ length: 64 }, () => segment), zlib.deflateRawSync(Buffer.alloc(0))]);
    expect(stream.length).toBeLessThan(1.5e6);
    const dir = tempDir();
    const file = path.join(dir, 'bomb.npz');
    fs.writeFileSync(file, buildZip([{ name: 'W_enc.npy', payload: stream, method: 8, crc: zlib.crc32(header), usize: header.length }]));

    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const t0 = performance.now();
    const err = await withNpz(file, (npz) => inputError(npz.readF32('W_enc')));
    const ms = performance.now() - t0;
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(err.details.file).toBe(file);
    expect(err.details.tensor).toBe('W_enc');
    expect(err.message).toMatch(/65664 uncompressed bytes.*decompression bomb/);
    // Before the fix the whole GiB was inflated (3.2 GB RSS). Now at most a few inflater chunks exist at once.
    expect(peak - rss0).toBeLessThan(150 << 20);
    expect(ms).toBeLessThan(5000);
    console.log(`bomb: refused after ${ms.toFixed(0)} ms, RSS growth ${((peak - rss0) / 2 ** 20).toFixed(1)} MiB`);
  });

  it('refuses an entry whose .npy header disagrees with the declared size before allocating it', async () => {
    // Header says [16384, 16384] f4 (1 GiB); the directory says 1 MiB-ish; the data is 1 KiB.
    const header = Buffer.from(npyHeaderBytes('f4', [16384, 16384]));
    const body = Buffer.concat([header, Buffer.alloc(1024)]);
    const dir = tempDir();
    const file = path.join(dir, 'liar.npz');
    fs.writeFileSync(file, buildZip([{ ...stored('W_enc.npy', body) }]));
    const err = await withNpz(file, (npz) => inputError(npz.read('W_enc')));
    expect(err.message).toMatch(/liar\.npz, field "uncompressed size", tensor "W_enc": expected 1073741952 bytes \(the \.npy header says f4 shape \[16384, 16384\]\), got 1152 declared/);
  });

  it('caps an entry by the shape the caller expects, from its header, before inflating the data', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'sae.npz');
    fs.writeFileSync(file, buildZip([stored('b_enc.npy', npy([64])), stored('W_dec.npy', npy([8, 4]))]));
    await withNpz(file, async (npz) => {
      const e1 = await inputError(npz.readF32('b_enc', { expect: { shape: [32], why: 'from W_enc [4, 32]' } }));
      expect(e1.message).toMatch(/tensor "b_enc": expected shape \[32\] \(from W_enc \[4, 32\]\), got \[64\]/);
      const e2 = await inputError(npz.readF32('W_dec', { maxBytes: 64 }));
      expect(e2.message).toMatch(/tensor "W_dec": expected at most 64 bytes of data, got f4 shape \[8, 4\] \(128 bytes\)/);
      expect((await npz.readF32('W_dec', { expect: { shape: [8, 4], why: 'test' } })).data.length).toBe(32);
    });
  });
});

describe('npz zip64 oddities, duplicates and overlaps', () => {
  const dir = tempDir();
  const body = npy([4]);

  it('a zip64 size no file can have is an InputError naming the file and entry (was "Invalid typed array length")', async () => {
    const file = path.join(dir, 'z64-huge.npz');
    // 2^52 bytes declared for a stored entry of 144 bytes.
    fs.writeFileSync(file, buildZip([{ ...stored('W_enc.npy', body), zip64: { usize: 1n << 52n, csize: BigInt(body.length) } }]));
    const err = await inputError(openNpz(file));
    expect(err.details.file).toBe(file);
    expect(err.details.tensor).toBe('W_enc.npy');
    expect(err.message).toMatch(/field "uncompressed size".*expected the compressed size \(144\).*got 4503599627370496/);
  });

  it('a zip64 value beyond 2^53 and a zip64 field too short for its sizes name the entry and the field', async () => {
    const big = path.join(dir, 'z64-big.npz');
    fs.writeFileSync(big, buildZip([{ ...stored('b_enc.npy', body), zip64: { usize: 1n << 63n, csize: BigInt(body.length) } }]));
    const e1 = await inputError(openNpz(big));
    expect(e1.message).toMatch(/z64-big\.npz, field "zip64 uncompressed size", tensor "b_enc\.npy": expected a 64-bit uncompressed size that fits the file, got 9223372036854775808/);

    const deflated = zlib.deflateRawSync(body);
    const short = path.join(dir, 'z64-short.npz');
    const zip = buildZip([{ name: 'b_enc.npy', payload: deflated, method: 8, crc: zlib.crc32(body), usize: body.length, zip64: { usize: BigInt(body.length), csize: BigInt(deflated.length) } }]);
    // Shrink the zip64 extra's declared length to 8: the compressed size is missing from it.
    const at = zip.indexOf(Buffer.from([1, 0, 16, 0]), zip.lastIndexOf(Buffer.from('b_enc.npy')));
    zip.writeUInt16LE(8, at + 2);
    fs.writeFileSync(short, zip);
    const e2 = await inputError(openNpz(short));
    expect(e2.details.file).toBe(short);
    expect(e2.details.tensor).toBe('b_enc.npy');
    expect(e2.message).toMatch(/zip64 compressed size/);
  });

  it('a deflated entry declaring more than deflate can produce from its bytes is refused up front', async () => {
    const file = path.join(dir, 'ratio.npz');
    const deflated = zlib.deflateRawSync(body);
    fs.writeFileSync(file, buildZip([{ name: 'W_dec.npy', payload: deflated, method: 8, crc: zlib.crc32(body), usize: 0xfffffff0 }]));
    const err = await inputError(openNpz(file));
    expect(err.message).toMatch(/ratio\.npz, field "uncompressed size", tensor "W_dec\.npy": expected at most 1032× the compressed size/);
  });

  it('refuses duplicate entries instead of silently using one', async () => {
    const file = path.join(dir, 'dup.npz');
    fs.writeFileSync(file, buildZip([stored('W_enc.npy', npy([2, 2], 1)), stored('W_enc.npy', npy([2, 2], 2))]));
    const err = await inputError(openNpz(file));
    expect(err.message).toMatch(/dup\.npz, tensor "W_enc": expected each array stored once in the archive, got two entries "W_enc\.npy" and "W_enc\.npy"/);
    // "x" and "x.npy" are the same array too.
    const file2 = path.join(dir, 'dup2.npz');
    fs.writeFileSync(file2, buildZip([stored('b_dec.npy', npy([2])), stored('b_dec', npy([2]))]));
    expect((await inputError(openNpz(file2))).details.tensor).toBe('b_dec');
  });

  it('refuses entries that share bytes (overlapping local headers)', async () => {
    const file = path.join(dir, 'alias.npz');
    fs.writeFileSync(file, buildZip([stored('W_enc.npy', npy([4])), { ...stored('W_dec.npy', npy([4])), offset: 0, skipData: true }]));
    const err = await inputError(openNpz(file));
    expect(err.message).toMatch(/alias\.npz, tensor "W_(enc|dec)": expected entries that do not overlap/);
  });

  it('still reads a clean hand-built archive (stored and deflated)', async () => {
    const file = path.join(dir, 'ok.npz');
    const b = npy([3], 2.5);
    fs.writeFileSync(file, buildZip([stored('a.npy', npy([2, 2], 1)), { name: 'b.npy', payload: zlib.deflateRawSync(b), method: 8, crc: zlib.crc32(b), usize: b.length }]));
    await withNpz(file, async (npz) => {
      expect(Array.from((await npz.readF32('a')).data)).toEqual([1, 1, 1, 1]);
      expect(Array.from((await npz.readF32('b')).data)).toEqual([2.5, 2.5, 2.5]);
    });
  });
});
