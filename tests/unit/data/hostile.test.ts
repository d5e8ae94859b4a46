/**
 * Hostile and careless input files (issue 9): every case must fail (or report) quickly, with bounded memory, naming
 * the file and the line / element. Big inputs are built as concatenated gzip members of one small compressed block,
 * so a 1 GiB line costs ~1 MB on disk and nothing to generate.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';


import { importFile } from '../../../main/engine/data';
import { binaryReason, firstInvalidUtf8 } from '../../../main/engine/data/source';
import { InputError } from '../../../main/engine/errors';
import { openStore, type Store } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';
import { runCli } from '../../helpers/cli';

const MiB = 1 << 20;
const good = (i: number) => JSON.stringify({ prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}` });

/** A gzip file = `head` + `times` × `block` + `tail` after gunzip (gzip members concatenated, as RFC 1952 allows). */
function gzipRepeat(file: string, head: string | Buffer, block: Buffer, times: number, tail = ''): void {
  const member = zlib.gzipSync(block, { level: 9 });
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, zlib.gzipSync(typeof head === 'string' ? Buffer.from(head) : head));
    for (let i = 0; i < times; i++) fs.writeSync(fd, member);
    if (tail) fs.writeSync(fd, zlib.gzipSync(Buffer.from(tail)));
  } finally {
    fs.closeSync(fd);
  }
}

