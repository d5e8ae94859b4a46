/**
 * compareModels over two stored scoring runs: agreement counted pair by pair here, correlations against textbook
 * formulas (Pearson as (E[xy] − E[x]E[y]) / (σx σy); Spearman as 1 − 6Σd² / (n(n² − 1)) on tie-free data, and
 * against hand-ranked ties), and latent differences against a direct per-pair sum.
 */
import { describe, expect, it } from 'vitest';

import { averageRanks, compareModels, disagreementIds, pearson, spearman } from '../../../main/engine/sparserm/compare-models';
import { mulberry32 } from '../../../main/engine/sparserm/rng';
import { openStore, type Store } from '../../../main/engine/store';
import { seedPairs } from '../store/helpers';

function addRun(store: Store, datasetId: number, rm: string, sae: string | null, margin: (k: number) => number, latents: (k: number) => { latent: number; c: number }[]): number {
  store.models.upsertRewardModel({ id: rm, name: rm, folder: `/tmp/${rm}`, manifestHash: `h-${rm}`, saeId: sae });
  const run = store.runs.create({ datasetId, rewardModelId: rm });
  const ids = store.pairs.ids({ datasetId });
  store.runs.addScores(
    run.id,
    ids.map((pairId, k) => ({ pairId, scoreChosen: margin(k), scoreRejected: 0, latents: latents(k).map((l) => ({ latent: l.latent, side: 'diff' as const, contribution: l.c })) })),
  );
  store.runs.finish(run.id);
  return run.id;
}

describe('correlations', () => {
  it('Pearson and Spearman match the textbook formulas', () => {
    const rand = mulberry32(4);
    const x = Array.from({ length: 300 }, () => rand() * 4 - 2);
    const y = x.map((v) => 0.6 * v + 0.8 * (rand() - 0.5) + (v > 1 ? v * v : 0));
    const n = x.length;
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / n;
    const exy = mean(x.map((v, i) => v * y[i]));
    const sx = Math.sqrt(mean(x.map((v) => v * v)) - mean(x) ** 2);
    const sy = Math.sqrt(mean(y.map((v) => v * v)) - mean(y) ** 2);
    expect(pearson(x, y)).toBeCloseTo((exy - mean(x) * mean(y)) / (sx * sy), 10);
    const rank = (a: number[]) => a.map((v) => a.filter((w) => w < v).length + 1);
    const rx = rank(x);
    const ry = rank(y);
    const d2 = rx.reduce((s, r, i) => s + (r - ry[i]) ** 2, 0);
    expect(spearman(x, y)).toBeCloseTo(1 - (6 * d2) / (n * (n * n - 1)), 10);
    expect(Array.from(averageRanks([3, 1, 3, 2, 3]))).toEqual([4, 1, 4, 2, 4]);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
  });
});

describe('compareModels', () => {
  it('counts agreement, lists disagreements and the latents whose contributions differ most', () => {
    const store = openStore(':memory:');
    const ds = seedPairs(store, 'cmp', 120);
    const rand = mulberry32(9);
    const mA = Array.from({ length: 120 }, () => rand() * 2 - 1);
    const mB = mA.map((v, k) => (k % 7 === 0 ? -v : v + 0.1 * (rand() - 0.5)));
    // Latent 5 drives A, latent 9 drives B; latent 2 is the same in both.
    const runA = addRun(store, ds, 'rm-a', 'sae-1', (k) => mA[k], (k) => [{ latent: 5, c: mA[k] }, { latent: 2, c: 0.1 }]);
    const runB = addRun(store, ds, 'rm-b', 'sae-1', (k) => mB[k], (k) => [{ latent: 9, c: mB[k] }, { latent: 2, c: 0.1 }]);
    const c = compareModels({ store, datasetId: ds, modelA: 'rm-a', modelB: 'rm-b' });
    expect(c.runA).toBe(runA);
    expect(c.runB).toBe(runB);
    expect(c.n).toBe(120);
    const ids = store.pairs.ids({ datasetId: ds });
    const dis = ids.filter((_, k) => mA[k] >= 0 !== mB[k] >= 0);
    expect(c.agree).toBe(120 - dis.length);
    expect(c.agreement).toBeCloseTo((120 - dis.length) / 120, 12);
    expect(c.ci95[0]).toBeLessThan(c.agreement);
    expect(c.ci95[1]).toBeGreaterThan(c.agreement);
    expect(c.disagreements.total).toBe(dis.length);
    expect(c.disagreements.items.map((d) => d.pairId).sort((a, b) => a - b)).toEqual(dis);
    expect(disagreementIds(store, runA, runB)).toEqual(dis);
    expect(c.table.keepKeep + c.table.dropDrop).toBe(c.agree);
    expect(c.pearson).toBeCloseTo(pearson(mA, mB), 5);
    expect(c.sameSae).toBe(true);
    const meanAbs = (f: (k: number) => number) => ids.reduce((s, _, k) => s + Math.abs(f(k)), 0) / 120;
    const top = c.latents.slice(0, 2).map((l) => l.latent).sort();
    expect(top).toEqual([5, 9]);
    expect(c.latents.find((l) => l.latent === 5)!.meanAbsDiff).toBeCloseTo(meanAbs((k) => mA[k]), 6);
    // Identical contributions differ by 0: not listed.
    expect(c.latents.find((l) => l.latent === 2)).toBeUndefined();
    expect(c.perModel.a[0].latent).toBe(5);
    expect(c.scatter).toHaveLength(120);
    store.close();
  });

  it('with different SAEs compares per model only, and refuses a model with no scoring run', () => {
    const store = openStore(':memory:');
    const ds = seedPairs(store, 'cmp2', 10);
    addRun(store, ds, 'rm-a', 'sae-1', (k) => k - 5, () => [{ latent: 1, c: 1 }]);
    addRun(store, ds, 'rm-b', 'sae-2', (k) => 5 - k, () => [{ latent: 1, c: -1 }]);
    const c = compareModels({ store, datasetId: ds, modelA: 'rm-a', modelB: 'rm-b' });
    expect(c.sameSae).toBe(false);
    expect(c.latents).toEqual([]);
    expect(c.perModel.b[0]).toMatchObject({ latent: 1, meanAbs: 1, mean: -1 });
    expect(c.spearman).toBeCloseTo(-1, 12);
    store.models.upsertRewardModel({ id: 'rm-c', name: 'c', folder: '/tmp/c', manifestHash: 'h' });
    expect(() => compareModels({ store, datasetId: ds, modelA: 'rm-a', modelB: 'rm-c' })).toThrow(/scoring run of "rm-c"/);
    expect(() => compareModels({ store, datasetId: ds, modelA: 'rm-a', modelB: 'rm-a' })).toThrow(/other than modelA/);
    store.close();
  });
});

