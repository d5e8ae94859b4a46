/**
 * Decoder session behaviour on random Gemma-2 checkpoints (window 4, shorter than prompt + continuation):
 * batched (left-padded) decoding equals decoding one prompt at a time, seeded sampling is reproducible and
 * independent of batching, eos stops a candidate (an empty response included), max new tokens cuts it, and the
 * resid_post(L) captured while decoding, pooled, equals the two-pass feature path (openBackbone + poolHidden on the
 * same token ids) within 1e-4.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openBackbone } from '../../../main/engine/backbone';
import { openDecoder, type Decoder } from '../../../main/engine/generate/decoder';
import { poolCaptured } from '../../../main/engine/generate/local-source';
import { poolHidden } from '../../../main/engine/sparserm/features';
import { tempDir } from '../../helpers/paths';
import { gemma2Config, randomIds, writeRandomCheckpoint } from '../backbone/random-checkpoint';

const work = tempDir('sparserm-decoder-');
const cacheDir = path.join(work, 'graphs');
const LAYER = 1;
const cfg = gemma2Config({ sliding_window: 4, num_hidden_layers: 3, vocab_size: 120 });
let dir: string;
let dec: Decoder;
const prompts = [randomIds(7, cfg.vocab_size, 1), randomIds(3, cfg.vocab_size, 2), randomIds(5, cfg.vocab_size, 3)];

beforeAll(async () => {
  dir = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { seed: 31 });
  dec = await openDecoder({ checkpoint: dir, captureLayer: LAYER, cacheDir, ep: 'cpu' });
});
afterAll(async () => {
  await dec?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const greedy = { temperature: 0, topP: 1, topK: 0, seed: 0, maxNewTokens: 8 };
const sampled = { temperature: 0.9, topP: 0.95, topK: 40, seed: 1234, maxNewTokens: 8 };

describe('decoder', () => {
  it('batched decoding with left padding equals one prompt at a time (greedy and seeded sampling)', async () => {
    for (const params of [greedy, sampled]) {
      const batch = await dec.generateIds(prompts, params);
      for (const [i, p] of prompts.entries()) {
        const [alone] = await dec.generateIds([p], { ...params, streamOffset: i });
        expect(batch[i].tokens).toEqual(alone.tokens);
        expect(batch[i].finishReason).toBe(alone.finishReason);
        expect(batch[i].logprob).toBeCloseTo(alone.logprob, 4);
      }
      expect(batch.some((g) => g.tokens.length >= 4)).toBe(true);
    }
  });

  it('a prompt prefilled in chunks on the cache (2 tokens per run) decodes the same', async () => {
    const chunked = await openDecoder({ checkpoint: dir, captureLayer: LAYER, cacheDir, ep: 'cpu', prefillChunkTokens: 2 });
    try {
      for (const params of [greedy, sampled]) {
        const a = await dec.generateIds(prompts, params);
        const b = await chunked.generateIds(prompts, params);
        expect(b.map((g) => g.tokens)).toEqual(a.map((g) => g.tokens));
        b.forEach((g, i) => expect(g.logprob).toBeCloseTo(a[i].logprob, 4));
      }
      const lp = await dec.continuationLogprobs(prompts[0], [[5, 6, 7], [8]]);
      const lq = await chunked.continuationLogprobs(prompts[0], [[5, 6, 7], [8]]);
      lq.forEach((v, i) => expect(v).toBeCloseTo(lp[i], 4));
      // teacher-forced log-probability of a greedy continuation = the log-probability generation summed
      const [g] = await dec.generateIds([prompts[0]], { ...greedy, maxNewTokens: 3 });
      if (g.finishReason === 'length') expect((await chunked.continuationLogprobs(prompts[0], [g.tokens]))[0]).toBeCloseTo(g.logprob, 4);
    } finally {
      await chunked.close();
    }
  });

  it('seeded sampling is reproducible; another seed gives other tokens', async () => {
    const a = await dec.generateIds(prompts, sampled);
    const b = await dec.generateIds(prompts, sampled);
    expect(b.map((g) => g.tokens)).toEqual(a.map((g) => g.tokens));
    const c = await dec.generateIds(prompts, { ...sampled, seed: 99 });
    expect(c.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
    for (const g of a) expect(g.logprob).toBeLessThan(0);
  });

  it('max new tokens cuts with finishReason length', async () => {
    const [g] = await dec.generateIds([prompts[0]], { ...greedy, maxNewTokens: 3 });
    if (g.finishReason === 'length') expect(g.tokens).toHaveLength(3);
    else expect(g.tokens.length).toBeLessThan(3);
  });

  it('stops at eos (config.json + generation_config.json), also on the first token: an empty response', async () => {
    const [first] = await dec.generateIds([prompts[1]], { ...greedy, maxNewTokens: 1 });
    const [ref] = await dec.generateIds([prompts[0]], greedy);
    const stopAt = ref.tokens[2];
    const eosDir = writeRandomCheckpoint(path.join(work, 'ckpt-eos'), { ...cfg, eos_token_id: 1 }, { seed: 31 });
    fs.writeFileSync(path.join(eosDir, 'generation_config.json'), JSON.stringify({ eos_token_id: [first.tokens[0], stopAt] }));
    const d2 = await openDecoder({ checkpoint: eosDir, captureLayer: LAYER, cacheDir, ep: 'cpu' });
    try {
      expect(d2.info.stopIds).toEqual([...new Set([1, first.tokens[0], stopAt])].sort((a, b) => a - b));
      const [empty, cut] = await d2.generateIds([prompts[1], prompts[0]], greedy);
      expect(empty).toMatchObject({ tokens: [], finishReason: 'stop', stopToken: first.tokens[0] });
      expect(cut.finishReason).toBe('stop');
      expect(cut.tokens).toEqual(ref.tokens.slice(0, ref.tokens.indexOf(stopAt)));
      // score while generating: the empty response pools its stop token, as the two-pass path pools <end_of_turn>
      await expectCapturedEqualsTwoPass(eosDir, [prompts[1], prompts[0]], [empty, cut]);
    } finally {
      await d2.close();
    }
  });

  it('captured resid_post(L), pooled, equals the two-pass features on the same ids within 1e-4', async () => {
    const gens = await dec.generateIds(prompts, sampled);
    await expectCapturedEqualsTwoPass(dir, prompts, gens);
  });
});

async function expectCapturedEqualsTwoPass(ckptDir: string, ps: number[][], gens: Awaited<ReturnType<Decoder['generateIds']>>) {
  const bb = await openBackbone({ checkpoint: ckptDir, layer: LAYER, cacheDir, ep: 'cpu' });
  try {
    const H = cfg.hidden_size;
    for (const [i, g] of gens.entries()) {
      // Two-pass ids: prompt, response tokens, then the stop token (as a chat template closes the turn).
      const ids = [...ps[i], ...g.tokens, ...(g.stopToken !== undefined ? [g.stopToken] : [])];
      const [h] = await bb.hidden([ids]);
      const P = ps[i].length;
      const end = g.tokens.length ? P + g.tokens.length : P + 1;
      for (const pooling of ['mean', 'last'] as const) {
        const two = poolHidden(h, H, P, end, pooling);
        const cap = poolCaptured(g.captured!, H, pooling);
        let err = 0;
        for (let k = 0; k < H; k++) err = Math.max(err, Math.abs(two[k] - cap[k]));
        expect(err).toBeLessThan(1e-4);
      }
    }
  } finally {
    await bb.close();
  }
}
