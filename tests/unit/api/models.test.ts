import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { fixturesDir, tempDir } from '../../helpers/paths';

const ckpt = path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32');
const sae = path.join(fixturesDir, 'sae-tiny', 'params.npz');
const saelens = path.join(fixturesDir, 'sae-tiny', 'saelens');

// The Models screen's operations on the real fixture formats (HF checkpoint folder, Gemma Scope npz, SAELens).
describe('models through the API', () => {
  let h: Handlers;
  beforeEach(() => {
    h = createHandlers({ dbPath: path.join(tempDir(), 'm.db') });
  });
  afterEach(() => h.close());

  it('registers a checkpoint folder and SAEs in both layouts, reading their shapes', async () => {
    const c = await h.addCheckpoint({ path: ckpt });
    expect(c).toMatchObject({ kind: 'checkpoint', path: ckpt, isDemo: false, details: { architecture: 'Gemma2ForCausalLM', layers: 4, hidden: 32 } });
    const s = await h.addSae({ path: sae });
    expect(s).toMatchObject({ kind: 'sae', isDemo: false, details: { dSae: 64, dIn: 32, format: 'npz' } });
    const l = await h.addSae({ path: saelens });
    expect(l.details.format).toBe('saelens');
    const { models } = await h.listModels({});
    expect(models.map((m) => m.kind).sort()).toEqual(['checkpoint', 'sae', 'sae']);
    // Registering the same folder again updates it instead of duplicating it.
    await h.addCheckpoint({ path: ckpt });
    expect((await h.listModels({})).models.filter((m) => m.kind === 'checkpoint')).toHaveLength(1);
  });

  it('checks compatibility: layer range and width, naming what is wrong', async () => {
    const c = await h.addCheckpoint({ path: ckpt });
    const s = await h.addSae({ path: sae });
    const ok = await h.checkCompatibility({ checkpointId: c.id, saeId: s.id, layer: 2 });
    expect(ok.ok).toBe(true);
    expect(ok.layer).toBe(2);
    const tooDeep = await h.checkCompatibility({ checkpointId: c.id, saeId: s.id, layer: 9 });
    expect(tooDeep.ok).toBe(false);
    expect(tooDeep.problems.join(' ')).toMatch(/layer 9 does not exist: the checkpoint has 4 layers/);
    await expect(h.checkCompatibility({ checkpointId: 'nope', saeId: s.id, layer: 1 })).rejects.toThrow(/registered checkpoint/);
  });

  it('imports Neuronpedia latent labels and attaches the label set to the chosen SAE', async () => {
    const s = await h.addSae({ path: sae });
    const file = path.join(tempDir(), 'labels.jsonl');
    fs.writeFileSync(
      file,
      [
        { modelId: 'gemma-2-tiny', layer: '2-tiny-res-64', index: '5', description: 'negation / disagreement', explanationModelName: 'gpt-4o-mini', typeName: 'oai_token-act-pair' },
        { modelId: 'gemma-2-tiny', layer: '2-tiny-res-64', index: '17', description: 'wrong, untrue remarks', explanationModelName: 'gpt-4o-mini', typeName: 'oai_token-act-pair' },
      ].map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
    expect(await h.importLabels({ path: file, saeId: s.id })).toEqual({ imported: 2 });
    expect(h.store.labels.best('gemma-2-tiny', '2-tiny-res-64', [5, 17])).toEqual(new Map([[5, 'negation / disagreement'], [17, 'wrong, untrue remarks']]));
    expect(h.store.models.sae(s.id)!.metadata.neuronpedia).toEqual({ modelId: 'gemma-2-tiny', saeId: '2-tiny-res-64' });
  });

  it('refuses a folder that is not a checkpoint with an input error naming it', async () => {
    await expect(h.addCheckpoint({ path: path.join(fixturesDir, 'sae-tiny') })).rejects.toThrow(/sae-tiny/);
    await expect(h.addSae({ path: path.join(ckpt, 'config.json') })).rejects.toThrow();
  });

  it('builds the truncated backbone graph as a job and reuses it the second time', async () => {
    const c = await h.addCheckpoint({ path: ckpt });
    const follow = async (jobId: string) => {
      for (;;) {
        const j = await h.getJob({ jobId });
        if (j.state !== 'running' && j.state !== 'queued') return j;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    process.env.SPARSERM_CACHE = tempDir();
    try {
      const first = await follow((await h.buildModel({ checkpointId: c.id, layer: 1 })).jobId);
      expect(first.state).toBe('done');
      expect(first.result).toMatchObject({ reused: false });
      const second = await follow((await h.buildModel({ checkpointId: c.id, layer: 1 })).jobId);
      expect(second.result).toMatchObject({ reused: true });
    } finally {
      delete process.env.SPARSERM_CACHE;
    }
  });
});
