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
});
