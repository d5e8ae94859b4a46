/** Seeds a store through its public API with real TruthfulQA pairs and given scores (for API-layer tests). */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { Store } from '../../../main/engine/store';
import { dataDir } from '../../helpers/paths';

export function truthfulQa(n: number): { prompt: string; chosen: string; rejected: string; source: string }[] {
  const lines = fs.readFileSync(path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), 'utf8').split('\n').filter(Boolean);
  return lines.slice(0, n).map((l) => JSON.parse(l));
}

export function seed(store: Store, opts: { n: number; margins?: (i: number) => number; name?: string; demo?: boolean }) {
  const ds = store.datasets.create(opts.name ?? 'tqa', { demo: opts.demo ?? false });
  const rows = truthfulQa(opts.n);
  const ids: number[] = [];
  store.transaction(() => {
    rows.forEach((r, i) => {
      const id = store.pairs.insert(ds.id, null, {
        line: i + 1,
        source: i % 3 === 0 ? 'alt' : r.source,
        externalId: null,
        prompt: r.prompt,
        chosen: r.chosen,
        rejected: r.rejected,
        contentHash: crypto.createHash('sha256').update(`${r.prompt}\0${r.chosen}\0${r.rejected}`).digest('hex'),
      });
      if (id !== null) ids.push(id);
    });
  });
  let runId: number | null = null;
  if (opts.margins) {
    store.models.upsertRewardModel({ id: 'rm-test', name: 'test rm', folder: '/tmp/none', manifestHash: 'h', demo: opts.demo ?? false });
    const run = store.runs.create({ datasetId: ds.id, rewardModelId: 'rm-test' });
    runId = run.id;
    store.runs.addScores(
      run.id,
      ids.map((pairId, i) => ({ pairId, scoreChosen: opts.margins!(i) / 2, scoreRejected: -opts.margins!(i) / 2, latents: [{ latent: 7 + (i % 2), side: 'chosen' as const, activation: 1, contribution: 0.5 }] })),
    );
    store.runs.finish(run.id, 'done');
    store.runs.applyFilter({ datasetId: ds.id, runId: run.id, rule: 'paper' });
  }
  return { datasetId: ds.id, ids, runId };
}