describe('API: compareModels, promptGroup and the pair-set review filters', () => {
  it('answers the comparison, scores a model with no run as a job, and filters Review by group and pair ids', async () => {
    const { createHandlers } = await import('../../../main/api/handlers');
    const started: { datasetId: number; rewardModelId: string }[] = [];
    const engine = { explanation: () => null, listRuns: () => [], startScore: (i: { datasetId: number; rewardModelId: string }) => (started.push(i), 'job-x') };
    const h = createHandlers({ dbPath: ':memory:', actor: 't', engine: () => engine as never });
    try {
      const ds = seedPairs(h.store, 'api', 30);
      const mA = Array.from({ length: 30 }, (_, k) => (k % 3) - 1);
      const mB = Array.from({ length: 30 }, (_, k) => (k % 4) - 1.5);
      addRun(h.store, ds, 'rm-a', 'sae-1', (k) => mA[k], () => [{ latent: 1, c: 1 }]);
      addRun(h.store, ds, 'rm-b', 'sae-1', (k) => mB[k], () => [{ latent: 1, c: 2 }]);
      const r = await h.compareModels({ datasetId: String(ds), modelA: 'rm-a', modelB: 'rm-b' });
      expect(r.status).toBe('ready');
      const engineSide = compareModels({ store: h.store, datasetId: ds, modelA: 'rm-a', modelB: 'rm-b' });
      expect(r.comparison).toMatchObject({ n: 30, agree: engineSide.agree, agreement: engineSide.agreement });
      expect(r.comparison!.latents[0]).toMatchObject({ latent: 1, meanAbsDiff: 1, label: null });
      // The disagreeing pairs as a Review filter.
      const page = await h.queryPairs({ datasetId: String(ds), filter: { decision: 'any', verdict: 'any', pairIds: r.comparison!.disagreements.pairIds }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 100 });
      expect(page.total).toBe(r.comparison!.disagreements.total);
      // A model that never scored the dataset: a score job is started and the answer says so.
      h.store.models.upsertRewardModel({ id: 'rm-c', name: 'c', folder: '/tmp/c', manifestHash: 'c' });
      const s = await h.compareModels({ datasetId: String(ds), modelA: 'rm-a', modelB: 'rm-c' });
      expect(s).toEqual({ status: 'scoring', jobIds: ['job-x'], comparison: null });
      expect(started).toEqual([{ datasetId: ds, rewardModelId: 'rm-c' }]);
      // seedPairs prompts "question number i about apples|oranges": distinct texts, so each pair is its own group.
      const ids = h.store.pairs.ids({ datasetId: ds });
      const g = await h.promptGroup({ pairId: String(ids[3]) });
      expect(g).toMatchObject({ groupId: String(ids[3]), threshold: 0.8 });
      const inGroup = await h.queryPairs({ datasetId: String(ds), filter: { decision: 'any', verdict: 'any', promptGroup: g.groupId! }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 100 });
      expect(inGroup.rows.map((x) => x.id)).toEqual(g.members.map((m) => m.id));
    } finally {
      h.close();
    }
  });
});
