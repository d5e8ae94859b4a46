import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { importFile } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';

describe('import while the curator keeps working', () => {
  it('decisions on other datasets are written (not blocked) while an import is parsing; no staging file is left', async () => {
    const dir = tempDir();
    const dbFile = path.join(dir, 'db.sqlite');
    const s = openStore(dbFile);
    fs.writeFileSync(path.join(dir, 'small.jsonl'), JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
    const small = await importFile(s, path.join(dir, 'small.jsonl'), { dataset: 'small' });
    const pid = s.pairs.ids({ datasetId: small.datasetId })[0]!;
    const big = path.join(dir, 'big.jsonl');
    fs.writeFileSync(big, Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}` })).join('\n'));
    let decidedDuringImport = -1;
    let waitedMs = -1;
    const r = await importFile(s, big, {
      dataset: 'big',
      onProgress: () => {
        if (decidedDuringImport >= 0) return;
        // Another process's connection, as the desktop app beside a CLI import would be.
        const other = openStore(dbFile);
        const t = Date.now();
        decidedDuringImport = other.decisions.decidePair(pid, 'drop', { actor: 'app' }).changed;
        waitedMs = Date.now() - t;
        other.close();
      },
    });
    expect(r.imported).toBe(20_000);
    expect(decidedDuringImport).toBe(1);
    expect(waitedMs).toBeLessThan(5000); // not stuck behind the import's write lock (busy timeout is 10 s)
    expect(s.pairs.get(pid).humanDecision).toBe('drop');
    expect(s.pairs.count({ datasetId: r.datasetId, text: 'p19999' })).toBe(1);
    expect(fs.readdirSync(dir).filter((f) => f.includes('staging'))).toEqual([]);
    s.close();
  });

  it('the copy transaction runs in a worker: this thread keeps serving reads while it is open, and sees the rows only after COMMIT', async () => {
    const dir = tempDir();
    const dbFile = path.join(dir, 'db.sqlite');
    const s = openStore(dbFile);
    fs.writeFileSync(path.join(dir, 'small.jsonl'), JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
    await importFile(s, path.join(dir, 'small.jsonl'), { dataset: 'small' });
    const big = path.join(dir, 'big.jsonl');
    fs.writeFileSync(big, Array.from({ length: 5000 }, (_, i) => JSON.stringify({ prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}` })).join('\n'));
    const marker = path.join(dir, 'in-transaction');
    process.env.SPARSERM_TEST_COMMIT_MARKER = marker;
    process.env.SPARSERM_TEST_COMMIT_HOLD_MS = '1500';
    try {
      const pending = importFile(s, big, { dataset: 'big' });
      // This loop only advances if the event loop is free while the transaction is open.
      const seen = await new Promise<{ bigVisible: boolean; smallPairs: number }>((resolve, reject) => {
        const end = Date.now() + 60_000;
        const t = setInterval(() => {
          if (fs.existsSync(marker)) {
            clearInterval(t);
            resolve({ bigVisible: s.datasets.byName('big') !== undefined, smallPairs: s.pairs.count({ datasetId: s.datasets.byName('small')!.id }) });
          } else if (Date.now() > end) {
            clearInterval(t);
            reject(new Error('the copy transaction never started'));
          }
        }, 20);
      });
      expect(seen).toEqual({ bigVisible: false, smallPairs: 1 });
      const r = await pending;
      expect(r.imported).toBe(5000);
      expect(s.pairs.count({ datasetId: s.datasets.byName('big')!.id })).toBe(5000);
    } finally {
      delete process.env.SPARSERM_TEST_COMMIT_MARKER;
      delete process.env.SPARSERM_TEST_COMMIT_HOLD_MS;
      s.close();
    }
  });
});