async function importError(s: Store, file: string, opts: Partial<Parameters<typeof importFile>[2]> = {}): Promise<{ err: InputError; seconds: number; rssGrowthMB: number }> {
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  let err: unknown;
  try {
    await importFile(s, file, { dataset: 'x', ...opts });
  } catch (e) {
    err = e;
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  expect(err).toBeInstanceOf(InputError);
  return { err: err as InputError, seconds: (performance.now() - t0) / 1000, rssGrowthMB: (peak - rss0) / MiB };
}

describe('hostile files: bounded time and memory, errors name the line', () => {
  it('invalid UTF-8 near the end of a 1 MiB line: found in linear time, the row skipped and reported with its line', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'longbad.jsonl');
    const big = Buffer.alloc(MiB, 0x61);
    big[MiB - 10] = 0xff;
    const line2 = Buffer.concat([Buffer.from('{"prompt": "p", "chosen": "'), big, Buffer.from('", "rejected": "r"}')]);
    fs.writeFileSync(file, Buffer.concat([Buffer.from(good(1) + '\n'), line2, Buffer.from('\n' + good(3) + '\n')]));
    const s = openStore(':memory:');
    const t0 = performance.now();
    const r = await importFile(s, file, { dataset: 'x' });
    const seconds = (performance.now() - t0) / 1000;
    expect(r.imported).toBe(2);
    expect(r.skipped).toEqual([{ line: 2, reason: `invalid UTF-8 at byte ${27 + MiB - 10 + 1} of the line: expected UTF-8 text` }]);
    console.log(`1 MiB line with an invalid byte near its end: ${seconds.toFixed(2)} s`);
    s.close();
  }, 20_000);

  it('firstInvalidUtf8 follows the decoder: overlongs, surrogates, cut sequences, > U+10FFFF', () => {
    const cases: [number[], number][] = [
      [[0x61, 0x62], -1],
      [[0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], -1], // € 😀
      [[0x61, 0xc0, 0xaf], 1], // overlong
      [[0x61, 0x62, 0xed, 0xa0, 0x80], 2], // encoded surrogate
      [[0xe2, 0x82], 0], // cut at the end
      [[0xf4, 0x90, 0x80, 0x80], 0], // > U+10FFFF
      [[0x61, 0x80], 1], // lone continuation byte
    ];
    const strict = new TextDecoder('utf-8', { fatal: true });
    for (const [bytes, at] of cases) {
      const b = Uint8Array.from(bytes);
      expect(firstInvalidUtf8(b), JSON.stringify(bytes)).toBe(at);
      let ok = true;
      try {
        strict.decode(b);
      } catch {
        ok = false;
      }
      expect(ok).toBe(at === -1);
    }
  });

  it('a 1 MB gzip holding one 1 GiB line is refused at the 64 MiB limit with its line number, fast and in bounded memory', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bomb.jsonl.gz');
    gzipRepeat(file, good(1) + '\n{"prompt": "', Buffer.alloc(MiB, 0x61), 1024);
    expect(fs.statSync(file).size).toBeLessThan(2 * MiB);
    const s = openStore(path.join(dir, 'db.sqlite'));
    const { err, seconds, rssGrowthMB } = await importError(s, file);
    expect(err.details).toMatchObject({ file, line: 2 });
    expect(err.message).toMatch(/line 2: expected a line of at most 64 MiB \(raise the limit with --max-line-bytes/);
    console.log(`1 GiB line in a ${(fs.statSync(file).size / 1e6).toFixed(1)} MB gzip: refused in ${seconds.toFixed(2)} s, RSS +${rssGrowthMB.toFixed(0)} MB`);
    expect(rssGrowthMB).toBeLessThan(400);
    expect(s.datasets.list()).toHaveLength(0);
    s.close();
  }, 60_000);

  it('the limit is configurable: a 3 MiB line passes with maxLineBytes 4 MiB and is refused with 1 MiB', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'three.jsonl');
    fs.writeFileSync(file, good(1) + '\n' + JSON.stringify({ prompt: 'p', chosen: 'x'.repeat(3 * MiB), rejected: 'r' }) + '\n' + good(3) + '\n');
    const s = openStore(':memory:');
    const ok = await importFile(s, file, { dataset: 'ok', maxLineBytes: 4 * MiB });
    expect(ok.imported).toBe(3);
    const { err } = await importError(s, file, { dataset: 'small', maxLineBytes: MiB });
    expect(err.details.line).toBe(2);
    expect(err.message).toMatch(/at most 1 MiB/);
    await expect(importFile(s, file, { dataset: 'bad', maxLineBytes: 0 })).rejects.toThrow(/maxLineBytes.*whole number of bytes/);
    s.close();
  });

  it('a gzip holding one 1 GiB JSON-array element is refused at the limit, naming the element', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bomb-array.json.gz');
    gzipRepeat(file, `[${good(1)}, {"prompt": "`, Buffer.alloc(MiB, 0x61), 1024);
    const s = openStore(path.join(dir, 'db.sqlite'));
    const { err, seconds, rssGrowthMB } = await importError(s, file);
    expect(err.details).toMatchObject({ file, field: 'element 2 of the JSON array' });
    expect(err.message).toMatch(/expected a JSON array element of at most 64 MiB/);
    console.log(`1 GiB JSON-array element: refused in ${seconds.toFixed(2)} s, RSS +${rssGrowthMB.toFixed(0)} MB`);
    expect(rssGrowthMB).toBeLessThan(400);
    s.close();
  }, 60_000);

  it('a gzip of 10 GiB of newlines stops after 64 MiB of blank lines with a message that says so (not "empty file")', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'newlines.gz');
    gzipRepeat(file, '', Buffer.alloc(MiB, 0x0a), 10 * 1024);
    const s = openStore(path.join(dir, 'db.sqlite'));
    const { err, seconds } = await importError(s, file);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/got only whitespace in the first 64 MiB after gunzip \(stopped reading there/);
    console.log(`10 GiB of newlines (gzip ${(fs.statSync(file).size / 1e6).toFixed(1)} MB): refused in ${seconds.toFixed(2)} s`);
    // the same padding after valid rows: refused with the line where the blank run starts
    const file2 = path.join(dir, 'rows-then-newlines.gz');
    gzipRepeat(file2, `${good(1)}\n${good(2)}\n`, Buffer.alloc(MiB, 0x0a), 10 * 1024, good(3));
    const e2 = await importError(s, file2);
    expect(e2.err.details.line).toBe(3);
    expect(e2.err.message).toMatch(/line 3: expected at most 64 MiB of consecutive blank lines/);
    // a small whitespace-only gzip is "only whitespace", a gzip of nothing "an empty file after gunzip"
    fs.writeFileSync(path.join(dir, 'ws.gz'), zlib.gzipSync(Buffer.from('\n\n \n')));
    expect((await importError(s, path.join(dir, 'ws.gz'))).err.message).toMatch(/got only whitespace after gunzip$/);
    fs.writeFileSync(path.join(dir, 'nothing.gz'), zlib.gzipSync(Buffer.alloc(0)));
    expect((await importError(s, path.join(dir, 'nothing.gz'))).err.message).toMatch(/an empty file after gunzip/);
    s.close();
  }, 60_000);

  it('a text file with a few invalid UTF-8 sequences and a NUL in its first 8 KB is read line by line, each bad line reported', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'few-bad.jsonl');
    const lines: Buffer[] = [];
    for (let i = 1; i <= 40; i++) {
      let l = Buffer.from(good(i));
      if (i === 3 || i === 7 || i === 11) l = Buffer.concat([l.subarray(0, 15), Buffer.from([0xc3, 0x28]), l.subarray(15)]);
      if (i === 5) l = Buffer.concat([l.subarray(0, 14), Buffer.from([0x00]), l.subarray(14)]);
      lines.push(l, Buffer.from('\n'));
    }
    fs.writeFileSync(file, Buffer.concat(lines));
    const s = openStore(':memory:');
    const r = await importFile(s, file, { dataset: 'x' });
    expect(r.imported).toBe(36);
    expect(r.skipped.map((x) => x.line)).toEqual([3, 5, 7, 11]);
    expect(r.skipped[0]!.reason).toBe('invalid UTF-8 at byte 16 of the line: expected UTF-8 text');
    expect(r.skipped[1]!.reason).toMatch(/broken JSON/);
    s.close();
  });

  it('binary data is still refused whole: random bytes and UTF-16 text; the reason says what was found', async () => {
    expect(binaryReason(randomBytes(8192))).toMatch(/invalid UTF-8 sequences/);
    expect(binaryReason(Buffer.from(good(1) + '\n' + good(2), 'utf16le'))).toMatch(/NUL bytes/);
    expect(binaryReason(Buffer.from(good(1) + '\u00e9\u20ac\n'))).toBeNull();
    const dir = tempDir();
    const file = path.join(dir, 'utf16.jsonl');
    fs.writeFileSync(file, Buffer.from(Array.from({ length: 20 }, (_, i) => good(i)).join('\n'), 'utf16le'));
    const s = openStore(':memory:');
    const { err } = await importError(s, file);
    expect(err.message).toMatch(/got binary data \(\d+ NUL bytes in the first/);
    s.close();
  });

  it('lone surrogates (\\ud800 escapes) are reported per row (lenient) or refuse the file (strict), never stored; pairs are fine', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'surrogates.jsonl');
    fs.writeFileSync(
      file,
      [
        good(1),
        '{"prompt": "p", "chosen": "bad \\ud800 half", "rejected": "r"}',
        '{"prompt": "emoji \\ud83d\\ude00 ok", "chosen": "c", "rejected": "r"}',
        '{"prompt": "p2", "chosen": "c", "rejected": "r", "meta": {"x": ["\\udc00"]}}',
        '{"prompt": "p3", "chosen": "c", "rejected": "literal \\\\ud800 text"}',
      ].join('\n') + '\n',
    );
    const s = openStore(':memory:');
    const r = await importFile(s, file, { dataset: 'x' });
    expect(r.imported).toBe(3);
    expect(r.skipped.map((x) => x.line)).toEqual([2, 4]);
    expect(r.skipped[0]!.reason).toMatch(/^field "chosen": lone surrogate \\ud800 .*cannot be stored as UTF-8: expected Unicode text/);
    expect(r.skipped[1]!.reason).toMatch(/^field "meta\.x\[0\]": lone surrogate \\udc00/);
    const texts = s.db.prepare('SELECT prompt || chosen || rejected FROM pairs').pluck().all() as string[];
    expect(texts.some((t) => t.includes('\ufffd'))).toBe(false);
    expect(texts).toContain('emoji \u{1F600} okcr');
    expect(texts).toContain('p3cliteral \\ud800 text');
    let err: unknown;
    try {
      await importFile(s, file, { dataset: 'strict', strict: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).details.line).toBe(2);
    expect(s.datasets.byName('strict')).toBeUndefined();
    s.close();
  });
});

describe('sparserm import --max-line-bytes', () => {
  afterEach(() => {
    process.exitCode = 0;
  });
  const run = runCli;

  it('takes a size with units; a longer line exits 2 naming the file and the line; a bad size is refused', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'db.sqlite');
    const file = path.join(dir, 'long.jsonl');
    fs.writeFileSync(file, good(1) + '\n' + JSON.stringify({ prompt: 'p', chosen: 'x'.repeat(3000), rejected: 'r' }) + '\n');
    const refused = await run('import', file, '--dataset', 'x', '--max-line-bytes', '2KiB', '--db', db);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain(`error: ${file}, line 2: expected a line of at most 2 KiB (raise the limit with --max-line-bytes`);
    const ok = await run('import', file, '--dataset', 'x', '--max-line-bytes', '4k', '--db', db, '--json');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out).imported).toBe(2);
    const bad = await run('import', file, '--dataset', 'y', '--max-line-bytes', 'lots', '--db', db);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/field "--max-line-bytes": expected a size from 1 byte to 512 MiB/);
  });
});
