/**
 * The app's one-click demo (installDemo job) and `sparserm demo` (runDemo) on one database: the same dataset
 * ("demo-truthfulqa", reused) and one Models row per demo checkpoint / SAE, which the demo reward model references.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { DEMO_DATASET } from '../../../main/engine/demo/demo-store';
import { runDemo } from '../../../main/engine/demo/run-demo';
import { loadSae } from '../../../main/engine/sae';
import { tempDir } from '../../helpers/paths';
import { followJob } from '../../helpers/jobs';

const home = tempDir('sparserm-api-demo-');
process.env.SPARSERM_HOME = home;
const env = { ...process.env, SPARSERM_HOME: home };

const follow = followJob;

describe('the demo through the API and the CLI share one dataset and one row per model', () => {
  let kit: DemoKit;
  let h: Handlers;
  beforeAll(async () => {
    kit = await ensureDemoKit();
    h = createHandlers({ dbPath: path.join(home, 'studio.db') });
  }, 300_000);
  afterAll(() => h?.close());

  it('installDemo, then runDemo, then installDemo again: nothing duplicated', async () => {
    const pairsInKit = fs.readFileSync(kit.dataset, 'utf8').split('\n').filter((l) => l.trim()).length;
    // What an earlier CLI run left in an older database: the kit's files registered under content hashes.
    const saeHash = (await loadSae(kit.sae)).hash;
    h.store.models.upsertBackbone({ id: 'content-hash-of-demo-backbone', name: 'checkpoint', path: kit.checkpoint });
    h.store.models.upsertSae({ id: saeHash, name: 'params', path: kit.sae, hash: saeHash, backboneId: 'content-hash-of-demo-backbone' });

    const installed = await follow(h, (await h.installDemo({})).jobId);
    expect(installed.state).toBe('done');
    expect(installed.result).toMatchObject({ checkpointId: kit.modelId, saeId: kit.saeId, dataset: { name: DEMO_DATASET, pairs: pairsInKit, action: 'imported' } });
    const datasets = (await h.listDatasets({})).datasets;
    expect(datasets.map((d) => [d.name, d.isDemo, d.counts.total])).toEqual([[DEMO_DATASET, true, pairsInKit]]);
    // The older rows were folded into the kit's ids.
    expect(h.store.models.backbones().map((b) => b.id)).toEqual([kit.modelId]);
    expect(h.store.models.saes().map((s) => [s.id, s.backboneId])).toEqual([[kit.saeId, kit.modelId]]);

    // `sparserm demo` on the same database: the same dataset, and its reward model references the same rows.
    const cli = await runDemo({ store: h.store, env, ep: 'cpu' });
    expect(cli.dataset).toMatchObject({ datasetId: Number(datasets[0].id), name: DEMO_DATASET, action: 'reused' });
    const rm = h.store.models.requireRewardModel(cli.rewardModel.id);
    expect([rm.backboneId, rm.saeId, rm.demo]).toEqual([kit.modelId, kit.saeId, true]);

    const again = await follow(h, (await h.installDemo({})).jobId);
    expect(again.result).toMatchObject({ datasetId: datasets[0].id, dataset: { action: 'reused' } });
    const models = (await h.listModels({})).models;
    expect(models.filter((m) => m.kind === 'checkpoint').map((m) => [m.id, m.isDemo])).toEqual([[kit.modelId, true]]);
    expect(models.filter((m) => m.kind === 'sae').map((m) => [m.id, m.isDemo, m.details.layer])).toEqual([[kit.saeId, true, kit.layer]]);
    expect(models.filter((m) => m.kind === 'reward-model').map((m) => m.id)).toEqual([cli.rewardModel.id]);
    expect(h.store.models.backbones()).toHaveLength(1);
    expect(h.store.models.saes()).toHaveLength(1);
    // One demo dataset; the demo's generation loop adds its two generated rounds (replaced, never duplicated, on re-run).
    expect((await h.listDatasets({})).datasets.map((d) => [d.name, d.lineage?.round ?? null])).toEqual([[DEMO_DATASET, null], ['demo-generated-r1', 1], ['demo-generated-r2', 2]]);
  }, 600_000);
});
