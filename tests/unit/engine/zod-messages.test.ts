import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { readDemoPairs } from '../../../main/engine/demo/demo-data';
import { tempDir } from '../../helpers/paths';
import { runCli } from '../../helpers/cli';

/** Schema errors in files a user hands us read once, in plain words, with file, line and field (issue 9, messages). */
function plain(message: string): void {
  expect(message).not.toMatch(/expected expected|Invalid input|received/);
}

describe('schema errors name file, line and field in plain words', () => {
  const dir = tempDir();
  const file = path.join(dir, 'pairs.jsonl');
  fs.writeFileSync(file, '{"prompt":"p","chosen":"a","rejected":"b"}\n{"prompt":"p","chosen":5,"rejected":"b"}\n');

  it('pairs files (train/score/eval --data)', () => {
    let message = '';
    try {
      readPairsJsonl(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(file);
    expect(message).toMatch(/line 2/);
    expect(message).toMatch(/field "chosen": expected a string, got 5/);
    plain(message);
  });

  it('the demo dataset reader', () => {
    let message = '';
    try {
      readDemoPairs(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(file);
    expect(message).toMatch(/line 1|line 2/);
    plain(message);
  });

  it('sparserm decide --file', async () => {
    const decisions = path.join(dir, 'decisions.jsonl');
    fs.writeFileSync(decisions, '{"pair": "x", "action": 7}\n');
    const good = path.join(dir, 'good.jsonl');
    fs.writeFileSync(good, '{"prompt":"p","chosen":"a","rejected":"b"}\n');
    const db = path.join(dir, 'db.sqlite');
    expect((await runCli('import', good, '--dataset', 'd', '--db', db)).code).toBe(0);
    const r = await runCli('decide', '--dataset', 'd', '--file', decisions, '--db', db);
    expect(r.code).toBe(2);
    expect(r.err).toContain(decisions);
    expect(r.err).toMatch(/line 1, field "pair": expected a number, or a string matching/);
    plain(r.err);
  });
});
