import fs from 'node:fs';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';

import { InputError } from '../errors';

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

/**
 * Streams records out of a JSON Lines or JSON-array file (plain or gzip) with memory independent of file size.
 * Also computes the sha256 of the file's bytes as they are read (for provenance), available once done.
 */
export class SourceReader {
  readonly info: SourceInfo;
  container: Container | null = null;
  bytesRead = 0;
  private readonly hash = createHash('sha256');
  private digest: string | null = null;

  constructor(file: string) {
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
    if (this.info.gzip) stream = raw.pipe(zlib.createGunzip({ chunkSize: CHUNK }));
    try {
      for await (const c of stream) yield c as Buffer;
    } catch (err) {
      const msg = (err as Error).message;
      if (this.info.gzip) throw new InputError({ file: this.info.file, expected: 'a complete, valid gzip stream', got: msg }, err);
      throw new InputError({ file: this.info.file, expected: 'a readable file', got: msg }, err);
    } finally {
      raw.destroy();
    }
    this.digest = this.hash.digest('hex');
  }

  async *records(): AsyncGenerator<RawRecord> {
    const it = this.chunks();
    // Peek at the first non-blank bytes to tell JSONL from a JSON array, and refuse binary files up front.
    let head = Buffer.alloc(0);
    let first: IteratorResult<Buffer>;
    let pending: Buffer[] = [];
    for (;;) {
      first = await it.next();
      if (first.done) break;
      pending.push(first.value);
      head = Buffer.concat([head, first.value]);
      if (head.length >= 4096 || /\S/.test(head.toString('latin1'))) break;
    }
    let all = Buffer.concat(pending);
    pending = [];
    // UTF-8 BOM
    if (all.length >= 3 && all[0] === 0xef && all[1] === 0xbb && all[2] === 0xbf) all = all.subarray(3);
    const firstNonBlank = all.findIndex((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
    if (firstNonBlank < 0) {
      // Drain (hash) and refuse.
      for await (const _ of { [Symbol.asyncIterator]: () => it }) void _;
      throw new InputError({ file: this.info.file, expected: 'preference pairs (JSON Lines or a JSON array)', got: this.info.gzip ? 'an empty file after gunzip' : 'only whitespace' });
    }
    if (looksBinary(all.subarray(0, 8192))) {
      throw new InputError({ file: this.info.file, expected: 'a text file: JSON Lines or a JSON array (optionally gzip-compressed)', got: 'binary data' });
    }
    const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
    if (all[firstNonBlank] === 0x5b /* [ */) {
      this.container = 'json-array';
      yield* jsonArrayRecords(all, rest);
    } else {
      this.container = 'jsonl';
      yield* jsonlRecords(all, rest);
    }
  }
}

/** NUL bytes or many invalid UTF-8 sequences at the start mean this is not a text file. */
export function looksBinary(buf: Buffer): boolean {
  if (buf.includes(0)) return true;
  const text = buf.toString('utf8');
  let bad = 0;
  for (const ch of text) if (ch === '\uFFFD') bad++;
  // A chunk boundary can cut one character; real text files have (almost) no replacement characters.
  return bad > 2 && bad / Math.max(1, text.length) > 0.01;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function decode(bytes: Buffer, line: number): RawRecord {
  try {
    return { line, text: decoder.decode(bytes) };
  } catch {
    return { line, error: `invalid UTF-8 at byte ${firstInvalidUtf8(bytes)} of the line: expected UTF-8 text` };
  }
}

function firstInvalidUtf8(b: Buffer): number {
  for (let i = 1; i <= b.length; i++) {
    try {
      decoder.decode(b.subarray(0, i));
    } catch {
      // A prefix can fail only because it cuts a multi-byte character; check that a longer one also fails.
      let ok = false;
      for (let j = i + 1; j <= Math.min(b.length, i + 3); j++) {
        try {
          decoder.decode(b.subarray(0, j));
          ok = true;
          break;
        } catch {
          /* keep looking */
        }
      }
      if (!ok) return i;
    }
  }
  return b.length;
}

async function* jsonlRecords(start: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<RawRecord> {
  let carry: Buffer = start;
  let line = 0;
  const emit = function* (bytes: Buffer): Generator<RawRecord> {
    line++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    const b = bytes.subarray(0, end);
    if (isBlank(b)) return;
    yield decode(b, line);
  };
  const split = function* (buf: Buffer): Generator<RawRecord> {
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) break;
      yield* emit(buf.subarray(pos, nl));
      pos = nl + 1;
    }
    carry = Buffer.from(buf.subarray(pos));
  };
  yield* split(carry);
  for await (const chunk of rest) {
    yield* split(carry.length ? Buffer.concat([carry, chunk]) : chunk);
  }
  if (carry.length) yield* emit(carry);
}

function isBlank(b: Buffer): boolean {
  for (const c of b) if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  return true;
}

/**
 * Cuts the top-level elements of a JSON array at the byte level (JSON's structural characters are ASCII, so this is
 * safe on UTF-8), without parsing the whole document. `line` of a record = the element's 1-based index.
 */
async function* jsonArrayRecords(start: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<RawRecord> {
  let state: 'before' | 'value' | 'after' | 'end' = 'before';
  let depth = 0;
  let inString = false;
  let escape = false;
  let parts: Buffer[] = [];
  let partStart = -1;
  let index = 0;
  let sawOpen = false;
  const out: RawRecord[] = [];

  const feed = (buf: Buffer) => {
    partStart = state === 'value' ? 0 : -1;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      if (state === 'value') {
        if (inString) {
          if (escape) escape = false;
          else if (c === 0x5c) escape = true;
          else if (c === 0x22) inString = false;
          continue;
        }
        if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) depth++;
        else if (c === 0x7d || c === 0x5d) {
          if (depth === 0 && c === 0x5d) {
            // end of the array
            parts.push(buf.subarray(partStart, i));
            finishElement();
            state = 'end';
            continue;
          }
          depth--;
        } else if (c === 0x2c && depth === 0) {
          parts.push(buf.subarray(partStart, i));
          finishElement();
          state = 'before';
          partStart = -1;
        }
        continue;
      }
      const ws = c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
      if (ws) continue;
      if (state === 'end') {
        out.push({ line: index + 1, error: 'unexpected data after the closing "]" of the JSON array' });
        state = 'after';
        continue;
      }
      if (state === 'after') continue;
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
    if (state === 'value' && partStart >= 0) parts.push(Buffer.from(buf.subarray(partStart)));
  };
  const finishElement = () => {
    index++;
    const bytes = Buffer.concat(parts);
    parts = [];
    depth = 0;
    out.push(decode(bytes, index));
  };

  feed(start);
  yield* out.splice(0);
  for await (const chunk of rest) {
    feed(chunk);
    yield* out.splice(0);
  }
  const finalState = state as string;
  if (finalState === 'value' || finalState === 'before') {
    if (parts.length && !isBlank(Buffer.concat(parts))) {
      index++;
      yield { line: index, error: 'truncated JSON array: the element is not closed and the file ends without "]"' };
    } else {
      yield { line: index + 1, error: 'truncated JSON array: the file ends without the closing "]"' };
    }
  }
}
