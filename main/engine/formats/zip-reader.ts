/**
 * The zip container under `.npz`: record signatures, bounded positional reads, and the central directory reader
 * (zip64 included). The directory is checked against the file before any entry is read: sizes and offsets inside
 * the file, no encryption, stored or deflated only, a deflate ratio deflate can reach, no duplicate or overlapping
 * entries, so a hostile archive is refused from its directory alone.
 */
import fs from 'node:fs';

import { InputError } from '../errors';

// The public entry type lives with the directory reader that produces it (npz.ts re-exports it).
export interface NpzEntryInfo {
  /** Array name (the zip entry name without `.npy`). */
  name: string;
  /** Zip entry name as stored. */
  entryName: string;
  method: 'stored' | 'deflated';
  compressedSize: number;
  uncompressedSize: number;
}

// Record signatures, shared with npz-writer.ts.
export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;

export interface ZipEntry extends NpzEntryInfo {
  crc: number;
  localHeaderOffset: number;
  nameLen: number;
}

export async function readAt(fh: fs.promises.FileHandle, pos: number, len: number): Promise<Buffer> {
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

export async function readCentralDirectory(fh: fs.promises.FileHandle, file: string): Promise<ZipEntry[]> {
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
