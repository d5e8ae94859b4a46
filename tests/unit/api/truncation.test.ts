/**
 * Length policy through the API: a scored pair's truncation (scores.truncation_json, migration 6) reaches the
 * contract's PairDetail.truncation (validated by dispatch against the contract), null when nothing was cut, and
 * becomes the Review badge text.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { dispatch } from '../../../main/api/dispatch';
import type { EngineOps } from '../../../main/api/engine-ops';
import type { PairDetail } from '../../../main/api/contract';
import { seed, truthfulQa } from './seed';
import { ensureDemoKit } from '../../../main/engine/demo/kit';
import { readRewardModel } from '../../../main/engine/sparserm/service';
import { tempDir } from '../../helpers/paths';
import { truncationBadges } from '../../../renderer/src/truncation';

const noEngine = { explanation: () => null, listRuns: () => [] } as unknown as EngineOps;

/** getPair through dispatch (input and output validated against the contract). */
async function getPair(h: Handlers, pairId: number): Promise<PairDetail> {
  const r = await dispatch(h, 'getPair', { pairId: String(pairId) });
  expect(r.ok).toBe(true);
  return (r as { value: PairDetail }).value;
}

describe('PairDetail.truncation', () => {
  let h: Handlers;
  let ids: number[];
  let runId: number;

  beforeEach(() => {
    h = createHandlers({ dbPath: ':memory:', actor: 'tester', engine: () => noEngine });
    const s = seed(h.store, { n: 6, margins: (i) => i - 2 });
    ids = s.ids;
    runId = s.runId!;
  });
  afterEach(() => h.close());

  it('the scores table has the column; a cut pair carries it through getPair, an uncut one gets null', async () => {
    const cols = (h.store.db.prepare('PRAGMA table_info(scores)').all() as Array<{ name: string }>).map((c) => c.name);
    expect(cols).toContain('truncation_json');

    const truncation = { chosen: { prompt: 120, response: 0, original: 1144 }, rejected: { prompt: 120, response: 37, original: 1181 } };
    const before = h.store.runs.score(runId, ids[1])!;
    h.store.runs.addScores(runId, [{ pairId: ids[1], scoreChosen: before.scoreChosen, scoreRejected: before.scoreRejected, truncation }]);
    expect(h.store.runs.score(runId, ids[1])!.truncation).toEqual(truncation);
    expect(h.store.runs.score(runId, ids[2])!.truncation).toBeNull();

    const cut = await getPair(h, ids[1]);
    expect(cut.truncation).toEqual(truncation);
    const whole = await getPair(h, ids[2]);
    expect(whole.truncation).toBeNull();

    // What Review's pair view shows for them.
    expect(truncationBadges(cut.truncation).map((b) => b.text)).toEqual([
      'truncated (chosen): 120 tokens cut from prompt / 0 from response',
      'truncated (rejected): 120 tokens cut from prompt / 37 from response',
    ]);
    expect(truncationBadges(whole.truncation)).toEqual([]);
  });

  it('a stored truncation that is not the expected shape is refused when read, naming the column', () => {
    h.store.db.prepare('UPDATE scores SET truncation_json = ? WHERE run_id = ? AND pair_id = ?').run('{"chosen":{"prompt":-1}}', runId, ids[0]);
    expect(() => h.store.runs.score(runId, ids[0])).toThrow(/truncation_json/);
  });
});

describe('train op: maxTokens', () => {
  it('is refused above max_position_embeddings before any job starts, and recorded in the manifest otherwise', async () => {
    const home = tempDir('sparserm-api-maxtok-');
    process.env.SPARSERM_HOME = home;
    const kit = await ensureDemoKit();
    const h = createHandlers({ dbPath: path.join(home, 'studio.db'), actor: 'tester' });
    try {
      const checkpointId = (await h.addCheckpoint({ path: kit.checkpoint })).id;
      const saeId = (await h.addSae({ path: kit.sae })).id;
      const file = path.join(home, 'pairs.jsonl');
      fs.writeFileSync(file, truthfulQa(30).map((r) => JSON.stringify(r)).join('\n') + '\n');
      let job = await h.getJob({ jobId: (await h.importDataset({ path: file, name: 'tqa-30' })).jobId });
      while (job.state === 'running' || job.state === 'queued') job = await new Promise((r) => setTimeout(() => r(h.getJob({ jobId: job.id })), 50));
      const datasetId = (await h.listDatasets({})).datasets.find((d) => d.name === 'tqa-30')!.id;

      const refused = await dispatch(h, 'train', { datasetId, checkpointId, saeId, layer: kit.layer, k: 8, maxTokens: 9000 });
      expect(refused.ok).toBe(false);
      expect(JSON.stringify(refused)).toMatch(/config\.json, field \\"maxTokens\\": expected at most the checkpoint's max_position_embeddings \(8192\), got 9000/);
      expect((await h.listJobs({})).jobs.filter((j) => j.kind === 'train')).toEqual([]);

      const started = await dispatch(h, 'train', { datasetId, checkpointId, saeId, layer: kit.layer, k: 8, maxTokens: 40 });
      expect(started.ok).toBe(true);
      let t = await h.getJob({ jobId: (started as { value: { jobId: string } }).value.jobId });
      while (t.state === 'running' || t.state === 'queued') t = await new Promise((r) => setTimeout(() => r(h.getJob({ jobId: t.id })), 100));
      expect(t.state).toBe('done');
      const rm = h.store.models.rewardModels()[0];
      expect((await readRewardModel(rm.folder)).manifest.maxTokens).toBe(40);
    } finally {
      h.close();
    }
  }, 300_000);
});
