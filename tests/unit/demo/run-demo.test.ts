import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CancelledError } from '../../../main/engine/errors';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { DEMO_DATASET, ensureDemoDataset } from '../../../main/engine/demo/demo-store';
import { runDemo, type DemoResult } from '../../../main/engine/demo/run-demo';
import { explainPair } from '../../../main/engine/sparserm/service';
import { openStore, type Store } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';

// Every per-user path (database, caches, reward models) in a throwaway home.
const home = tempDir('sparserm-rundemo-');
process.env.SPARSERM_HOME = home;
const env = { ...process.env, SPARSERM_HOME: home };

let kit: DemoKit;
let store: Store;
let first: DemoResult;

beforeAll(async () => {
  kit = await ensureDemoKit();
  store = openStore(path.join(home, 'sparserm.db'));
  first = await runDemo({ store, env, ep: 'cpu' });
}, 300_000);

afterAll(() => store?.close());

describe('runDemo (engine, with the app’s open store)', () => {
  it('imports, trains on a prompt split, scores, filters and exports the kept pairs', () => {
    expect(first.label).toBe('demo (random weights)');
    expect(first.dataset).toMatchObject({ name: DEMO_DATASET, pairs: 790, action: 'imported' });
    const t = first.rewardModel.pairs;
    expect(t.train + t.val + t.test).toBe(790);
    expect(first.rewardModel.heldOutPairs).toBe(t.test);
    expect(first.rewardModel.heldOutAccuracy).not.toBeNull();
    // Filter counts and export counts describe the same pairs.
    const c = first.filter.counts;
    expect(c.keep + c.drop + c.uncertain + c.unscored).toBe(790);
    expect(first.export.counts.exported).toBe(c.keep);
    expect(first.export.counts.dropped).toBe(c.drop);
    const lines = fs.readFileSync(first.outputFile, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(c.keep);
    expect(fs.readFileSync(first.export.dropped!, 'utf8').trim().split('\n')).toHaveLength(c.drop);
    // The model is registered as a demo model, with the kit's labels in the store.
    expect(store.models.rewardModel(first.rewardModel.id)?.demo).toBe(true);
    expect(store.labels.best(kit.modelId, kit.saeId, [0, 1, 2]).size).toBe(3);
    expect(first.summary.join('\n')).toMatch(/held-out accuracy [\d.]+% on \d+ test pairs/);
  });

  it('runs the generation loop: the demo checkpoint generates 2 rounds, SparseRM filters the instructed pairs, round 2 is exported with its lineage', () => {
    const [r1, r2] = first.generation.rounds;
    expect(r1).toMatchObject({ dataset: 'demo-generated-r1', round: 1, recipe: 'instructed', prompts: 4, candidates: 16 });
    // One pair per candidate index and prompt, less any pair of two identical answers.
    expect(r1!.pairs).toBeGreaterThan(0);
    expect(r1!.pairs).toBeLessThanOrEqual(8);
    expect(r2).toMatchObject({ dataset: 'demo-generated-r2', round: 2, prompts: 4, candidates: 16 });
    expect(store.generations.lineage(r2!.datasetId)).toMatchObject({ round: 2, parentDatasetId: r1!.datasetId, policyLabel: kit.checkpoint });
    // Every candidate scored (captured while decoding); verdicts drop exactly the pairs SparseRM contradicts.
    expect(store.generations.candidates(r2!.runId).every((c) => c.score !== null)).toBe(true);
    expect(r2!.kept + r2!.dropped).toBe(r2!.pairs);
    const lines = fs.readFileSync(first.generation.export.out, 'utf8').trim().split('\n').filter(Boolean);
    expect(lines).toHaveLength(r2!.kept);
    const prov = JSON.parse(fs.readFileSync(first.generation.export.provenance, 'utf8'));
    expect(prov.lineage).toMatchObject({ round: 2, recipe: 'instructed', policy: kit.checkpoint, parent_dataset: { name: 'demo-generated-r1' } });
    expect(first.summary.join('\n')).toMatch(/generate round 2: .* tokens\/s/);
  });

  it('re-running reuses dataset, model and scoring run: nothing duplicated, same export', async () => {
    const before = fs.readFileSync(first.outputFile, 'utf8');
    const again = await runDemo({ store, env, ep: 'cpu' });
    expect(again.dataset).toMatchObject({ datasetId: first.dataset.datasetId, action: 'reused' });
    expect(again.rewardModel).toMatchObject({ id: first.rewardModel.id, reused: true });
    expect(again.run).toMatchObject({ id: first.run.id, reused: true });
    expect(again.filter.id).toBe(first.filter.id);
    expect(store.datasets.list().filter((d) => d.name === DEMO_DATASET)).toHaveLength(1);
    expect(store.pairs.count({ datasetId: first.dataset.datasetId })).toBe(790);
    expect(store.runs.list(first.dataset.datasetId)).toHaveLength(1);
    expect(fs.readFileSync(again.outputFile, 'utf8')).toBe(before);
  }, 120_000);

  it('a curator’s decisions on the demo dataset survive a re-run and reach the export', async () => {
    const dropped = store.pairs.list({ datasetId: first.dataset.datasetId, verdict: ['drop'], limit: 1 }).items[0];
    expect(dropped).toBeDefined();
    store.decisions.decidePair(dropped.id, 'swap', { actor: 'test', note: 'labels were reversed' });
    const again = await runDemo({ store, env, ep: 'cpu' });
    expect(again.export.counts.swapped).toBe(1);
    const rows = fs.readFileSync(again.outputFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toContainEqual({ prompt: dropped.prompt, chosen: dropped.rejected, rejected: dropped.chosen });
    store.decisions.undo(first.dataset.datasetId, 'test');
  }, 120_000);

  it('explanations of a demo pair show real latents firing on real tokens, with their demo labels', async () => {
    const pair = store.pairs.list({ datasetId: first.dataset.datasetId, limit: 1 }).items[0];
    const labels = store.labels.best(kit.modelId, kit.saeId, Array.from({ length: kit.dSae }, (_, i) => i));
    const ex = await explainPair({ modelDir: first.rewardModel.dir, prompt: pair.prompt, chosen: pair.chosen, rejected: pair.rejected, labels, ep: 'cpu' });
    const all = [...ex.chosen.contributions, ...ex.rejected.contributions];
    expect(all.length).toBeGreaterThan(0);
    expect(all.some((c) => c.tokens.length > 0)).toBe(true);
    expect(all.every((c) => c.label?.startsWith('demo: '))).toBe(true);
  }, 120_000);

  it('with baselines, reports the paper’s comparisons on the same held-out pairs', async () => {
    const r = await runDemo({ store, env, ep: 'cpu', baselines: true });
    expect(r.baselines?.map((b) => b.name)).toEqual(['dense-linear-probe', 'raw-sae-activations', 'random-directions']);
    for (const b of r.baselines!) {
      expect(b.n).toBe(r.rewardModel.heldOutPairs);
      expect(b.accuracy).toBeGreaterThanOrEqual(0);
      expect(b.accuracy).toBeLessThanOrEqual(1);
    }
    expect(r.summary.join('\n')).toMatch(/baselines on the same held-out pairs: dense-linear-probe [\d.]+%/);
  }, 180_000);

  it('cancellation stops the job with CancelledError and leaves no export behind', async () => {
    const outDir = tempDir('sparserm-rundemo-cancel-');
    const ac = new AbortController();
    ac.abort();
    await expect(runDemo({ store, env, outDir, signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(fs.readdirSync(outDir)).toEqual([]);
  });
});

describe('ensureDemoDataset', () => {
  it('replaces a same-named dataset that holds other content, never keeping two', async () => {
    const s = openStore(':memory:');
    try {
      const other = path.join(tempDir('sparserm-ds-'), 'other.jsonl');
      fs.writeFileSync(other, JSON.stringify({ prompt: 'p', chosen: 'a', rejected: 'b' }) + '\n');
      s.datasets.create(DEMO_DATASET, { demo: true });
      const { importFile } = await import('../../../main/engine/data');
      await importFile(s, other, { dataset: DEMO_DATASET, format: 'standard' });
      const r = await ensureDemoDataset(s, kit.dataset);
      expect(r).toMatchObject({ action: 'replaced', pairs: 790 });
      expect(s.datasets.list().filter((d) => d.name === DEMO_DATASET)).toHaveLength(1);
      expect(s.datasets.byName(DEMO_DATASET)?.demo).toBe(true);
      expect(await ensureDemoDataset(s, kit.dataset)).toMatchObject({ action: 'reused', datasetId: r.datasetId });
    } finally {
      s.close();
    }
  });
});
