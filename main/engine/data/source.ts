import fs from 'node:fs';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';

import { InputError } from '../errors';
import { binaryReason } from './binary-detect';
import { firstInvalidUtf8 } from './utf8';

// Moved to their own modules; re-exported so importers of source.ts keep working.
export { binaryReason, looksBinary } from './binary-detect';
export { firstInvalidUtf8 } from './utf8';

/** One record cut from the source: its text, or why it could not be read. `line` is 1-based (see `container`). */
export type RawRecord = { line: number; text: string } | { line: number; error: string };

export type Container = 'jsonl' | 'json-array';

export interface SourceInfo {
  file: string;
  bytes: number;
  gzip: boolean;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const CHUNK = 1 << 20;

/**
 * Checks that `file` is a readable, non-empty file and tells whether it is gzip (by magic bytes, not extension).
 * The file is only ever opened read-only.
 */
export function inspectSource(file: string): SourceInfo {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new InputError({ file, expected: 'an existing file' , got: 'nothing at that path' });
  }
  if (st.isDirectory()) throw new InputError({ file, expected: 'a file (JSON Lines, JSON array, optionally gzip)', got: 'a folder' });
  if (!st.isFile()) throw new InputError({ file, expected: 'a regular file', got: 'a special file' });
  if (st.size === 0) throw new InputError({ file, expected: 'a non-empty file', got: 'an empty file (0 bytes)' });
  const head = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 2, 0);
  } finally {
    fs.closeSync(fd);
  }
  return { file, bytes: st.size, gzip: st.size >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1] };
}

/** Progress of reading: compressed bytes consumed of the file's size. */
export interface ReadProgress {
  bytesRead: number;
}

/** Default maximum size of one JSONL line / JSON-array element (and of a run of blank lines): 64 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Upper bound for maxLineBytes: V8 strings hold at most ~2^29 characters, so a longer line cannot be decoded anyway. */
export const MAX_MAX_LINE_BYTES = 512 * 1024 * 1024;

export interface SourceOptions {
  /**
   * Largest JSONL line / JSON-array element accepted, in bytes (default 64 MiB). A longer one refuses the whole file
   * with its line (element) number as soon as the limit is passed, so memory stays bounded by the limit and time by
   * the bytes read. The same bound applies to a run of consecutive blank lines (or whitespace between elements): a
   * file padded with gigabytes of newlines stops there instead of being read to the end.
   */
  maxLineBytes?: number;
}

/** Size in words: 64 MiB, 1.5 KiB, 12 bytes. */
export function formatBytes(n: number): string {
  const units: [number, string][] = [[1 << 30, 'GiB'], [1 << 20, 'MiB'], [1 << 10, 'KiB']];
  for (const [u, name] of units) if (n >= u) return `${Number.isInteger(n / u) ? n / u : (n / u).toFixed(1)} ${name}`;
  return `${n} bytes`;
}

/** Parses a byte size: 1048576, 64MiB, 64M, 512k, 1G (binary units). Returns NaN when it is not one. */
export function parseByteSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|bytes?|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(s);
  if (!m) return NaN;
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const mult = unit === 'k' ? 1 << 10 : unit === 'm' ? 1 << 20 : unit === 'g' ? 1 << 30 : 1;
  return Math.round(Number(m[1]) * mult);
}

const isWs = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Streams records out of a JSON Lines or JSON-array file (plain or gzip) with memory independent of file size
 * (bounded by maxLineBytes plus one chunk). Also computes the sha256 of the file's bytes as they are read (for
 * provenance), available once done.
 */
export class SourceReader {
  readonly info: SourceInfo;
  readonly maxLineBytes: number;
  container: Container | null = null;
  bytesRead = 0;
  /** Bytes after gunzip (= bytesRead for a plain file). */
  bytesDecoded = 0;
  private readonly hash = createHash('sha256');
  private digest: string | null = null;

