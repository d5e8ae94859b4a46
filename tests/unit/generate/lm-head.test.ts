/**
 * lm-head.ts: what decoding reads beyond the truncated graph, and the errors for checkpoints that lack it.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint } from '../../../main/engine/backbone';
import { readHeadSpec } from '../../../main/engine/backbone/lm-head';
import { InputError } from '../../../main/engine/errors';
import { writeSafetensors } from '../../../main/engine/formats/safetensors';
import { gemma2Config, llamaConfig, randomTensors, shapeOf, writeRandomCheckpoint } from '../backbone/random-checkpoint';

const work = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'sparserm-lmhead-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function headOf(dir: string) {
  const ckpt = await loadCheckpoint(dir);
  try {
    return readHeadSpec(ckpt);
  } finally {
    ckpt.close();
  }
}

async function errorOf(dir: string): Promise<InputError> {
  try {
    await headOf(dir);
  } catch (err) {
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('readHeadSpec', () => {
  it('Gemma-2: tied by default, final softcap from config, eos from config and generation_config', async () => {
    const dir = writeRandomCheckpoint(path.join(work, 'g'), gemma2Config({ num_hidden_layers: 1 }));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [1, 107] }));
    expect(await headOf(dir)).toEqual({ finalNorm: 'model.norm.weight', lmHead: 'model.embed_tokens.weight', tied: true, finalSoftcap: 30, eosIds: [1, 107] });
  });

  it('Llama: untied by default, no final softcap even if the key is present', async () => {
    const dir = writeRandomCheckpoint(path.join(work, 'l'), llamaConfig({ num_hidden_layers: 1, final_logit_softcapping: 5 }));
    expect(await headOf(dir)).toMatchObject({ lmHead: 'lm_head.weight', tied: false, finalSoftcap: null, eosIds: [1, 3] });
  });

  it('refuses a missing untied head, a missing final norm and eos ids outside the vocabulary', async () => {
    const cfg = gemma2Config({ num_hidden_layers: 1 });
    const dir = writeRandomCheckpoint(path.join(work, 'untied'), { ...cfg, tie_word_embeddings: false });
    let e = await errorOf(dir);
    expect(e).toBeInstanceOf(InputError);
    expect(e.details).toMatchObject({ tensor: 'lm_head.weight' });

    const noNorm = path.join(work, 'nonorm');
    fs.mkdirSync(noNorm);
    fs.writeFileSync(path.join(noNorm, 'config.json'), JSON.stringify(cfg));
    const t = randomTensors(cfg);
    delete t['model.norm.weight'];
    writeSafetensors(path.join(noNorm, 'model.safetensors'), Object.fromEntries(Object.entries(t).map(([n, d]) => [n, { dtype: 'F32' as const, shape: shapeOf(cfg, n), data: d }])));
    e = await errorOf(noNorm);
    expect(e.details).toMatchObject({ tensor: 'model.norm.weight' });

    const badEos = writeRandomCheckpoint(path.join(work, 'eos'), gemma2Config({ num_hidden_layers: 1 }));
    fs.writeFileSync(path.join(badEos, 'generation_config.json'), JSON.stringify({ eos_token_id: 100000 }));
    e = await errorOf(badEos);
    expect(e.details).toMatchObject({ file: path.join(badEos, 'generation_config.json'), field: 'eos_token_id' });
  });
});
