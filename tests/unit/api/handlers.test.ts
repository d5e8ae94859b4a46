import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { dispatch } from '../../../main/api/dispatch';
import type { EngineOps } from '../../../main/api/engine-ops';
import { seed } from './seed';

// The store-backed operations need no model: explanations and runs come from the SparseRM engine (tested there).
const noEngine = { explanation: () => null, listRuns: () => [] } as unknown as EngineOps;

describe('API handlers over the store', () => {
  let h: Handlers;
  let datasetId: string;
  let ids: number[];
  // margins: pair i gets (i − 10) / 4, so pairs 0..9 are negative (drop), 10.. positive (keep)
  const margin = (i: number) => (i - 10) / 4;

  beforeEach(() => {
    h = createHandlers({ dbPath: ':memory:', actor: 'tester', engine: () => noEngine });
    const s = seed(h.store, { n: 30, margins: margin });
    datasetId = String(s.datasetId);
    ids = s.ids;
  });
  afterEach(() => h.close());

  it('lists datasets with effective-decision counts', async () => {
    const { datasets } = await h.listDatasets({});
    expect(datasets).toHaveLength(1);
    expect(datasets[0].counts).toMatchObject({ total: 30, scored: 30, keep: 20, drop: 10, swap: 0, undecided: 0, humanDecided: 0 });
    expect(datasets[0].sources.sort()).toEqual(['alt', 'truthfulqa']);
  });

  it('pages, filters and sorts pairs; scores come from the current run', async () => {
    const page = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'drop' }, sort: { by: 'margin', dir: 'asc' }, offset: 0, limit: 4 });
    expect(page.total).toBe(10);
    expect(page.rows.map((r) => r.margin)).toEqual([0, 1, 2, 3].map(margin));
    expect(page.rows[0].scoreChosen! - page.rows[0].scoreRejected!).toBeCloseTo(margin(0), 9);
    expect(page.rows.every((r) => r.verdict === 'drop' && r.decision === null)).toBe(true);
    const second = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'drop' }, sort: { by: 'margin', dir: 'asc' }, offset: 4, limit: 4 });
    expect(second.rows.map((r) => r.margin)).toEqual([4, 5, 6, 7].map(margin));
    const text = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any', search: 'watermelon' }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 10 });
    expect(text.total).toBe(1);
    expect(text.rows[0].prompt).toMatch(/watermelon/);
    const src = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any', source: 'alt' }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 100 });
    expect(src.total).toBe(10);
    const lat = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any', latent: 8 }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 100 });
    expect(lat.total).toBe(15);
    const doubt = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'doubt', dir: 'asc' }, offset: 0, limit: 1 });
    expect(doubt.rows[0].margin).toBe(0);
  });

  it('sorts pairs by decision (drop, swap, uncertain, keep, undecided) and by source, page after page', async () => {
    await h.decide({ pairId: String(ids[25]), decision: 'swap' }); // keep verdict → swap
    await h.decide({ pairId: String(ids[4]), decision: 'keep' }); // drop verdict → keep
    const all = async (by: 'decision' | 'source', dir: 'asc' | 'desc') => {
      const rows = [];
      for (let offset = 0; offset < 30; offset += 7) {
        const page = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any' }, sort: { by, dir }, offset, limit: 7 });
        expect(page.total).toBe(30);
        rows.push(...page.rows);
      }
      expect(new Set(rows.map((r) => r.id)).size).toBe(30);
      return rows;
    };
    const order = ['drop', 'swap', 'uncertain', 'keep', 'undecided'];
    const ordered = <T extends { id: string }>(rows: T[], key: (r: T) => number | string, dir: 1 | -1) =>
      [...rows].sort((a, b) => (key(a) === key(b) ? Number(a.id) - Number(b.id) : key(a) < key(b) ? -dir : dir));
    const byDecision = await all('decision', 'asc');
    expect(byDecision.map((r) => r.id)).toEqual(ordered(byDecision, (r) => order.indexOf(r.effective), 1).map((r) => r.id));
    expect(byDecision.map((r) => r.effective)).toEqual([...Array(9).fill('drop'), 'swap', ...Array(20).fill('keep')]);
    expect(byDecision[9].id).toBe(String(ids[25]));
    const byDecisionDesc = await all('decision', 'desc');
    expect(byDecisionDesc.map((r) => r.id)).toEqual(ordered(byDecisionDesc, (r) => order.indexOf(r.effective), -1).map((r) => r.id));
    expect(byDecisionDesc[0].effective).toBe('keep');
    const bySource = await all('source', 'asc');
    expect(bySource.map((r) => r.id)).toEqual(ordered(bySource, (r) => r.source, 1).map((r) => r.id));
    expect(bySource.slice(0, 10).every((r) => r.source === 'alt')).toBe(true);
    const bySourceDesc = await all('source', 'desc');
    expect(bySourceDesc.map((r) => r.id)).toEqual(ordered(bySourceDesc, (r) => r.source, -1).map((r) => r.id));
    expect(bySourceDesc.slice(-10).every((r) => r.source === 'alt')).toBe(true);
    // The contract refuses an unknown sort key before any handler runs.
    const bad = await dispatch(h, 'queryPairs', { datasetId, filter: {}, sort: { by: 'effective', dir: 'asc' }, offset: 0, limit: 5 });
    expect(bad).toMatchObject({ ok: false, error: { kind: 'input' } });
    const good = await dispatch(h, 'queryPairs', { datasetId, filter: {}, sort: { by: 'source', dir: 'asc' }, offset: 0, limit: 5 });
    expect(good.ok).toBe(true);
  });

  it('decides, notes, undoes and redoes; history records old → new', async () => {
    const pairId = String(ids[3]);
    const r = await h.decide({ pairId, decision: 'swap' });
    expect(r.decision).toBe('swap');
    expect(r.effective).toBe('swap');
    await h.decide({ pairId, note: 'rejected is the true answer' });
    let d = await h.getPair({ pairId });
    expect(d.note).toBe('rejected is the true answer');
    expect(d.history.map((x) => [x.action, x.from, x.to])).toEqual([
      ['note', 'swap', 'swap'],
      ['decide', null, 'swap'],
    ]);
    expect(d.history[1].modelId).toBe('rm-test');
    expect(d.history[1].who).toBe('tester');
    expect(d.pChosen).toBeCloseTo(1 / (1 + Math.exp(-margin(3))), 9);
    const u = await h.undo({ datasetId });
    expect(u).toEqual({ pairIds: [pairId], action: 'note', stepCount: 1, canUndo: true, canRedo: true });
    expect((await h.getPair({ pairId })).note).toBeNull();
    await h.undo({ datasetId });
    expect((await h.getPair({ pairId })).decision).toBeNull();
    const re = await h.redo({ datasetId });
    expect(re.pairIds).toEqual([pairId]);
    d = await h.getPair({ pairId });
    expect(d.decision).toBe('swap');
    const cleared = await h.decide({ pairId, decision: null });
    expect(cleared.decision).toBeNull();
    expect(cleared.effective).toBe('drop');
    // history names undo and redo as such, newest first
    expect((await h.getPair({ pairId })).history.map((x) => x.action)).toEqual(['decide', 'redo', 'undo', 'undo', 'note', 'decide']);
  });

  it('a curator name set in the app is recorded, and undo is per curator', async () => {
    expect((await h.curator({})).name).toBe('tester');
    const [a, b] = [String(ids[5]), String(ids[7])];
    await h.decide({ pairId: a, decision: 'keep', curator: 'Ana' });
    await h.decide({ pairId: b, decision: 'drop' });
    expect((await h.getPair({ pairId: a })).history[0].who).toBe('Ana');
    const u = await h.undo({ datasetId, curator: 'Ana' });
    expect(u).toMatchObject({ pairIds: [a], action: 'keep', canUndo: false, canRedo: true });
    expect((await h.getPair({ pairId: b })).decision).toBe('drop'); // the other curator's decision stands
    expect((await h.undo({ datasetId })).pairIds).toEqual([b]);
    const bad = await dispatch(h, 'decide', { pairId: a, decision: 'keep', curator: '   ' });
    expect(bad).toMatchObject({ ok: false, error: { kind: 'input' } });
  });

  it('review slices (overrides, decided-uncertain), reviewed count and the position of a pair', async () => {
    await h.applyFilter({ datasetId, threshold: 1, band: 0.3 }); // uncertain: i = 13, 14, 15
    await h.decide({ pairId: String(ids[0]), decision: 'keep' }); // verdict drop → override
    await h.decide({ pairId: String(ids[20]), decision: 'keep' }); // verdict keep → agrees
    await h.decide({ pairId: String(ids[14]), decision: 'drop' }); // uncertain → decided-uncertain
    const q = (filter: object, extra: object = {}) =>
      h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any', ...filter }, sort: { by: 'index', dir: 'asc' }, offset: 0, limit: 50, ...extra });
    const over = await q({ curated: 'overrides' });
    expect(over.rows.map((r) => r.id)).toEqual([String(ids[0])]);
    const du = await q({ curated: 'decided-uncertain' });
    expect(du.rows.map((r) => r.id)).toEqual([String(ids[14])]);
    expect((await q({ curated: 'decided-uncertain', verdict: 'keep' })).total).toBe(0);
    const all = await q({}, { locate: String(ids[14]) });
    expect(all).toMatchObject({ total: 30, reviewed: 3, located: 14 });
    const desc = await h.queryPairs({ datasetId, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'index', dir: 'desc' }, offset: 0, limit: 5, locate: String(ids[14]) });
    expect(desc.located).toBe(30 - 1 - 14);
    expect((await q({ verdict: 'uncertain' }, { locate: String(ids[0]) })).located).toBeNull();
  });

  it('bulk-decides all pairs matching a filter in one undoable step, guarded by the expected count', async () => {
    const filter = { decision: 'any' as const, verdict: 'drop' as const };
    await expect(h.bulkDecide({ datasetId, filter, decision: 'keep', expectedCount: 9 })).rejects.toThrow(/now matches 10 pairs/);
    const r = await h.bulkDecide({ datasetId, filter, decision: 'keep', expectedCount: 10 });
    expect(r.changed).toBe(10);
    expect((await h.listDatasets({})).datasets[0].counts).toMatchObject({ keep: 30, drop: 0, humanDecided: 10 });
    const u = await h.undo({ datasetId });
    expect(u.pairIds).toHaveLength(10);
    expect((await h.listDatasets({})).datasets[0].counts).toMatchObject({ keep: 20, drop: 10, humanDecided: 0 });
  });

  it('applies the filter rule with a threshold and an uncertain band', async () => {
    const c = await h.applyFilter({ datasetId, threshold: 1, band: 0.3 });
    // margins (i−10)/4 in steps of 0.25: uncertain when |m − 1| < 0.3 → 0.75, 1, 1.25; keep when m ≥ 1.3 → i ≥ 16
    expect(c).toEqual({ keep: 14, drop: 13, uncertain: 3 });
  });

  it('computes chart data: histogram by decision, agreement with curators, per-source accuracy', async () => {
    await h.decide({ pairId: String(ids[0]), decision: 'drop' }); // agrees with verdict drop
    await h.decide({ pairId: String(ids[20]), decision: 'drop' }); // disagrees with verdict keep
    const c = await h.chartData({ datasetId, bins: 10 });
    expect(c.agreement).toEqual({ value: 0.5, decided: 2 });
    const total = c.marginHistogram!.series.reduce((s, x) => s + x.counts.reduce((a, b) => a + b, 0), 0);
    expect(total).toBe(30);
    // accuracy at τ=0 counts margin > 0 as "chosen better"; two dropped pairs leave 28 labelled
    const perSourceN = c.perSource.reduce((s, x) => s + x.n, 0);
    expect(perSourceN).toBe(28);
    const first = c.accuracyVsThreshold[0];
    expect(first.kept).toBe(28);
  });

  it('dispatch validates input and maps unknown ids to input errors', async () => {
    const bad = await dispatch(h, 'getPair', { pairId: 'abc' });
    expect(bad).toMatchObject({ ok: false, error: { kind: 'input' } });
    const missing = await dispatch(h, 'getPair', { pairId: '999999' });
    expect(missing).toMatchObject({ ok: false, error: { kind: 'input' } });
    const nojob = await dispatch(h, 'getJob', { jobId: 'nope' });
    expect(nojob).toMatchObject({ ok: false, error: { kind: 'not-found' } });
  });
});
