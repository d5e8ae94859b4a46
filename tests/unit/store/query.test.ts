import { beforeAll, describe, expect, it } from 'vitest';

import { openStore, toFtsQuery, type Store } from '../../../main/engine/store';
import { seedPairs, seedRun } from './helpers';

describe('pair list query', () => {
  let s: Store;
  let ds: number;
  let run: number;
  beforeAll(() => {
    s = openStore(':memory:');
    ds = seedPairs(s, 'd', 210, { sources: ['alpha', 'beta', 'gamma'] });
    run = seedRun(s, ds);
    s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'margin', threshold: 0.2, band: 0.15 });
    seedPairs(s, 'noise', 50);
  });

  it('paginates with a stable total and no overlap', () => {
    const a = s.pairs.list({ datasetId: ds, offset: 0, limit: 100 });
    const b = s.pairs.list({ datasetId: ds, offset: 100, limit: 100 });
    const c = s.pairs.list({ datasetId: ds, offset: 200, limit: 100 });
    expect([a.total, b.total, c.total]).toEqual([210, 210, 210]);
    const all = [...a.items, ...b.items, ...c.items].map((p) => p.id);
    expect(new Set(all).size).toBe(210);
    expect(all).toEqual([...all].sort((x, y) => x - y));
  });

  it('filters by effective decision, verdict, source, margin range and override', () => {
    const counts = s.datasets.countsByDecision(ds);
    for (const e of ['keep', 'drop', 'uncertain'] as const) {
      const page = s.pairs.list({ datasetId: ds, effective: [e], limit: 500 });
      expect(page.total).toBe(counts[e]);
      expect(page.items.every((p) => p.effective === e)).toBe(true);
    }
    const src = s.pairs.list({ datasetId: ds, source: ['beta'], limit: 500 });
    expect(src.total).toBe(70);
    const range = s.pairs.list({ datasetId: ds, marginMin: -0.3, marginMax: 0.1, limit: 500 });
    expect(range.items.every((p) => p.margin! >= -0.3 && p.margin! <= 0.1)).toBe(true);
    // margins −0.3 … 0.1 = 5 values per 21 pairs, 10 full cycles
    expect(range.total).toBe(50);
    const id = range.items[0]!.id;
    s.decisions.decidePair(id, 'swap');
    expect(s.pairs.list({ datasetId: ds, hasOverride: true }).items.map((p) => p.id)).toEqual([id]);
    expect(s.pairs.count({ datasetId: ds, hasOverride: false })).toBe(209);
    s.decisions.decidePair(id, 'clear');
  });

  it('sorts by margin and by doubt (|margin − τ|, most doubtful first, unscored last)', () => {
    const byMargin = s.pairs.list({ datasetId: ds, sort: 'margin', limit: 210 }).items.map((p) => p.margin!);
    expect(byMargin).toEqual([...byMargin].sort((a, b) => a - b));
    const desc = s.pairs.list({ datasetId: ds, sort: '-margin', limit: 1 }).items[0]!;
    expect(desc.margin).toBeCloseTo(1, 9);
    const doubt = s.pairs.list({ datasetId: ds, sort: 'doubt', limit: 30 }).items;
    expect(doubt[0]!.margin).toBeCloseTo(0.2, 9);
    for (const p of doubt) expect(p.doubt).toBeCloseTo(Math.abs(p.margin! - 0.2), 9);
  });

  it('full-text search over prompt and responses (FTS5), safe against operator characters', () => {
    const apples = s.pairs.list({ datasetId: ds, text: 'apples', limit: 500 });
    expect(apples.total).toBe(105);
    expect(apples.items.every((p) => p.prompt.includes('apples'))).toBe(true);
    expect(s.pairs.list({ datasetId: ds, text: 'good answer 17' }).items.map((p) => p.chosen)).toContain('good answer 17');
    expect(s.pairs.list({ datasetId: ds, text: '"bad answer 3"' }).total).toBeGreaterThanOrEqual(1);
    expect(s.pairs.count({ datasetId: ds, text: 'orang*' })).toBe(105);
    // Characters that are FTS syntax must not raise
    expect(() => s.pairs.list({ datasetId: ds, text: 'AND OR ( ) "unbalanced -x ^y' })).not.toThrow();
    expect(toFtsQuery('a-b c*')).toBe('"a-b" AND "c"*');
    expect(toFtsQuery('   ')).toBeNull();
  });

  it('filters by a latent that fired in the current run', () => {
    const page = s.pairs.list({ datasetId: ds, latent: 3, limit: 500 });
    expect(page.total).toBe(42);
    for (const p of page.items) expect(s.runs.latentsForPair(run, p.id).map((l) => l.latent)).toContain(3);
    expect(s.pairs.count({ datasetId: ds, latent: 3, latentRunId: run })).toBe(42);
  });

  it('margin histogram bins add up to the scored pairs, split by decision', () => {
    const bins = s.pairs.marginHistogram({ datasetId: ds }, { bins: 10 });
    expect(bins).toHaveLength(10);
    const total = bins.reduce((a, b) => a + Object.values(b.counts).reduce((x, y) => x + y, 0), 0);
    expect(total).toBe(210);
    expect(bins[0]!.lo).toBeCloseTo(-1, 9);
    expect(bins[9]!.hi).toBeCloseTo(1, 9);
    expect(bins[0]!.counts.drop).toBeGreaterThan(0);
    expect(bins[9]!.counts.keep).toBeGreaterThan(0);
  });

  it('uses indexes for the review queries (no full scan of pairs)', () => {
    const plan = (sql: string, ...p: unknown[]) =>
      (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...p) as { detail: string }[]).map((r) => r.detail).join(' | ');
    expect(plan("SELECT p.id FROM pairs p WHERE p.dataset_id = ? AND p.effective IN ('drop') ORDER BY p.id LIMIT 50", ds)).toMatch(/USING (COVERING )?INDEX pairs_dataset_effective/);
    expect(plan('SELECT p.id FROM pairs p WHERE p.dataset_id = ? ORDER BY p.doubt IS NULL, p.doubt ASC, p.id ASC LIMIT 50', ds)).toMatch(/INDEX/);
    expect(plan('SELECT p.id FROM pairs p WHERE p.dataset_id = ? AND p.margin >= ? AND p.margin <= ?', ds, 0, 1)).toMatch(/INDEX pairs_dataset_margin/);
  });

  it('the FTS index follows inserts, edits and deletes (triggers) and passes its integrity check', async () => {
    const t = openStore(':memory:');
    const d = seedPairs(t, 'fts', 20);
    const id = t.pairs.ids({ datasetId: d })[0]!;
    t.db.prepare("UPDATE pairs SET chosen = 'zebra crossing' WHERE id = ?").run(id);
    expect(t.pairs.list({ datasetId: d, text: 'zebra' }).items.map((p) => p.id)).toEqual([id]);
    expect(t.pairs.count({ datasetId: d, text: '"good answer 0"' })).toBe(0);
    t.db.prepare("INSERT INTO pairs_fts(pairs_fts) VALUES ('integrity-check')").run();
    t.datasets.delete(d);
    expect(t.db.prepare("SELECT count(*) FROM pairs_fts WHERE pairs_fts MATCH 'zebra'").pluck().get()).toBe(0);
    expect(t.db.prepare('SELECT count(*) FROM decisions').pluck().get()).toBe(0);
    t.db.prepare("INSERT INTO pairs_fts(pairs_fts) VALUES ('integrity-check')").run();
    t.close();
  });
});
