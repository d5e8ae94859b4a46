/**
 * What a reward model was trained with, through listModels (issue 14: "Review next" retrains with exactly these):
 * the registered checkpoint / SAE rows holding the manifest's checkpoint and SAE, and its layer, K, loss, precision
 * and max tokens. With two registrations of the same checkpoint and SAE (identical content at other paths), the ids
 * are the ones the train job used, not the first listed; a checkpoint folder that no longer holds the manifest's
 * config, or no registered SAE with the manifest's content hash, gives null (never another model).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import type { ModelInfo } from '../../../main/api/contract';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { tempDir } from '../../helpers/paths';
import { truthfulQa } from './seed';
import { followJob } from '../../helpers/jobs';

const home = tempDir('sparserm-api-trained-with-');
process.env.SPARSERM_HOME = home;

const follow = followJob;

describe('listModels: what a reward model was trained with', () => {
  let h: Handlers;
  let kit: DemoKit;
  let first: { checkpoint: string; sae: string };
  let used: { checkpoint: string; sae: string; checkpointDir: string; saeFile: string };
  let rewardModelId: string;
  const rmInfo = async (): Promise<ModelInfo> => (await h.listModels({})).models.find((m) => m.id === rewardModelId)!;

  beforeAll(async () => {
    kit = await ensureDemoKit();
    h = createHandlers({ dbPath: path.join(home, 'studio.db'), actor: 'tester' });
    // The kit's own checkpoint and SAE are registered first (what a guess like "the first checkpoint" would take) ...
    first = { checkpoint: (await h.addCheckpoint({ path: kit.checkpoint })).id, sae: (await h.addSae({ path: kit.sae })).id };
    // ... and copies of them (same content, other paths) are the ones the model is trained with.
    const checkpointDir = path.join(home, 'copy-checkpoint');
    fs.cpSync(kit.checkpoint, checkpointDir, { recursive: true });
    const saeFile = path.join(home, 'copy-sae', 'params.npz');
    fs.mkdirSync(path.dirname(saeFile), { recursive: true });
    fs.copyFileSync(kit.sae, saeFile);
    used = { checkpoint: (await h.addCheckpoint({ path: checkpointDir })).id, sae: (await h.addSae({ path: saeFile })).id, checkpointDir, saeFile };
    expect(new Set([first.checkpoint, used.checkpoint]).size).toBe(2);
    expect(new Set([first.sae, used.sae]).size).toBe(2);

    const file = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(file, truthfulQa(30).map((r) => JSON.stringify(r)).join('\n') + '\n');
    expect((await follow(h, (await h.importDataset({ path: file, name: 'tqa-30' })).jobId)).state).toBe('done');
    const datasetId = (await h.listDatasets({})).datasets.find((d) => d.name === 'tqa-30')!.id;
    const train = await follow(h, (await h.train({ datasetId, checkpointId: used.checkpoint, saeId: used.sae, layer: kit.layer, k: 6, loss: 'bt', maxTokens: 64, precision: 'f16' })).jobId);
    expect(train.state).toBe('done');
    rewardModelId = (train.result as { rewardModelId: string }).rewardModelId;
  }, 300_000);
  afterAll(() => h?.close());

  it('names the checkpoint and SAE the train job used, with its layer, K, loss, precision and max tokens', async () => {
    const { models } = await h.listModels({});
    expect(models.filter((m) => m.kind === 'checkpoint').map((m) => m.id)).toEqual([first.checkpoint, used.checkpoint]);
    const rm = await rmInfo();
    expect(rm.details).toMatchObject({
      checkpointId: used.checkpoint,
      checkpointPath: path.resolve(used.checkpointDir),
      saeId: used.sae,
      saePath: path.resolve(used.saeFile),
      layer: kit.layer,
      k: 6,
      loss: 'bt',
      precision: 'f16',
      maxTokens: 64,
      saeEncoding: null,
    });
  });

  it('null when the registered SAE no longer has the manifest content hash; the same content under another row counts', async () => {
    const copy = h.store.models.sae(used.sae)!;
    const original = h.store.models.sae(first.sae)!;
    // The copy's file replaced by another SAE (as a re-registration would record): the kit's row holds the same
    // content as the manifest, so it stands in.
    h.store.models.upsertSae({ ...copy, hash: 'f'.repeat(64) });
    expect((await rmInfo()).details.saeId).toBe(first.sae);
    h.store.models.upsertSae({ ...original, hash: 'e'.repeat(64) });
    expect((await rmInfo()).details.saeId).toBeNull();
    h.store.models.upsertSae(copy);
    h.store.models.upsertSae(original);
    expect((await rmInfo()).details.saeId).toBe(used.sae);
  });

  it('null when the checkpoint folder no longer holds the config it was trained with (the identical kit folder is not taken)', async () => {
    const config = path.join(used.checkpointDir, 'config.json');
    const text = fs.readFileSync(config, 'utf8');
    try {
      fs.writeFileSync(config, text.replace(/\}\s*$/, ', "edited": true}\n'));
      expect((await rmInfo()).details.checkpointId).toBeNull();
      fs.rmSync(config);
      expect((await rmInfo()).details.checkpointId).toBeNull();
    } finally {
      fs.writeFileSync(config, text);
    }
    expect((await rmInfo()).details.checkpointId).toBe(used.checkpoint);
  });
});
