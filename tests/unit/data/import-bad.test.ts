import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import { importFile } from '../../../main/engine/data';
import { InputError } from '../../../main/engine/errors';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';
import { dumpHash } from '../store/helpers';

const good = (i: number) => JSON.stringify({ prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}` });

/** A file with one example of every kind of bad row, and the line numbers where they are. */
function mixedFile(dir: string): { file: string; bad: Record<number, RegExp>; goodCount: number } {
  const lines: (string | Buffer)[] = [
    good(1), // 1
    '{"prompt": "p", "chosen": "c", "rejected": ', // 2 broken JSON
    JSON.stringify({ prompt: 'p', chosen: 'c' }), // 3 missing rejected
    JSON.stringify({ prompt: 'p', chosen: 42, rejected: 'r' }), // 4 wrong type
    Buffer.concat([Buffer.from('{"prompt": "p\xff'.slice(0, 12)), Buffer.from([0xff, 0xfe]), Buffer.from('", "chosen": "c", "rejected": "r"}')]), // 5 invalid UTF-8
    '', // 6 blank: ignored, not an error
    good(1), // 7 duplicate of line 1
    '[1, 2, 3]', // 8 not an object
    JSON.stringify({ prompt: ['not', 'a string'], chosen: 'c', rejected: 'r' }), // 9 wrong prompt type
    good(2), // 10
  ];
  const file = path.join(dir, 'mixed.jsonl');
  fs.writeFileSync(file, Buffer.concat(lines.map((l) => Buffer.concat([typeof l === 'string' ? Buffer.from(l) : l, Buffer.from('\n')]))));
  return {
    file,
    goodCount: 2,
    bad: {
      2: /broken JSON/,
      3: /missing field "rejected": expected a string/,
      4: /field "chosen": expected a string, got number/,
      5: /invalid UTF-8/,
      8: /expected a JSON object, got an array/,
      9: /field "prompt": expected a string .*got an array/,
    },
  };
}

describe('bad input', () => {
  it('lenient: valid rows imported, every bad row reported with its line and a reason naming the field', async () => {
    const dir = tempDir();
    const { file, bad, goodCount } = mixedFile(dir);
    const s = openStore(path.join(dir, 'db.sqlite'));
    const r = await importFile(s, file, { dataset: 'mixed', format: 'standard' });
    expect(r.imported).toBe(goodCount);
    expect(r.duplicates).toBe(1);
    expect(r.skipped.map((x) => x.line)).toEqual(Object.keys(bad).map(Number));
    for (const sk of r.skipped) expect(sk.reason).toMatch(bad[sk.line]!);
    // the report is stored with the import
    const rec = s.datasets.imports(r.datasetId)[0]!;
    expect(rec.report.skipped).toEqual(r.skipped);
    expect(rec.report.duplicateLines).toEqual([{ line: 7, duplicateOf: 1 }]);
    expect(rec.skipped).toBe(6);
    s.close();
  });

  it('strict: the first bad row rejects the whole file and the database is unchanged', async () => {
    const dir = tempDir();
    const { file } = mixedFile(dir);
    const dbFile = path.join(dir, 'db.sqlite');
    const s = openStore(dbFile);
    fs.writeFileSync(path.join(dir, 'ok.jsonl'), [good(10), good(11)].join('\n'));
    await importFile(s, path.join(dir, 'ok.jsonl'), { dataset: 'existing' });
    s.db.pragma('wal_checkpoint(TRUNCATE)');
    const before = dumpHash(dbFile);
    const srcBefore = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    let err: unknown;
    try {
      await importFile(s, file, { dataset: 'mixed', strict: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).details).toMatchObject({ file, line: 2 });
    expect((err as Error).message).toMatch(/strict.*broken JSON/);
    // appending to an existing dataset in strict mode is rolled back too
    await expect(importFile(s, file, { dataset: 'existing', strict: true })).rejects.toThrow(InputError);
    expect(dumpHash(dbFile)).toBe(before);
    expect(s.datasets.byName('mixed')).toBeUndefined();
    expect(createHash('sha256').update(fs.readFileSync(file)).digest('hex')).toBe(srcBefore);
    s.close();
  });

  const fileErrors: [string, (dir: string) => string, RegExp][] = [
    ['an empty file', (d) => (fs.writeFileSync(path.join(d, 'empty.jsonl'), ''), path.join(d, 'empty.jsonl')), /expected a non-empty file, got an empty file/],
    ['only whitespace', (d) => (fs.writeFileSync(path.join(d, 'ws.jsonl'), '\n\n  \n'), path.join(d, 'ws.jsonl')), /only whitespace/],
    ['random bytes', (d) => (fs.writeFileSync(path.join(d, 'rand.jsonl'), randomBytes(4096)), path.join(d, 'rand.jsonl')), /binary data/],
    ['a 0-byte .gz', (d) => (fs.writeFileSync(path.join(d, 'zero.jsonl.gz'), ''), path.join(d, 'zero.jsonl.gz')), /empty file/],
    ['a gzip of nothing', (d) => (fs.writeFileSync(path.join(d, 'nothing.gz'), zlib.gzipSync(Buffer.alloc(0))), path.join(d, 'nothing.gz')), /empty file after gunzip/],
    ['a truncated gzip', (d) => (fs.writeFileSync(path.join(d, 'trunc.gz'), zlib.gzipSync(Buffer.from(Array.from({ length: 2000 }, (_, i) => good(i)).join('\n'))).subarray(0, 600)), path.join(d, 'trunc.gz')), /complete, valid gzip stream/],
    ['a folder', (d) => d, /expected a file .*got a folder/],
    ['a missing file', (d) => path.join(d, 'nope.jsonl'), /expected an existing file/],
    ['JSON without preference fields', (d) => (fs.writeFileSync(path.join(d, 'other.jsonl'), '{"text": "hello"}\n{"text": "x"}\n'), path.join(d, 'other.jsonl')), /expected preference pairs/],
    ['all rows invalid', (d) => (fs.writeFileSync(path.join(d, 'allbad.jsonl'), '{"prompt":"p","chosen":1,"rejected":"r"}\n'), path.join(d, 'allbad.jsonl')), /at least one valid preference pair.*line 1/],
  ];
  for (const [what, make, re] of fileErrors) {
    it(`${what}: an InputError naming the file; nothing created`, async () => {
      const dir = tempDir();
      const file = make(dir);
      const s = openStore(path.join(tempDir(), 'db.sqlite'));
      let err: unknown;
      try {
        await importFile(s, file, { dataset: 'x', format: what === 'all rows invalid' ? 'standard' : 'auto' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toContain(path.resolve(file));
      expect((err as Error).message).toMatch(re);
      expect(s.datasets.list()).toHaveLength(0);
      s.close();
    });
  }
});

describe('containers', () => {
  const rows = Array.from({ length: 25 }, (_, i) => ({ prompt: `p${i} "quoted" [brackets] {braces}, commas`, chosen: `c${i} é ü 漢字 😀`, rejected: `r${i}\n\\ backslash` }));

  it('JSON array (pretty-printed), gzip by magic bytes whatever the extension, BOM and CRLF', async () => {
    const dir = tempDir();
    const s = openStore(':memory:');
    const variants: [string, Buffer][] = [
      ['array.json', Buffer.from(JSON.stringify(rows, null, 2))],
      ['array-compact.json', Buffer.from(JSON.stringify(rows))],
      ['gz-without-extension.jsonl', zlib.gzipSync(Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n')))],
      ['array.json.gz', zlib.gzipSync(Buffer.from(JSON.stringify(rows)))],
      ['bom-crlf.jsonl', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(rows.map((r) => JSON.stringify(r)).join('\r\n') + '\r\n')])],
    ];
    for (const [name, bytes] of variants) {
      fs.writeFileSync(path.join(dir, name), bytes);
      const r = await importFile(s, path.join(dir, name), { dataset: name });
      expect(r.imported, name).toBe(25);
      expect(r.skippedTotal, name).toBe(0);
      const got = s.pairs.list({ datasetId: r.datasetId, limit: 100 }).items.map((p) => ({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected }));
      expect(got, name).toEqual(rows);
      expect(r.gzip, name).toBe(name.includes('gz'));
    }
  });

  it('JSON array: bad elements are reported by index, a truncated array is reported', async () => {
    const dir = tempDir();
    const s = openStore(':memory:');
    const f = path.join(dir, 'a.json');
    fs.writeFileSync(f, `[${JSON.stringify(rows[0])}, {"prompt": 1, "chosen": "c", "rejected": "r"}, ${JSON.stringify(rows[1])}, {"chosen": "c"`);
    const r = await importFile(s, f, { dataset: 'a', format: 'standard' });
    expect(r.imported).toBe(2);
    expect(r.skipped.map((x) => x.line)).toEqual([2, 4]);
    expect(r.skipped[0]!.reason).toMatch(/field "prompt"/);
    expect(r.skipped[1]!.reason).toMatch(/truncated JSON array/);
  });
});
