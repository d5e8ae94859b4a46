/**
 * Issue 14, CLI flow: import → train → score → queue → decide (swap some, drop some) → train --from-decisions →
 * score → queue. The retrained model reports its labels, reads every feature from the cache, records the decision
 * history point; the queue loses the decided pairs and re-ranks under the new run; the curator agreement shows two
 * generations.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { openStore } from '../../../main/engine/store';
import { curatorAgreement } from '../../../main/engine/sparserm/curator-agreement';
import { inCuratorHoldout } from '../../../main/engine/sparserm/decision-labels';
import { backboneRunCounter } from '../../../main/engine/backbone';
import { runCli } from '../../helpers/cli';
import { dataDir, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-learn-');
process.env.SPARSERM_HOME = home;
const db = path.join(home, 'db.sqlite');

const json = async (...args: string[]) => {
  const r = await runCli(...args);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out);
};

interface Queue { runId: number; previousRunId: number | null; total: number; items: Array<{ pairId: number; margin: number; disagree: boolean; reasons: string[] }> }

describe('sparserm: learn from the curators (CLI)', () => {
  it('decide → train --from-decisions → score → the queue re-ranks', { timeout: 600_000 }, async () => {
    const file = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(file, fs.readFileSync(path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), 'utf8').split('\n').slice(100, 180).join('\n') + '\n');
    expect((await runCli('import', file, '--dataset', 'tqa', '--db', db)).code).toBe(0);
    const train = (out: string, ...extra: string[]) => json('train', '--demo', '--dataset', 'tqa', '--db', db, '--k', '8', '--max-epochs', '4', '--ep', 'cpu', '--out', path.join(home, out), '--json', ...extra);
    const score = (out: string) => json('score', '--model', path.join(home, out), '--dataset', 'tqa', '--db', db, '--ep', 'cpu', '--json');

    const m1 = await train('m1');
    expect(m1.labels).toBeUndefined();
    await score('m1');
    const q1: Queue = await json('queue', '--dataset', 'tqa', '--db', db, '--limit', '80', '--json');
    expect(q1.total).toBe(80);
    expect(q1.previousRunId).toBeNull();
    const abs = q1.items.map((x) => Math.abs(x.margin));
    expect(abs).toEqual([...abs].sort((a, b) => a - b));

    // The curator works down the queue: swaps the first 6, drops the next 4, keeps the next 10.
    const head = q1.items.map((x) => x.pairId);
    const [swap, drop, keep] = [head.slice(0, 6), head.slice(6, 10), head.slice(10, 20)];
    for (const [ids, act] of [[swap, 'swap'], [drop, 'drop'], [keep, 'keep']] as const) {
      for (const id of ids) expect((await runCli('decide', '--pair', String(id), '--action', act, '--actor', 'cur', '--db', db)).code).toBe(0);
    }

    const before = backboneRunCounter();
    const m2 = await train('m2', '--from-decisions');
    expect(backboneRunCounter()).toBe(before);
    expect(m2.features.responsesComputed).toBe(0);
    const held = [...swap, ...keep].filter((id) => inCuratorHoldout(id)).length;
    const swappedTrained = swap.filter((id) => !inCuratorHoldout(id)).length;
    expect(m2.labels).toMatchObject({ swapped: swappedTrained, asLabelled: 80 - 4 - held - swappedTrained, excluded: 4 + held, excludedBy: { dropped: 4, undecided: 0, heldOut: held }, undecided: 'as-labelled', holdOut: true });
    expect(m2.labels.decisionGroup).toBeGreaterThanOrEqual(20);
    const manifest = JSON.parse(fs.readFileSync(path.join(home, 'm2', 'manifest.json'), 'utf8'));
    expect(manifest.training.decisions.groupId).toBe(m2.labels.decisionGroup);

    // exclude policy: only the decided, non-dropped, non-held-out pairs
    const m3 = await train('m3', '--from-decisions', '--undecided', 'exclude');
    expect(m3.labels).toMatchObject({ asLabelled: 10 - keep.filter((id) => inCuratorHoldout(id)).length, swapped: swappedTrained, excluded: 80 - m3.labels.asLabelled - swappedTrained });

    await score('m2');
    const q2: Queue = await json('queue', '--dataset', 'tqa', '--db', db, '--limit', '80', '--json');
    expect(q2.total).toBe(60);
    expect(q2.previousRunId).not.toBeNull();
    expect(q2.runId).toBeGreaterThan(q1.runId);
    for (const id of [...swap, ...drop, ...keep]) expect(q2.items.map((x) => x.pairId)).not.toContain(id);
    // re-ranked under the new model: the order of the remaining pairs is not the old one
    const oldOrder = head.filter((id) => q2.items.some((x) => x.pairId === id));
    expect(q2.items.map((x) => x.pairId)).not.toEqual(oldOrder);

    // human output names the runs
    const text = await runCli('queue', '--dataset', 'tqa', '--db', db, '--limit', '3');
    expect(text.out).toMatch(/queue of "tqa": 60 undecided scored pairs; run \d+ \(srm-[^)]+\), previous run \d+/);
    expect(text.out.trim().split('\n')).toHaveLength(4);

    const store = openStore(db);
    try {
      const a = curatorAgreement(store, store.datasets.resolve('tqa').id);
      expect(a.generations).toHaveLength(2);
      expect(a.generations[0]).toMatchObject({ generation: 1, decisions: null, sawHoldout: true, n: held });
      expect(a.generations[1]).toMatchObject({ generation: 2, sawHoldout: false, n: held });
      expect(a.generations[1].decisions?.groupId).toBe(m2.labels.decisionGroup);
    } finally {
      store.close();
    }
  });

  it('refuses --from-decisions without a store dataset and companion flags alone', async () => {
    let r = await runCli('train', '--demo', '--from-decisions', '--db', db, '--ep', 'cpu');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--from-decisions.*--dataset NAME/);
    r = await runCli('train', '--demo', '--dataset', 'tqa', '--undecided', 'exclude', '--db', db);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--undecided.*only together with --from-decisions/);
    r = await runCli('train', '--demo', '--dataset', 'tqa', '--from-decisions', '--undecided', 'maybe', '--db', db);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--undecided.*as-labelled or exclude/);
  });
});
