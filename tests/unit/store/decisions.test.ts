import os from 'node:os';
import { beforeEach, describe, expect, it } from 'vitest';

import { cohensKappa, openStore, type Store } from '../../../main/engine/store';
import { seedPairs, seedRun } from './helpers';

// margin of pair k (0-based) = (k % 21 − 10) / 10, i.e. −1.0 … +1.0 in steps of 0.1
const marginOf = (k: number) => ((k % 21) - 10) / 10;

describe('automatic verdicts (filter rule)', () => {
  let s: Store;
  let ds: number;
  let run: number;
  beforeEach(() => {
    s = openStore(':memory:');
    ds = seedPairs(s, 'd', 42);
    run = seedRun(s, ds);
  });

  it("paper rule: drop exactly the pairs where s_chosen < s_rejected", () => {
    const f = s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'paper' });
    const expectedDrop = Array.from({ length: 42 }, (_, k) => marginOf(k)).filter((m) => m < 0).length;
    expect(f.threshold).toBe(0);
    expect(f.counts.drop).toBe(expectedDrop);
    expect(f.counts.keep).toBe(42 - expectedDrop);
    expect(f.counts.uncertain).toBe(0);
    for (const p of s.pairs.list({ datasetId: ds, limit: 100 }).items) {
      expect(p.autoVerdict).toBe(p.margin! < 0 ? 'drop' : 'keep');
      expect(p.effective).toBe(p.autoVerdict);
    }
  });

  it('margin threshold with an uncertain band: |margin − τ| < band → uncertain', () => {
    const f = s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'margin', threshold: 0.3, band: 0.25 });
    const ms = Array.from({ length: 42 }, (_, k) => marginOf(k));
    const unc = ms.filter((m) => Math.abs(m - 0.3) < 0.25).length;
    const keep = ms.filter((m) => !(Math.abs(m - 0.3) < 0.25) && m >= 0.3).length;
    expect(f.counts).toEqual({ keep, drop: 42 - unc - keep, uncertain: unc, unscored: 0 });
    const doubtful = s.pairs.list({ datasetId: ds, sort: 'doubt', limit: 3 }).items;
    expect(doubtful[0]!.doubt).toBeCloseTo(0, 9);
    expect(doubtful.every((p) => p.doubt! <= doubtful[2]!.doubt!)).toBe(true);
  });

  it('unscored pairs get no verdict; re-filtering keeps the old verdicts in history', () => {
    const extra = s.datasets.get(ds);
    s.pairs.insert(extra.id, null, { line: 99, source: 'x', externalId: null, prompt: 'p', chosen: 'c', rejected: 'r', contentHash: 'unscored' });
    const f1 = s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'paper' });
    expect(f1.counts.unscored).toBe(1);
    const f2 = s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'margin', threshold: 0.5 });
    expect(s.runs.currentFilter(ds)!.id).toBe(f2.id);
    const pid = s.pairs.ids({ datasetId: ds })[10]!; // margin 0.0
    const hist = s.runs.verdictHistory(pid);
    expect(hist.map((h) => h.verdict)).toEqual(['keep', 'drop']);
    expect(hist[1]!.rewardModelId).toBe('rm-test');
    expect(s.pairs.list({ datasetId: ds, verdict: ['none'] }).total).toBe(1);
  });

  it('rejects a run of another dataset and a negative band', () => {
    const other = seedPairs(s, 'other', 3);
    expect(() => s.runs.applyFilter({ datasetId: other, runId: run, rule: 'paper' })).toThrow(/scoring run of dataset/);
    expect(() => s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'margin', band: -1 })).toThrow(/band/);
  });
});