  constructor(file: string, opts: SourceOptions = {}) {
    const limit = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_MAX_LINE_BYTES) {
      throw new InputError({ field: 'maxLineBytes', expected: `a whole number of bytes from 1 to ${formatBytes(MAX_MAX_LINE_BYTES)}`, got: String(opts.maxLineBytes) });
    }
    this.maxLineBytes = limit;
    this.info = inspectSource(file);
  }

  /** sha256 of the whole file (hex); only after records() has been fully consumed. */
  get sha256(): string {
    if (this.digest === null) throw new Error('sha256 is known only after the whole file was read');
    return this.digest;
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    const raw = fs.createReadStream(this.info.file, { highWaterMark: CHUNK, flags: 'r' });
    raw.on('data', (b: Buffer | string) => {
      const buf = typeof b === 'string' ? Buffer.from(b) : b;
      this.bytesRead += buf.length;
      this.hash.update(buf);
    });
    let stream: Readable = raw;
    const gunzip = this.info.gzip ? zlib.createGunzip({ chunkSize: CHUNK }) : null;
    if (gunzip) stream = raw.pipe(gunzip);
    try {
      for await (const c of stream) {
        this.bytesDecoded += (c as Buffer).length;
        yield c as Buffer;
      }
    } catch (err) {
      const msg = (err as Error).message;
      if (this.info.gzip) throw new InputError({ file: this.info.file, expected: 'a complete, valid gzip stream', got: msg }, err);
      throw new InputError({ file: this.info.file, expected: 'a readable file', got: msg }, err);
    } finally {
      // Stopping early (a refused line) must not leave the file open or zlib inflating in the background.
      gunzip?.destroy();
      raw.destroy();
    }
    this.digest = this.hash.digest('hex');
  }

  private tooLong(line: number | undefined, element: number | undefined, what: string): InputError {
    const limit = formatBytes(this.maxLineBytes);
    return new InputError({
      file: this.info.file,
      ...(line !== undefined ? { line } : {}),
      ...(element !== undefined ? { field: `element ${element} of the JSON array` } : {}),
      expected: `${what === 'blank' ? `at most ${limit} of consecutive blank lines or whitespace` : `a ${what} of at most ${limit}`} (raise the limit with --max-line-bytes / maxLineBytes)`,
      got: what === 'blank' ? 'more (the file looks padded; stopped reading there)' : `a longer one (stopped reading after ${limit} of it)`,
    });
  }

  async *records(): AsyncGenerator<RawRecord> {
    const it = this.chunks();
    const limit = this.maxLineBytes;
    // The first 8 KiB tell text from binary data.
    const pending: Buffer[] = [];
    let have = 0;
    while (have < 8192) {
      const r = await it.next();
      if (r.done) break;
      pending.push(r.value);
      have += r.value.length;
    }
    let buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    // UTF-8 BOM
    if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    if (this.bytesDecoded === 0) {
      throw new InputError({ file: this.info.file, expected: 'preference pairs (JSON Lines or a JSON array)', got: this.info.gzip ? 'an empty file after gunzip' : 'an empty file' });
    }
    const binary = binaryReason(buf.subarray(0, 8192));
    if (binary) {
      await it.return(undefined);
      throw new InputError({ file: this.info.file, expected: 'a text file: JSON Lines or a JSON array (optionally gzip-compressed)', got: `binary data (${binary} in the first ${formatBytes(Math.min(8192, buf.length))})` });
    }
    // Skip leading blank lines (bounded by the limit) to find the first non-blank byte: "[" = JSON array.
    let newlines = 0;
    let blank = 0;
    let lineStart = 0;
    for (;;) {
      let i = 0;
      const n = buf.length;
      while (i < n) {
        const c = buf[i]!;
        if (c === 0x0a) {
          newlines++;
          lineStart = i + 1;
        } else if (c !== 0x20 && c !== 0x0d && c !== 0x09) break;
        i++;
      }
      if (i < n) {
        const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
        if (buf[i] === 0x5b /* [ */) {
          this.container = 'json-array';
          yield* this.jsonArrayRecords(buf.subarray(i), rest);
        } else {
          this.container = 'jsonl';
          yield* this.jsonlRecords(buf.subarray(lineStart), rest, newlines);
        }
        return;
      }
      blank += n;
      if (blank > limit) {
        await it.return(undefined);
        throw new InputError({
          file: this.info.file,
          expected: 'preference pairs (JSON Lines or a JSON array)',
          got: `only whitespace in the first ${formatBytes(limit)}${this.info.gzip ? ' after gunzip' : ''} (stopped reading there; --max-line-bytes sets this limit)`,
        });
      }
      const r = await it.next();
      if (r.done) {
        throw new InputError({ file: this.info.file, expected: 'preference pairs (JSON Lines or a JSON array)', got: `only whitespace${this.info.gzip ? ' after gunzip' : ''}` });
      }
      buf = r.value;
      lineStart = 0;
    }
  }

  /**
   * Cuts lines at the byte level. A line in progress is kept as a list of chunk slices and joined once (linear time,
   * memory ≤ maxLineBytes + one chunk); runs of blank lines are skipped by a tight byte loop and bounded too.
   */
  private async *jsonlRecords(start: Buffer, rest: AsyncIterable<Buffer>, firstLine: number): AsyncGenerator<RawRecord> {
    const limit = this.maxLineBytes;
    let parts: Buffer[] = [];
    let partsLen = 0;
    let line = firstLine; // newlines consumed so far
    let blankRun = 0;
    let blankFrom = line + 1;
    const out: RawRecord[] = [];
    const emit = (bytes: Buffer) => {
      line++;
      let end = bytes.length;
      if (end > 0 && bytes[end - 1] === 0x0d) end--;
      const b = bytes.subarray(0, end);
      if (isBlank(b)) {
        if (blankRun === 0) blankFrom = line;
        blankRun += bytes.length + 1;
        if (blankRun > limit) throw this.tooLong(blankFrom, undefined, 'blank');
        return;
      }
      blankRun = 0;
      out.push(decode(b, line));
    };
    const feed = (buf: Buffer) => {
      let pos = 0;
      const n = buf.length;
      while (pos < n) {
        if (partsLen === 0) {
          // Fast path over blank lines at a line start.
          let i = pos;
          let next = pos;
          if (blankRun === 0) blankFrom = line + 1;
          while (i < n) {
            const c = buf[i]!;
            if (c === 0x0a) {
              line++;
              next = i + 1;
            } else if (c !== 0x20 && c !== 0x0d && c !== 0x09) break;
            i++;
          }
          if (next > pos) {
            blankRun += next - pos;
            if (blankRun > limit) throw this.tooLong(blankFrom, undefined, 'blank');
            pos = next;
          }
          if (pos >= n) break;
        }
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0) {
          partsLen += n - pos;
          if (partsLen > limit) throw this.tooLong(line + 1, undefined, 'line');
          parts.push(buf.subarray(pos));
          break;
        }
        if (partsLen + (nl - pos) > limit) throw this.tooLong(line + 1, undefined, 'line');
        let bytes = buf.subarray(pos, nl);
        if (partsLen) {
          parts.push(bytes);
          bytes = Buffer.concat(parts, partsLen + (nl - pos));
          parts = [];
          partsLen = 0;
        }
        emit(bytes);
        pos = nl + 1;
      }
    };
    try {
      feed(start);
      yield* out.splice(0);
      for await (const chunk of rest) {
        feed(chunk);
        yield* out.splice(0);
      }
      if (partsLen) {
        emit(parts.length === 1 ? parts[0]! : Buffer.concat(parts, partsLen));
        yield* out.splice(0);
      }
    } finally {
      parts = [];
    }
  }

  /**
   * Cuts the top-level elements of a JSON array at the byte level (JSON's structural characters are ASCII, so this is
   * safe on UTF-8), without parsing the whole document. `line` of a record = the element's 1-based index. Elements
   * and whitespace runs are bounded by maxLineBytes.
   */
  private async *jsonArrayRecords(start: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<RawRecord> {
    const limit = this.maxLineBytes;
    let state: 'before' | 'value' | 'after' | 'end' = 'before';
    let depth = 0;
    let inString = false;
    let escape = false;
    let parts: Buffer[] = [];
    let partsLen = 0;
    let partStart = -1;
    let index = 0;
    let sawOpen = false;
    let blankRun = 0;
    const out: RawRecord[] = [];

    const finishElement = () => {
      index++;
      const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, partsLen);
      parts = [];
      partsLen = 0;
      depth = 0;
      out.push(decode(bytes, index));
    };
    const pushPart = (b: Buffer) => {
      partsLen += b.length;
      if (partsLen > limit) throw this.tooLong(undefined, index + 1, 'JSON array element');
      parts.push(b);
    };
    const feed = (buf: Buffer) => {
      // After junk following the closing "]" (already reported), the rest is only read for the file's hash.
      if (state === 'after') return;
      partStart = state === 'value' ? 0 : -1;
      const n = buf.length;
      for (let i = 0; i < n; i++) {
        const c = buf[i]!;
        if (state === 'value') {
          if (inString) {
            if (escape) escape = false;
            else if (c === 0x5c) escape = true;
            else if (c === 0x22) inString = false;
            else {
              // Jump to the next quote or backslash (the bulk of an element is string content).
              const q = buf.indexOf(0x22, i + 1);
              const bs = buf.indexOf(0x5c, i + 1);
              const j = q < 0 ? bs : bs < 0 ? q : Math.min(q, bs);
              i = (j < 0 ? n : j) - 1;
            }
            continue;
          }
          if (c === 0x22) inString = true;
          else if (c === 0x7b || c === 0x5b) depth++;
          else if (c === 0x7d || c === 0x5d) {
            if (depth === 0 && c === 0x5d) {
              // end of the array
              pushPart(buf.subarray(partStart, i));
              finishElement();
              state = 'end';
              blankRun = 0;
              continue;
            }
            depth--;
          } else if (c === 0x2c && depth === 0) {
            pushPart(buf.subarray(partStart, i));
            finishElement();
            state = 'before';
            blankRun = 0;
            partStart = -1;
          }
          continue;
        }
        if (isWs(c)) {
          if (++blankRun > limit) throw this.tooLong(undefined, index + 1, 'blank');
          continue;
        }
        blankRun = 0;
        if (state === 'end') {
          out.push({ line: index + 1, error: 'unexpected data after the closing "]" of the JSON array' });
          state = 'after';
          break;
        }
        if (!sawOpen) {
          if (c !== 0x5b) return;
          sawOpen = true;
          continue;
        }
        if (c === 0x5d && index === 0 && parts.length === 0) {
          state = 'end';
          continue;
        }
        state = 'value';
        partStart = i;
        i--; // re-read this byte in 'value' state
      }
      if (state === 'value' && partStart >= 0) pushPart(buf.subarray(partStart));
    };

    feed(start);
    yield* out.splice(0);
    for await (const chunk of rest) {
      feed(chunk);
      yield* out.splice(0);
    }
    const finalState = state as string;
    if (finalState === 'value' || finalState === 'before') {
      if (partsLen && !isBlank(Buffer.concat(parts, partsLen))) {
        index++;
        yield { line: index, error: 'truncated JSON array: the element is not closed and the file ends without "]"' };
      } else {
        yield { line: index + 1, error: 'truncated JSON array: the file ends without the closing "]"' };
      }
    }
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function decode(bytes: Buffer, line: number): RawRecord {
  try {
    return { line, text: decoder.decode(bytes) };
  } catch (err) {
    // Only on failure: one linear scan for where (the old prefix-by-prefix search was quadratic).
    const at = firstInvalidUtf8(bytes);
    if (at < 0) return { line, error: `the line (${formatBytes(bytes.length)}) could not be decoded (${(err as Error).message}): expected a shorter line of UTF-8 text` };
    return { line, error: `invalid UTF-8 at byte ${at + 1} of the line: expected UTF-8 text` };
  }
}

function isBlank(b: Buffer): boolean {
  for (const c of b) if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  return true;
}
