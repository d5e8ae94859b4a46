import { beforeAll, describe, expect, it } from 'vitest';

import { DECISION_SORT_ORDER, openStore, pairOrderBy, toFtsQuery, type Pair, type PairQuery, type PairSort, type Store } from '../../../main/engine/store';
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

  it('sorts by effective decision and by source, stable across pages', () => {
    // A dataset with every effective decision and a few pairs without a source (unscored → undecided).
    const t = openStore(':memory:');
    const d = seedPairs(t, 'sorted', 84, { sources: ['beta', 'Alpha', 'gamma', 'alpha'] });
    t.runs.applyFilter({ datasetId: d, runId: seedRun(t, d), rule: 'margin', threshold: 0.2, band: 0.15 });
    t.transaction(() => {
      for (let i = 0; i < 5; i++) {
        t.pairs.insert(d, null, { line: 100 + i, source: null, externalId: null, prompt: `late ${i}`, chosen: 'c', rejected: 'r', contentHash: `late-${i}` });
      }
    });
    const ids = t.pairs.ids({ datasetId: d });
    for (const k of [2, 30, 61]) t.decisions.decidePair(ids[k]!, 'swap'); // scattered swaps, some over keep verdicts
    t.decisions.decidePair(ids[0]!, 'keep'); // a drop verdict overridden to keep
    t.decisions.decidePair(ids[86]!, 'drop'); // an unscored pair decided by hand
    const byId = t.pairs.list({ datasetId: d, limit: 500 }).items;
    const effectives = new Set(byId.map((p) => p.effective));
    expect([...effectives].sort()).toEqual([...DECISION_SORT_ORDER].sort());

    // Pages of 13 (boundaries fall inside groups) concatenated = one big page, no overlap, nothing missing.
    const paged = (q: Omit<PairQuery, 'datasetId'>) => {
      const out: Pair[] = [];
      for (let offset = 0; ; offset += 13) {
        const page = t.pairs.list({ datasetId: d, ...q, offset, limit: 13 });
        expect(page.total).toBe(q.source ? byId.filter((p) => q.source!.includes(p.source!)).length : byId.length);
        out.push(...page.items);
        if (page.items.length < 13) return out;
      }
    };
    const rank = (p: Pair) => DECISION_SORT_ORDER.indexOf(p.effective);
    const expectOrder = (sort: PairSort, cmp: (a: Pair, b: Pair) => number, source?: string[]) => {
      const got = paged({ sort, source });
      const all = t.pairs.list({ datasetId: d, sort, source, limit: 500 }).items;
      expect(got.map((p) => p.id)).toEqual(all.map((p) => p.id));
      expect(new Set(got.map((p) => p.id)).size).toBe(got.length);
      const expected = byId.filter((p) => !source || source.includes(p.source!)).sort((a, b) => cmp(a, b) || a.id - b.id);
      expect(got.map((p) => p.id)).toEqual(expected.map((p) => p.id));
      return got;
    };
    const asc = expectOrder('decision', (a, b) => rank(a) - rank(b));
    expect(asc[0]!.effective).toBe('drop');
    expect(asc.at(-1)!.effective).toBe('undecided');
    const desc = expectOrder('-decision', (a, b) => rank(b) - rank(a));
    expect(desc[0]!.effective).toBe('undecided');
    // Combined with a filter: the decision order inside one source.
    expectOrder('decision', (a, b) => rank(a) - rank(b), ['gamma']);

    // Code-point order (uppercase first), no-source pairs last in both directions.
    const src = (a: Pair, b: Pair, dir: 1 | -1) =>
      a.source === b.source ? 0 : a.source === null ? 1 : b.source === null ? -1 : dir * (a.source < b.source ? -1 : 1);
    const bySource = expectOrder('source', (a, b) => src(a, b, 1));
    expect([...new Set(bySource.map((p) => p.source))]).toEqual(['Alpha', 'alpha', 'beta', 'gamma', null]);
    const bySourceDesc = expectOrder('-source', (a, b) => src(a, b, -1));
    expect([...new Set(bySourceDesc.map((p) => p.source))]).toEqual(['gamma', 'beta', 'alpha', 'Alpha', null]);

    // The order follows new decisions: a keep pair decided as drop moves into the drop group.
    const lastKeep = asc.filter((p) => p.effective === 'keep').at(-1)!;
    t.decisions.decidePair(lastKeep.id, 'drop');
    const drops = t.pairs.list({ datasetId: d, sort: 'decision', limit: 500 }).items.filter((p) => p.effective === 'drop').map((p) => p.id);
    expect(drops).toContain(lastKeep.id);
    expect(drops).toEqual([...drops].sort((x, y) => x - y));
    t.close();
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
    // Decision and source sorts walk their index in order: no sort step, however deep the page.
    for (const [sort, index] of [
      ['decision', 'pairs_dataset_decision_asc'],
      ['-decision', 'pairs_dataset_decision_desc'],
      ['source', 'pairs_dataset_source_asc'],
      ['-source', 'pairs_dataset_source_desc'],
    ] as const) {
      const p = plan(`SELECT p.id FROM pairs p WHERE p.dataset_id = ? ORDER BY ${pairOrderBy(sort)} LIMIT 200 OFFSET 50000`, ds);
      expect(p, sort).toMatch(new RegExp(`USING COVERING INDEX ${index}\\b`));
      expect(p, sort).not.toMatch(/TEMP B-TREE/);
      const filtered = plan(`SELECT p.id FROM pairs p WHERE p.dataset_id = ? AND p.source IN ('beta') ORDER BY ${pairOrderBy(sort)} LIMIT 200`, ds);
      expect(filtered, sort).toMatch(/INDEX/);
    }
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