describe('curator decisions, history, undo / redo', () => {
  let s: Store;
  let ds: number;
  let ids: number[];
  beforeEach(() => {
    s = openStore(':memory:');
    ds = seedPairs(s, 'd', 42);
    const run = seedRun(s, ds);
    s.runs.applyFilter({ datasetId: ds, runId: run, rule: 'paper' });
    ids = s.pairs.ids({ datasetId: ds });
  });

  const historyRows = () => s.db.prepare('SELECT * FROM decisions ORDER BY id').all();

  it('a human decision overrides the verdict and records what it overrode', () => {
    const pid = ids[0]!; // margin −1 → drop
    expect(s.pairs.get(pid).effective).toBe('drop');
    const r = s.decisions.decidePair(pid, 'keep', { actor: 'alice', note: 'fine actually' });
    expect(r.changed).toBe(1);
    const p = s.pairs.get(pid);
    expect(p.effective).toBe('keep');
    expect(p.humanDecision).toBe('keep');
    expect(p.note).toBe('fine actually');
    const [h] = s.decisions.history(pid);
    expect(h).toMatchObject({ actor: 'alice', action: 'keep', oldDecision: null, newDecision: 'keep', autoVerdict: 'drop', rewardModelId: 'rm-test', threshold: 0 });
    // clear → back to the automatic verdict
    s.decisions.decidePair(pid, 'clear', { actor: 'alice' });
    const tl = s.decisions.timeline(pid);
    expect(tl.map((e) => [e.kind, e.who, e.action, e.newDecision])).toEqual([
      ['auto', 'rm-test', 'verdict', 'drop'],
      ['human', 'alice', 'keep', 'keep'],
      ['human', 'alice', 'clear', null],
    ]);
    expect(tl[0]).toMatchObject({ rule: 'paper', threshold: 0, margin: -1 });
    expect(s.pairs.get(pid).effective).toBe('drop');
    expect(s.pairs.get(pid).note).toBe('fine actually');
  });

  it('note changes only the note; a no-op decision writes nothing', () => {
    const pid = ids[5]!;
    s.decisions.decidePair(pid, 'swap');
    s.decisions.decidePair(pid, 'note', { note: 'check source' });
    expect(s.pairs.get(pid)).toMatchObject({ humanDecision: 'swap', note: 'check source', effective: 'swap' });
    const before = historyRows().length;
    expect(s.decisions.decidePair(pid, 'swap').changed).toBe(0);
    expect(historyRows().length).toBe(before);
    expect(() => s.decisions.decidePair(pid, 'note')).toThrow(/note/);
  });

  it('bulk decision on a filter is one group that one undo reverts, and redo re-applies', () => {
    const drops = s.pairs.count({ datasetId: ds, effective: ['drop'] });
    s.decisions.decidePair(ids[1]!, 'swap', { actor: 'bob' }); // a drop pair swapped first
    const bulk = s.decisions.decide({ datasetId: ds, effective: ['drop'] }, 'keep', { actor: 'bob' });
    expect(bulk.changed).toBe(drops - 1);
    expect(s.pairs.count({ datasetId: ds, effective: ['drop'] })).toBe(0);
    expect(s.decisions.entries(bulk.group!.id)).toHaveLength(drops - 1);

    const u = s.decisions.undo(ds, 'bob');
    expect(u.group!.kind).toBe('undo');
    expect(u.group!.targetGroup).toBe(bulk.group!.id);
    expect(s.pairs.count({ datasetId: ds, effective: ['drop'] })).toBe(drops - 1);
    expect(s.pairs.get(ids[1]!).effective).toBe('swap'); // the earlier single decision survives
    expect(s.decisions.state(ds, 'bob')).toMatchObject({ canUndo: true, canRedo: true });

    const r = s.decisions.redo(ds, 'bob');
    expect(r.group!.kind).toBe('redo');
    expect(s.pairs.count({ datasetId: ds, effective: ['drop'] })).toBe(0);

    // undo twice: the redo, then the swap
    s.decisions.undo(ds, 'bob');
    s.decisions.undo(ds, 'bob');
    expect(s.pairs.get(ids[1]!).effective).toBe('drop');
    expect(s.pairs.count({ datasetId: ds, hasOverride: true })).toBe(0);
    expect(s.decisions.state(ds, 'bob').canUndo).toBe(false);
    expect(s.decisions.undo(ds, 'bob').group).toBeNull();
    // a new decision clears the redo stack
    s.decisions.decidePair(ids[2]!, 'keep', { actor: 'bob' });
    expect(s.decisions.state(ds, 'bob').canRedo).toBe(false);
  });

  it('history is append-only: undo/redo add rows that point at what they revert, old rows never change', () => {
    s.decisions.decidePair(ids[0]!, 'keep');
    s.decisions.decidePair(ids[0]!, 'drop', { note: 'no' });
    const snapshot = JSON.stringify(historyRows());
    s.decisions.undo(ds);
    s.decisions.redo(ds);
    const after = historyRows() as { id: number; reverts: number | null }[];
    expect(JSON.stringify(after.slice(0, 2))).toBe(snapshot);
    expect(after).toHaveLength(4);
    expect(after[2]!.reverts).toBe(after[1]!.id);
    expect(after[3]!.reverts).toBe(after[2]!.id);
    const h = s.decisions.history(ids[0]!);
    expect(h.map((d) => [d.oldDecision, d.newDecision, d.newNote])).toEqual([
      [null, 'keep', null],
      ['keep', 'drop', 'no'],
      ['drop', 'keep', null],
      ['keep', 'drop', 'no'],
    ]);
  });

  it('agreement: rate and Cohen κ over verdicts vs human decisions (swap agrees with drop)', () => {
    const keepIds = s.pairs.ids({ datasetId: ds, verdict: ['keep'] });
    const dropIds = s.pairs.ids({ datasetId: ds, verdict: ['drop'] });
    // auto keep: 6 human keep, 2 human drop; auto drop: 1 human keep, 3 human drop (one of them a swap)
    keepIds.slice(0, 6).forEach((id) => s.decisions.decidePair(id, 'keep'));
    keepIds.slice(6, 8).forEach((id) => s.decisions.decidePair(id, 'drop'));
    s.decisions.decidePair(dropIds[0]!, 'keep');
    dropIds.slice(1, 3).forEach((id) => s.decisions.decidePair(id, 'drop'));
    s.decisions.decidePair(dropIds[3]!, 'swap');
    const a = s.decisions.agreement(ds);
    expect(a.matrix).toEqual({ autoKeep_humanKeep: 6, autoKeep_humanDrop: 2, autoDrop_humanKeep: 1, autoDrop_humanDrop: 3 });
    expect(a.compared).toBe(12);
    expect(a.agreementRate).toBeCloseTo(9 / 12, 12);
    // κ by hand: po = 9/12; p(auto keep) = 8/12, p(human keep) = 7/12; pe = 8/12·7/12 + 4/12·5/12 = 76/144
    const pe = 76 / 144;
    expect(a.kappa).toBeCloseTo((9 / 12 - pe) / (1 - pe), 12);
    expect(s.pairs.count({ datasetId: ds, disagrees: true })).toBe(3);
  });

  it('cohensKappa is null when undefined and 1 for perfect agreement', () => {
    expect(cohensKappa({ autoKeep_humanKeep: 0, autoKeep_humanDrop: 0, autoDrop_humanKeep: 0, autoDrop_humanDrop: 0 })).toBeNull();
    expect(cohensKappa({ autoKeep_humanKeep: 5, autoKeep_humanDrop: 0, autoDrop_humanKeep: 0, autoDrop_humanDrop: 0 })).toBeNull();
    expect(cohensKappa({ autoKeep_humanKeep: 5, autoKeep_humanDrop: 0, autoDrop_humanKeep: 0, autoDrop_humanDrop: 5 })).toBe(1);
  });

  it('decisions record the curator: the OS user by default, or the name given', () => {
    s.decisions.decidePair(ids[0]!, 'keep');
    s.decisions.decidePair(ids[1]!, 'drop', { actor: '  Ana  ' });
    const [a, b] = [s.decisions.history(ids[0]!)[0]!, s.decisions.history(ids[1]!)[0]!];
    expect(a.actor).toBe(process.env.SPARSERM_ACTOR || os.userInfo().username);
    expect(b.actor).toBe('Ana');
  });

  it("undo and redo are per curator: one curator's undo never reverts another's decision", () => {
    s.decisions.decidePair(ids[5]!, 'keep', { actor: 'ana' });
    s.decisions.decidePair(ids[7]!, 'drop', { actor: 'ben' });
    const u = s.decisions.undo(ds, 'ana');
    expect(s.decisions.entries(u.group!.id).map((e) => e.pairId)).toEqual([ids[5]]);
    expect(s.pairs.get(ids[5]!).humanDecision).toBeNull();
    expect(s.pairs.get(ids[7]!).humanDecision).toBe('drop');
    expect(s.decisions.state(ds, 'ana')).toMatchObject({ canUndo: false, canRedo: true });
    expect(s.decisions.state(ds, 'ben')).toMatchObject({ canUndo: true, canRedo: false });
    expect(s.decisions.undo(ds, 'carl').group).toBeNull();
    // ana's redo does not clear ben's stack, and ben's later change to the same pair survives ana's undo
    s.decisions.redo(ds, 'ana');
    s.decisions.decidePair(ids[5]!, 'swap', { actor: 'ben' });
    const u2 = s.decisions.undo(ds, 'ana');
    expect(u2.changed).toBe(0);
    expect(s.pairs.get(ids[5]!).humanDecision).toBe('swap');
  });

  it('history names each step: decide, note, bulk, undo, redo (a note is not a decision change)', () => {
    const pid = ids[3]!;
    s.decisions.decidePair(pid, 'keep', { actor: 'ana' });
    s.decisions.decidePair(pid, 'note', { actor: 'ana', note: 'fine' });
    s.decisions.undo(ds, 'ana');
    s.decisions.redo(ds, 'ana');
    s.decisions.decide({ datasetId: ds, ids: [pid, ids[4]!] }, 'swap', { actor: 'ana' });
    const h = s.decisions.historyWithKind(pid);
    expect(h.map((d) => d.kind)).toEqual(['decide', 'note', 'undo', 'redo', 'bulk']);
    expect(h[1]).toMatchObject({ oldDecision: 'keep', newDecision: 'keep', newNote: 'fine' });
    expect(h[2]).toMatchObject({ newNote: null, reverts: h[1]!.id });
  });

  it('undo is per dataset', () => {
    const other = seedPairs(s, 'other', 3);
    s.decisions.decidePair(ids[0]!, 'keep');
    s.decisions.decide({ datasetId: other }, 'drop');
    s.decisions.undo(ds);
    expect(s.pairs.get(ids[0]!).humanDecision).toBeNull();
    expect(s.pairs.count({ datasetId: other, human: ['drop'] })).toBe(3);
  });
});
