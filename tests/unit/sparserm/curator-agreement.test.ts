/**
 * Issue 14 item 3: accuracy against the curators' decisions on the curator hold-out, per model generation, with n,
 * ties and the 95 % Wilson interval. Scores are hand-made so every count is known; the Wilson interval is checked
 * against the closed form computed here independently.
 */
import { describe, expect, it } from 'vitest';

import { openStore } from '../../../main/engine/store';
import { curatorAgreement } from '../../../main/engine/sparserm/curator-agreement';
import { inCuratorHoldout } from '../../../main/engine/sparserm/decision-labels';

/** Wilson 95 % interval, written out independently of metrics.ts. */
function wilson(k: number, n: number): [number, number] {
  const z = 1.959963984540054;
  const p = k / n;
  const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const h = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [c - h, c + h];
}

describe('curatorAgreement', () => {
  it('per generation: keep wants margin > 0, swap margin < 0; drops, undecided and non-held-out pairs not counted', () => {
    const store = openStore(':memory:');
    const ds = store.datasets.create('ca');
    for (let i = 0; i < 120; i++) store.pairs.insert(ds.id, null, { line: i + 1, source: null, externalId: null, prompt: `p${i}`, chosen: `c${i}`, rejected: `r${i}`, contentHash: `h${i}` });
    const ids = store.pairs.ids({ datasetId: ds.id });
    const held = ids.filter((id) => inCuratorHoldout(id));
    const free = ids.filter((id) => !inCuratorHoldout(id));
    expect(held.length).toBeGreaterThanOrEqual(12);
    const keep = held.slice(0, 6);
    const swap = held.slice(6, 10);
    const drop = held.slice(10, 12);
    store.decisions.decide({ datasetId: ds.id, ids: keep }, 'keep', { actor: 't' });
    store.decisions.decide({ datasetId: ds.id, ids: swap }, 'swap', { actor: 't' });
    store.decisions.decide({ datasetId: ds.id, ids: drop }, 'drop', { actor: 't' });
    store.decisions.decide({ datasetId: ds.id, ids: free.slice(0, 5) }, 'keep', { actor: 't' }); // decided, not held out

    for (const id of ['gen-1', 'gen-2']) store.models.upsertRewardModel({ id, name: id, folder: `/nonexistent/${id}`, manifestHash: id });
    const run = (rm: string, margin: (id: number) => number) => {
      const r = store.runs.create({ datasetId: ds.id, rewardModelId: rm });
      store.runs.addScores(r.id, ids.map((pairId) => ({ pairId, scoreChosen: margin(pairId), scoreRejected: 0 })));
      store.runs.finish(r.id, 'done');
      return r.id;
    };
    // gen 1: +1 everywhere → every keep right (6), every swap wrong; gen 2: right on all but one swap, one tie
    const r1 = run('gen-1', () => 1);
    const r2 = run('gen-2', (id) => (keep.includes(id) ? (id === keep[0] ? 0 : 2) : swap.includes(id) ? (id === swap[0] ? 3 : -2) : 5));
    // a later run of gen 1 is not a new generation
    const r3 = run('gen-1', () => 1);

    const a = curatorAgreement(store, ds.id);
    expect(a.heldOut).toBe(10);
    expect(a.holdOutFraction).toBe(0.2);
    expect(a.generations.map((g) => [g.generation, g.rewardModelId, g.runId])).toEqual([[1, 'gen-1', r3], [2, 'gen-2', r2]]);
    expect(r1).toBeLessThan(r2);
    const [g1, g2] = a.generations;
    expect(g1).toMatchObject({ n: 10, correct: 6, ties: 0, accuracy: 0.6, decisions: null, sawHoldout: true });
    expect(g2).toMatchObject({ n: 10, correct: 8, ties: 1, accuracy: 0.8 });
    for (const [g, k] of [[g1, 6], [g2, 8]] as const) {
      const [lo, hi] = wilson(k, 10);
      expect(g.ci95[0]).toBeCloseTo(lo, 12);
      expect(g.ci95[1]).toBeCloseTo(hi, 12);
    }
    store.close();
  });

  it('no runs → no generations; no decisions → n = 0', () => {
    const store = openStore(':memory:');
    const ds = store.datasets.create('empty');
    store.pairs.insert(ds.id, null, { line: 1, source: null, externalId: null, prompt: 'p', chosen: 'c', rejected: 'r', contentHash: 'h' });
    expect(curatorAgreement(store, ds.id)).toEqual({ holdOutFraction: 0.2, heldOut: 0, generations: [] });
    store.models.upsertRewardModel({ id: 'x', name: 'x', folder: '/nonexistent/x', manifestHash: 'x' });
    const r = store.runs.create({ datasetId: ds.id, rewardModelId: 'x' });
    store.runs.addScores(r.id, [{ pairId: store.pairs.ids({ datasetId: ds.id })[0], scoreChosen: 1, scoreRejected: 0 }]);
    store.runs.finish(r.id, 'done');
    expect(curatorAgreement(store, ds.id).generations[0]).toMatchObject({ n: 0, correct: 0 });
    store.close();
  });
});
