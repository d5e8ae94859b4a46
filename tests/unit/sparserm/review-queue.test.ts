/**
 * Issue 14 item 2: the active review queue. Ranking rule on hand-made margins (smallest |margin| band first,
 * disagreement between the current and the previous model first within a band), and on a store: decided pairs
 * leave the queue, a new scoring run re-ranks it.
 */
import { describe, expect, it } from 'vitest';

import { openStore, type Store } from '../../../main/engine/store';
import { rankQueue, reviewQueue } from '../../../main/engine/sparserm/review-queue';
import { createHandlers } from '../../../main/api/handlers';
import { contract } from '../../../main/api/contract';

describe('rankQueue', () => {
  it('orders by |margin| alone when there is no previous model', () => {
    const q = rankQueue([
      { pairId: 1, margin: 2, previousMargin: null },
      { pairId: 2, margin: -0.1, previousMargin: null },
      { pairId: 3, margin: 0.5, previousMargin: null },
      { pairId: 4, margin: -1, previousMargin: null },
    ], 0.25);
    expect(q.map((x) => x.pairId)).toEqual([2, 3, 4, 1]);
    expect(q.map((x) => x.band)).toEqual([0, 1, 2, 3]);
    expect(q.every((x) => !x.disagree)).toBe(true);
    expect(q[0].reasons[0]).toMatch(/\|margin\| 0\.100: among the 25 % least certain/);
  });

  it('puts pairs the two models disagree on first within a band', () => {
    // band = 50 %: pairs 1-2 in band 0, 3-4 in band 1
    const q = rankQueue([
      { pairId: 1, margin: 0.1, previousMargin: 0.4 },
      { pairId: 2, margin: 0.2, previousMargin: -0.3 },
      { pairId: 3, margin: -0.5, previousMargin: -2 },
      { pairId: 4, margin: 0.9, previousMargin: -0.2 },
    ], 0.5);
    expect(q.map((x) => x.pairId)).toEqual([2, 1, 4, 3]);
    expect(q[0].disagree).toBe(true);
    expect(q[0].reasons[1]).toMatch(/other way \(margin -0\.300 → 0\.200\)/);
    expect(q[1].disagree).toBe(false);
  });
});

function seed(store: Store, n: number) {
  const ds = store.datasets.create('q');
  for (let i = 0; i < n; i++) store.pairs.insert(ds.id, null, { line: i + 1, source: null, externalId: null, prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}`, contentHash: `h${i}` });
  for (const id of ['rm-a', 'rm-b']) store.models.upsertRewardModel({ id, name: id, folder: `/nonexistent/${id}`, manifestHash: id });
  return { ds, ids: store.pairs.ids({ datasetId: ds.id }) };
}

function scoreRun(store: Store, datasetId: number, rm: string, margins: Map<number, number>) {
  const run = store.runs.create({ datasetId, rewardModelId: rm });
  store.runs.addScores(run.id, [...margins].map(([pairId, m]) => ({ pairId, scoreChosen: m, scoreRejected: 0 })));
  store.runs.finish(run.id, 'done');
  return run.id;
}

describe('reviewQueue on a store', () => {
  it('is empty before any scoring run', () => {
    const store = openStore(':memory:');
    const { ds } = seed(store, 3);
    expect(reviewQueue(store, ds.id)).toMatchObject({ runId: null, total: 0, items: [] });
    store.close();
  });

  it('serves undecided pairs least certain first; decisions remove them; a rescore re-ranks', () => {
    const store = openStore(':memory:');
    const { ds, ids } = seed(store, 40);
    const first = scoreRun(store, ds.id, 'rm-a', new Map(ids.map((id, i) => [id, (i + 1) * 0.1])));
    let q = reviewQueue(store, ds.id, { limit: 5 });
    expect(q).toMatchObject({ runId: first, rewardModelId: 'rm-a', previousRunId: null, total: 40 });
    expect(q.items.map((x) => x.pairId)).toEqual(ids.slice(0, 5));

    store.decisions.decide({ datasetId: ds.id, ids: [ids[0], ids[2]] }, 'swap', { actor: 't' });
    store.decisions.decide({ datasetId: ds.id, ids: [ids[1]] }, 'drop', { actor: 't' });
    q = reviewQueue(store, ds.id, { limit: 5 });
    expect(q.total).toBe(37);
    expect(q.items.map((x) => x.pairId)).toEqual(ids.slice(3, 8));

    // The retrained model is unsure about the last pairs and flips the sign of pair 39.
    const second = scoreRun(store, ds.id, 'rm-b', new Map(ids.map((id, i) => [id, i === 39 ? -0.45 : 4 - i * 0.1])));
    q = reviewQueue(store, ds.id, { limit: 3 });
    expect(q).toMatchObject({ runId: second, rewardModelId: 'rm-b', previousRunId: first, previousRewardModelId: 'rm-a', total: 37 });
    // |margins| now: pair 38 → 0.2, 37 → 0.3, 36 → 0.4, 39 → 0.45 (disagrees): bands of 2 pairs (5 % of 37)
    expect(q.items.map((x) => x.pairId)).toEqual([ids[38], ids[37], ids[39]]);
    expect(q.items[2]).toMatchObject({ disagree: true, previousMargin: expect.closeTo(4, 6), margin: expect.closeTo(-0.45, 6) });
    store.close();
  });

  it('refuses a bad limit and an unknown dataset', () => {
    const store = openStore(':memory:');
    const { ds } = seed(store, 2);
    expect(() => reviewQueue(store, ds.id, { limit: 0 })).toThrow(/limit/);
    expect(() => reviewQueue(store, 999)).toThrow();
    store.close();
  });
});

describe('through the API (reviewQueue, curatorAgreement)', () => {
  it('answers with string ids, validated by the contract', async () => {
    const h = createHandlers({ dbPath: ':memory:' });
    try {
      const { ds, ids } = seed(h.store, 10);
      const run = scoreRun(h.store, ds.id, 'rm-a', new Map(ids.map((id, i) => [id, 1 - i * 0.3])));
      h.store.decisions.decide({ datasetId: ds.id, ids: [ids[3]] }, 'keep', { actor: 't' });
      const q = contract.reviewQueue.output.parse(await h.reviewQueue(contract.reviewQueue.input.parse({ datasetId: String(ds.id), limit: 3 })));
      // |1 - 0.3 i|: i = 3 → 0.1 (decided, gone), i = 4 → 0.2, i = 2 → 0.4, i = 5 → 0.5
      expect(q.items.map((x) => x.pairId)).toEqual([ids[4], ids[2], ids[5]].map(String));
      expect(q).toMatchObject({ runId: String(run), total: 9, previousRunId: null });
      expect(q.rule).toBeNull();
      h.store.runs.applyFilter({ datasetId: ds.id, runId: run, rule: 'margin', threshold: 0.25, band: 0.1 });
      expect((await h.reviewQueue({ datasetId: String(ds.id), limit: 1 })).rule).toEqual({ threshold: 0.25, band: 0.1 });
      const a = contract.curatorAgreement.output.parse(await h.curatorAgreement({ datasetId: String(ds.id) }));
      expect(a.generations).toHaveLength(1);
      expect(a.generations[0]).toMatchObject({ generation: 1, rewardModelId: 'rm-a', runId: String(run), decisions: null, sawHoldout: true });
      await expect(h.reviewQueue({ datasetId: '999', limit: 5 })).rejects.toThrow(/999/);
    } finally {
      h.close();
    }
  });
});
