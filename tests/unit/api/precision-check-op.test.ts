/**
 * The precisionCheck op (issue 13 item 2) through the API handlers on the demo kit: a job whose result is the
 * precision report for the dataset's first pairs (f32 against itself agrees exactly; f16 is close), and an unknown
 * reward model is refused before any job starts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { ensureDemoKit } from '../../../main/engine/demo/kit';
import { tempDir } from '../../helpers/paths';
import { truthfulQa } from './seed';
import { followJob } from '../../helpers/jobs';

const home = tempDir('sparserm-api-precision-');
process.env.SPARSERM_HOME = home;

const follow = followJob;

describe('precisionCheck op (demo kit)', () => {
  let h: Handlers;
  let datasetId: string;
  let rewardModelId: string;

  beforeAll(async () => {
    const kit = await ensureDemoKit();
    h = createHandlers({ dbPath: path.join(home, 'studio.db'), actor: 'tester' });
    const checkpointId = (await h.addCheckpoint({ path: kit.checkpoint })).id;
    const saeId = (await h.addSae({ path: kit.sae })).id;
    const file = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(file, truthfulQa(40).map((r) => JSON.stringify(r)).join('\n') + '\n');
    expect((await follow(h, (await h.importDataset({ path: file, name: 'tqa-40' })).jobId)).state).toBe('done');
    datasetId = (await h.listDatasets({})).datasets.find((d) => d.name === 'tqa-40')!.id;
    const train = await follow(h, (await h.train({ datasetId, checkpointId, saeId, layer: kit.layer, k: 8, loss: 'margin' })).jobId);
    expect(train.state).toBe('done');
    rewardModelId = (train.result as { rewardModelId: string }).rewardModelId;
  }, 300_000);
  afterAll(() => h?.close());

  it('runs as a job whose result is the report on the first N pairs', async () => {
    const same = await follow(h, (await h.precisionCheck({ rewardModelId, datasetId, precision: 'f32', limit: 12 })).jobId);
    expect(same.state).toBe('done');
    const r = same.result as { pairs: number; precision: string; dataset: string; cosine: { min: number }; margins: { spearman: number }; decisions: { flips: number; threshold: number }; skippedTotal: number };
    expect(r).toMatchObject({ pairs: 12, precision: 'f32', dataset: 'tqa-40', skippedTotal: 0 });
    expect(r.cosine.min).toBeCloseTo(1, 9);
    expect(r.margins.spearman).toBe(1);
    expect(r.decisions).toMatchObject({ flips: 0, threshold: 0 });
    const f16 = await follow(h, (await h.precisionCheck({ rewardModelId, datasetId, precision: 'f16', limit: 12, threshold: 0.5 })).jobId);
    expect(f16.state).toBe('done');
    const q = f16.result as { precision: string; zRelError: number; cosine: { mean: number }; decisions: { threshold: number } };
    expect(q.precision).toBe('f16');
    expect(q.zRelError).toBeGreaterThan(0);
    expect(q.cosine.mean).toBeGreaterThan(0.999);
    expect(q.decisions.threshold).toBe(0.5);
  });

  it('an unknown reward model is refused up front', async () => {
    await expect(h.precisionCheck({ rewardModelId: 'no-such-model', datasetId, precision: 'f16' })).rejects.toThrow(/no-such-model|reward model/);
  });
});
