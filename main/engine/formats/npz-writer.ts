/**
 * NumPy `.npz` writer: `.npy` v1.0 entries (64-byte aligned header, C order, little-endian), stored or deflated,
 * written atomically (temp file + rename), switching to zip64 records only when a size or offset needs it.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { deflateSync } from 'fflate';

import { dtypeOf, npyHeaderBytes, type NpyData } from './npy';
// The record signatures are the reader's: one definition of the zip format's magic numbers.
import { SIG_CENTRAL, SIG_EOCD, SIG_LOCAL, SIG_ZIP64_EOCD, SIG_ZIP64_LOCATOR } from './zip-reader';

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
