/**
 * Issue 14 item 1: training on the curators' decisions. The pure labelling (keep / swap / drop / undecided, the
 * hold-out) and, on the demo kit, what actually reaches fitSparseRm: swapped pairs enter the training matrix with
 * their rows exchanged, dropped ones not at all, and no backbone run happens when every response is cached.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';

import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { openStore, type Store } from '../../../main/engine/store';
import { applyDecisions, decisionTrainingSet, inCuratorHoldout, type LabelledPair } from '../../../main/engine/sparserm/decision-labels';
import type { FeatureTable, PairRef } from '../../../main/engine/sparserm/fit';
import { pairsHash, readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { trainOnDataset } from '../../../main/engine/sparserm/service';
import { dataDir, tempDir } from '../../helpers/paths';

// Every call of fitSparseRm is recorded (the real one still runs): the tests read the matrix it was given.
const fitCalls = vi.hoisted(() => [] as Array<{ table: FeatureTable; refs: PairRef[] }>);
vi.mock('../../../main/engine/sparserm/fit', async (importOriginal) => {
  const mod = await importOriginal<typeof import('../../../main/engine/sparserm/fit')>();
  return {
    ...mod,
    fitSparseRm: (table: FeatureTable, refs: PairRef[], ...rest: unknown[]) => {
      fitCalls.push({ table, refs });
      return (mod.fitSparseRm as (...a: unknown[]) => unknown)(table, refs, ...rest);
    },
  };
});

const row = (pairId: number, decision: LabelledPair['decision']): LabelledPair => ({ pairId, decision, pair: { prompt: `p${pairId}`, chosen: `c${pairId}`, rejected: `r${pairId}` } });

describe('applyDecisions (pure)', () => {
  // ids chosen so that none is in the hold-out, and one that is
  const free = Array.from({ length: 200 }, (_, i) => i + 1).filter((i) => !inCuratorHoldout(i));
  const held = Array.from({ length: 200 }, (_, i) => i + 1).find((i) => inCuratorHoldout(i))!;

  it('keep as labelled, swap exchanged, drop out; undecided as labelled by default', () => {
    const [a, b, c, d] = free;
    const r = applyDecisions([row(a, 'keep'), row(b, 'swap'), row(c, 'drop'), row(d, null)]);
    expect(r.pairIds).toEqual([a, b, d]);
    expect(r.pairs[0]).toEqual({ prompt: `p${a}`, chosen: `c${a}`, rejected: `r${a}` });
    expect(r.pairs[1]).toEqual({ prompt: `p${b}`, chosen: `r${b}`, rejected: `c${b}` });
    expect(r.pairs[2]).toEqual({ prompt: `p${d}`, chosen: `c${d}`, rejected: `r${d}` });
    expect(r.counts).toEqual({ asLabelled: 2, swapped: 1, excluded: 1 });
    expect(r.excludedBy).toEqual({ dropped: 1, undecided: 0, heldOut: 0 });
  });

  it("undecided 'exclude' leaves undecided pairs out", () => {
    const [a, b, c] = free;
    const r = applyDecisions([row(a, null), row(b, 'swap'), row(c, null)], { undecided: 'exclude' });
    expect(r.pairIds).toEqual([b]);
    expect(r.counts).toEqual({ asLabelled: 0, swapped: 1, excluded: 2 });
    expect(r.excludedBy.undecided).toBe(2);
  });

  it('holds out decided pairs of the deterministic hold-out unless told not to; undecided ones never', () => {
    expect(applyDecisions([row(held, 'keep')]).excludedBy.heldOut).toBe(1);
    expect(applyDecisions([row(held, null)]).counts.asLabelled).toBe(1);
    expect(applyDecisions([row(held, 'swap')], { holdOut: false }).counts.swapped).toBe(1);
    // about 20 % of ids, the same answer every time
    const share = Array.from({ length: 5000 }, (_, i) => inCuratorHoldout(i)).filter(Boolean).length / 5000;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
    expect(inCuratorHoldout(held)).toBe(true);
  });

  it('refuses an unknown undecided policy naming the field', () => {
    expect(() => applyDecisions([row(1, null)], { undecided: 'maybe' as never })).toThrow(/undecided/);
  });
});

describe('train --from-decisions on the demo kit', () => {
  const home = tempDir('sparserm-declabels-');
  process.env.SPARSERM_HOME = home;
  let kit: DemoKit;
  let store: Store;
  const cacheRoot = path.join(home, 'features');
  const pairs = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(0, 60);
  let ids: number[];

  beforeAll(async () => {
    kit = await ensureDemoKit();
    store = openStore(':memory:');
    const ds = store.datasets.create('decided');
    pairs.forEach((p, i) =>
      store.pairs.insert(ds.id, null, {
        line: i + 1, source: p.source ?? null, externalId: p.id ?? null, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
        contentHash: crypto.createHash('sha256').update(JSON.stringify([p.prompt, p.chosen, p.rejected])).digest('hex'),
      }),
    );
    ids = store.pairs.ids({ datasetId: ds.id });
  }, 300_000);

  const train = (out: string, fromDecisions?: Parameters<typeof trainOnDataset>[0]['fromDecisions']) =>
    trainOnDataset({ store, dataset: 'decided', checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, k: 8, maxEpochs: 3, outDir: path.join(home, out), cacheRoot, ep: 'cpu', ...(fromDecisions ? { fromDecisions } : {}) });

  it('swapped pairs enter the matrix flipped, dropped ones not at all, from the cache (0 backbone runs)', { timeout: 300_000 }, async () => {
    await train('m0'); // original labels: fills the feature cache
    const original = fitCalls.at(-1)!;
    expect(original.refs).toHaveLength(60);
    const H = original.table.hiddenSize;
    const zOf = (t: FeatureTable, r: number) => Array.from(t.z.subarray(r * H, (r + 1) * H));

    const swapIds = ids.filter((id) => !inCuratorHoldout(id)).slice(0, 6);
    const dropIds = ids.filter((id) => !inCuratorHoldout(id)).slice(6, 10);
    const keepHeld = ids.filter((id) => inCuratorHoldout(id)).slice(0, 3);
    expect(keepHeld.length).toBeGreaterThan(0);
    store.decisions.decide({ datasetId: 1, ids: swapIds }, 'swap', { actor: 't' });
    store.decisions.decide({ datasetId: 1, ids: dropIds }, 'drop', { actor: 't' });
    store.decisions.decide({ datasetId: 1, ids: keepHeld }, 'keep', { actor: 't' });

    const before = backboneRunCounter();
    const res = await train('m1', {});
    expect(backboneRunCounter()).toBe(before);
    expect(res.features.responsesComputed).toBe(0);

    const fit = fitCalls.at(-1)!;
    const set = decisionTrainingSet(store, 'decided');
    expect(fit.refs).toHaveLength(60 - dropIds.length - keepHeld.length);
    expect(set.pairIds).toHaveLength(fit.refs.length);
    for (const d of [...dropIds, ...keepHeld]) expect(set.pairIds).not.toContain(d);
    // Row by row: the chosen row of a swapped pair is the original rejected response's features and vice versa.
    set.pairIds.forEach((pid, j) => {
      const i = ids.indexOf(pid);
      const swapped = swapIds.includes(pid);
      const ref = fit.refs[j];
      expect(zOf(fit.table, ref.chosen)).toEqual(zOf(original.table, swapped ? 2 * i + 1 : 2 * i));
      expect(zOf(fit.table, ref.rejected)).toEqual(zOf(original.table, swapped ? 2 * i : 2 * i + 1));
    });

    const d = res.manifest.training.decisions!;
    expect(d).toMatchObject({ undecided: 'as-labelled', holdOut: true, asLabelled: 60 - 6 - 4 - keepHeld.length, swapped: 6, excluded: 4 + keepHeld.length, excludedBy: { dropped: 4, undecided: 0, heldOut: keepHeld.length } });
    const last = store.decisions.groups(1, { limit: 1 })[0];
    expect(d.groupId).toBe(last.id);
    expect(d.decisionId).toBe(Math.max(...store.decisions.entries(last.id).map((e) => e.id)));
    expect(res.manifest.training.dataHash).toBe(pairsHash(set.pairs));
    const total = res.manifest.training.pairs;
    expect(total.train + total.val + total.test).toBe(fit.refs.length);
  });

  it("undecided 'exclude' trains on the decided, non-dropped, non-held-out pairs only", { timeout: 300_000 }, async () => {
    const before = backboneRunCounter();
    const res = await train('m2', { undecided: 'exclude' });
    expect(backboneRunCounter()).toBe(before);
    const fit = fitCalls.at(-1)!;
    // 6 swapped (none held out); the kept ones are all held out; 4 dropped
    expect(fit.refs).toHaveLength(6);
    expect(res.manifest.training.decisions).toMatchObject({ undecided: 'exclude', asLabelled: 0, swapped: 6, excluded: 54 });
  });

  it('refuses when fewer than 2 pairs are left, saying why', () => {
    expect(() => decisionTrainingSet(store, 'decided', { undecided: 'exclude', holdOut: true, holdOutFraction: 1 })).toThrow(/at least 2 pairs left to train on.*got 0 \(4 dropped, 4\d undecided left out, \d+ held out\)/);
  });
});
