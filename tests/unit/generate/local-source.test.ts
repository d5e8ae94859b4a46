/**
 * localSource on the demo kit (random Gemma-2-shaped weights, a real-format BPE tokenizer with a Gemma chat
 * template): the generation prompt is exactly the feature path's rendering up to the response, candidates decode to
 * their text, features are captured only when the checkpoint is the reward model's backbone, and they equal the
 * two-pass path (openBackbone + poolHidden) on the same ids within 1e-4; optionLogprobs are log-probabilities.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, loadTokenizer, openBackbone, type ChatTokenizer } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { generationPromptIds, localSource } from '../../../main/engine/generate/local-source';
import { poolHidden } from '../../../main/engine/sparserm/features';
import { encodePromptResponse } from '../../../main/engine/sparserm/prompt-encoding';
import { tempDir } from '../../helpers/paths';

const work = tempDir('sparserm-local-source-');
const cacheDir = path.join(work, 'graphs');
let kit: DemoKit;
let tok: ChatTokenizer;
let hash: string;

beforeAll(async () => {
  kit = await ensureDemoKit(); // the shared kit (models/demo), read only; graphs go to this test's cache
  tok = await loadTokenizer(kit.checkpoint);
  const ckpt = await loadCheckpoint(kit.checkpoint);
  hash = await ckpt.contentHash(kit.layer);
  ckpt.close();
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const messages = [{ role: 'user' as const, content: 'What happens if you crack your knuckles a lot?' }];
const req = { messages, n: 3, temperature: 0.8, topP: 0.95, topK: 50, seed: 7, maxNewTokens: 12 };

describe('localSource', () => {
  it('the generation prompt is the two-pass encoding up to the response', () => {
    const enc = encodePromptResponse(tok, messages[0].content, 'Nothing in particular happens.');
    expect(generationPromptIds(tok, messages)).toEqual(enc.ids.slice(0, enc.responseStart));
  });

  it('captures features of the reward model\'s backbone, equal to the two-pass path on the same ids', async () => {
    const src = await localSource({ checkpoint: kit.checkpoint, cacheDir, ep: 'cpu', capture: { layer: kit.layer, backboneHash: hash, pooling: 'mean' } });
    const bb = await openBackbone({ checkpoint: kit.checkpoint, layer: kit.layer, cacheDir, ep: 'cpu' });
    try {
      expect(src.description).toMatchObject({ kind: 'local', label: kit.checkpoint });
      const cands = await src.generate(req);
      expect(cands).toHaveLength(3);
      const again = await src.generate(req);
      expect(again.map((c) => c.tokens)).toEqual(cands.map((c) => c.tokens));
      const prompt = generationPromptIds(tok, messages);
      const H = bb.info.hiddenSize;
      for (const c of cands) {
        expect(c.text).toBe(tok.decode(c.tokens!, { skipSpecialTokens: true }));
        expect(c.captured).toHaveLength(H);
        const ids = [...prompt, ...c.tokens!, tok.specialIds.endOfTurn];
        const [h] = await bb.hidden([ids]);
        const two = poolHidden(h, H, prompt.length, c.tokens!.length ? prompt.length + c.tokens!.length : prompt.length + 1, 'mean');
        let err = 0;
        for (let k = 0; k < H; k++) err = Math.max(err, Math.abs(two[k] - c.captured![k]));
        expect(err).toBeLessThan(1e-4);
      }
      const lp = await src.optionLogprobs(messages, ['A', 'B']);
      expect(lp).toHaveLength(2);
      for (const v of lp!) expect(v).toBeLessThan(0);
      expect(lp![0]).not.toBe(lp![1]);
    } finally {
      await src.close();
      await bb.close();
    }
  });

  it('captures nothing when the two-pass path would cut the sequence or use another precision', async () => {
    const prompt = generationPromptIds(tok, messages);
    const cut = await localSource({ checkpoint: kit.checkpoint, cacheDir, ep: 'cpu', capture: { layer: kit.layer, backboneHash: hash, pooling: 'mean', maxTokens: prompt.length } });
    try {
      const cands = await cut.generate({ ...req, n: 2 });
      // prompt + anything + the turn's closing tokens is longer than max tokens: the feature path would cut it
      for (const c of cands) expect(c.captured).toBeUndefined();
    } finally {
      await cut.close();
    }
    const other = await localSource({ checkpoint: kit.checkpoint, cacheDir, ep: 'cpu', capture: { layer: kit.layer, backboneHash: hash, pooling: 'mean', precision: 'f16' } });
    try {
      expect((await other.generate({ ...req, n: 1 }))[0].captured).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('captures nothing when the checkpoint is not the reward model\'s backbone', async () => {
    const src = await localSource({ checkpoint: kit.checkpoint, cacheDir, ep: 'cpu', capture: { layer: kit.layer, backboneHash: 'f'.repeat(64), pooling: 'mean' } });
    try {
      const cands = await src.generate({ ...req, n: 1 });
      expect(cands[0].captured).toBeUndefined();
      expect(cands[0].logprob).toBeLessThan(0);
    } finally {
      await src.close();
    }
  });
});
