import crypto from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { openStore } from '../../../main/engine/store';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { trainOnDataset, scoreDatasetIntoStore, scorePairs } from '../../../main/engine/sparserm/service';
import { dataDir, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-store-');
process.env.SPARSERM_HOME = home;
let kit: DemoKit;

beforeAll(async () => {
  kit = await ensureDemoKit();
}, 300_000);

describe('store-backed workflows', () => {
  it('trains on a store dataset, registers the model, and records a scoring run with per-pair latents', async () => {
    const store = openStore(':memory:');
    try {
      const ds = store.datasets.create('tqa-sample');
      const pairs = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(300, 380);
      pairs.forEach((p, i) =>
        store.pairs.insert(ds.id, null, {
          line: i + 1, source: p.source ?? null, externalId: p.id ?? null, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
          contentHash: crypto.createHash('sha256').update(JSON.stringify([p.prompt, p.chosen, p.rejected])).digest('hex'),
        }),
      );
      const cacheRoot = path.join(home, 'features');
      const t = await trainOnDataset({ store, dataset: 'tqa-sample', checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, k: 8, outDir: path.join(home, 'm'), cacheRoot, ep: 'cpu' });
      expect(t.manifest.training.dataset).toBe('tqa-sample');
      expect(store.models.rewardModel(t.manifest.id)?.folder).toBe(t.modelDir);

      const before = backboneRunCounter();
      const r = await scoreDatasetIntoStore({ store, dataset: 'tqa-sample', modelDir: t.modelDir, cacheRoot, ep: 'cpu', topLatents: 5 });
      expect(backboneRunCounter()).toBe(before);
      expect(r.pairs).toBe(80);
      const run = store.runs.get(r.runId);
      expect(run.status).toBe('done');
      expect(store.runs.scoreCount(r.runId)).toBe(80);

      // Stored scores equal the direct scores, and the latents stored per pair are the model's selected ones.
      const direct = await scorePairs({ modelDir: t.modelDir, pairs, cacheRoot, ep: 'cpu' });
      const ids = store.pairs.ids({ datasetId: ds.id });
      const s0 = store.runs.score(r.runId, ids[0])!;
      expect(s0.scoreChosen).toBeCloseTo(direct[0].chosen, 5);
      expect(s0.margin).toBeCloseTo(direct[0].margin, 5);
      const lat = store.runs.latentsForPair(r.runId, ids[0]);
      expect(lat).toHaveLength(5);
      const selected = new Set(t.manifest.selected.map((s) => s.index));
      for (const l of lat) expect(selected.has(l.latent)).toBe(true);
    } finally {
      store.close();
    }
  });

  it('refuses an unknown dataset with an InputError naming it', async () => {
    const store = openStore(':memory:');
    try {
      await expect(trainOnDataset({ store, dataset: 'nope', checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae })).rejects.toThrow(/nope/);
    } finally {
      store.close();
    }
  });
});
