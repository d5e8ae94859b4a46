/**
 * Prefix sharing (sparserm/prefix-share.ts): resid_post(L) of the response rows equals the unshared path
 * (openBackbone, whole sequences) within 1e-4, with prompts shared by 2–3 responses, prompts of other lengths in the
 * same prefix batch, tiny batch bounds (many batches) and a window shorter than prompt + response.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ensureKvGraph, loadCheckpoint, openBackbone } from '../../../main/engine/backbone';
import { KV_INPUT_EMBEDS, KV_INPUT_MASK, KV_INPUT_QUERY_FROM, KV_OUTPUT_RESID, kvInputName, kvOutputName } from '../../../main/engine/backbone/kv-graph';
import { createSession, type TensorValue } from '../../../main/engine/runtime/ort';
import { ensureDemoKit } from '../../../main/engine/demo/kit';
import { readDemoPairs } from '../../../main/engine/demo/demo-data';
import { extractFeatures } from '../../../main/engine/sparserm/features';
import { openPrefixShared } from '../../../main/engine/sparserm/prefix-share';
import { tempDir } from '../../helpers/paths';
import { gemma2Config, llamaConfig, randomIds, writeRandomCheckpoint } from '../backbone/random-checkpoint';

const work = tempDir('sparserm-prefix-share-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.each([
  ['gemma2', gemma2Config({ sliding_window: 4, num_hidden_layers: 4 })],
  ['llama', llamaConfig({ num_hidden_layers: 4 })],
] as const)('prefix-shared resid_post (%s)', (name, cfg) => {
  it('equals the unshared path on the response rows within 1e-4', async () => {
    const dir = writeRandomCheckpoint(path.join(work, name), cfg as never, { seed: 13 });
    const cacheDir = path.join(work, `${name}-graphs`);
    const p1 = randomIds(9, cfg.vocab_size, 1);
    const p2 = randomIds(4, cfg.vocab_size, 2);
    const p3 = randomIds(12, cfg.vocab_size, 3);
    const r = (n: number, seed: number) => randomIds(n + 1, cfg.vocab_size, seed).slice(1);
    const seqs = [
      [...p1, ...r(3, 10)],
      [...p1, ...r(5, 11)],
      [...p2, ...r(2, 12)],
      [...p1, ...r(1, 13)],
      [...p3, ...r(6, 14)],
      [...p2, ...r(7, 15)],
    ];
    const from = [p1.length, p1.length, p2.length, p1.length, p3.length, p2.length];
    const layer = 2;
    const shared = await openPrefixShared({ checkpoint: dir, layer, cacheDir, ep: 'cpu', maxBatchTokens: 24 });
    const plain = await openBackbone({ checkpoint: dir, layer, cacheDir, ep: 'cpu' });
    try {
      const a = await shared.hiddenFrom(seqs, from);
      const b = await plain.hidden(seqs);
      const H = cfg.hidden_size;
      seqs.forEach((s, i) => {
        let err = 0;
        for (let k = from[i] * H; k < s.length * H; k++) err = Math.max(err, Math.abs(a[i][k] - b[i][k]));
        expect(err).toBeLessThan(1e-4);
        expect(a[i].subarray(from[i] * H).some((v) => v !== 0)).toBe(true);
      });
    } finally {
      await shared.close();
      await plain.close();
    }
  });
});

describe('feature extraction with prefix sharing (demo kit)', () => {
  it('gives the unshared features within 1e-4 under the same cache keys', async () => {
    const kit = await ensureDemoKit();
    const pairs = readDemoPairs().slice(0, 12);
    const responses = pairs.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]);
    const common = { checkpoint: kit.checkpoint, layer: kit.layer, pooling: 'mean' as const, ep: 'cpu' as const, batchSize: 10 };
    const shared = await extractFeatures(responses, { ...common, cacheRoot: path.join(work, 'fs-shared') });
    const plain = await extractFeatures(responses, { ...common, cacheRoot: path.join(work, 'fs-plain'), prefixShare: false });
    expect(shared.responsesComputed).toBe(plain.responsesComputed);
    expect(shared.responsesComputed).toBeGreaterThan(0);
    let err = 0;
    for (let k = 0; k < plain.table.z.length; k++) err = Math.max(err, Math.abs(shared.table.z[k] - plain.table.z[k]));
    expect(err).toBeLessThan(1e-4);
    // Same keys: the unshared run finds everything the shared one cached, and vice versa.
    const again = await extractFeatures(responses, { ...common, cacheRoot: path.join(work, 'fs-shared'), prefixShare: false });
    expect(again.responsesComputed).toBe(0);
    expect(Array.from(again.table.z)).toEqual(Array.from(shared.table.z));
  });
});

describe('query_from of the truncated KV graph', () => {
  it('block L computes only rows query_from.. (equal to those rows of a full run); keys and values still cover every token', async () => {
    const cfg = gemma2Config({ sliding_window: 3, num_hidden_layers: 3 });
    const dir = writeRandomCheckpoint(path.join(work, 'qf'), cfg as never, { seed: 21 });
    const ckpt = await loadCheckpoint(dir);
    const layer = 1;
    const T = 7;
    const H = cfg.hidden_size;
    try {
      const graph = await ensureKvGraph(ckpt, { depth: layer, precision: 'f32', cacheDir: path.join(work, 'qf-graphs') });
      const ort = await createSession(graph.graphPath, { ep: 'cpu', cache: false });
      try {
        const runFrom = (q: number) => {
          const feeds: Record<string, TensorValue> = {
            [KV_INPUT_EMBEDS]: { type: 'float32', data: ckpt.embeddingRows(randomIds(T, cfg.vocab_size, 5)), dims: [1, T, H] },
            [KV_INPUT_MASK]: { type: 'int64', data: new BigInt64Array(T).fill(1n), dims: [1, T] },
            [KV_INPUT_QUERY_FROM]: { type: 'int64', data: BigInt64Array.of(BigInt(q)), dims: [1] },
          };
          for (let i = 0; i <= layer; i++) for (const kind of ['key', 'value'] as const) feeds[kvInputName(i, kind)] = { type: 'float32', data: new Float32Array(0), dims: [1, cfg.num_key_value_heads, 0, cfg.head_dim] };
          return ort.run(feeds);
        };
        const all = await runFrom(0);
        for (const q of [3, T - 1]) {
          const part = await runFrom(q);
          expect(part[KV_OUTPUT_RESID].dims).toEqual([1, T - q, H]);
          const want = (all[KV_OUTPUT_RESID].data as Float32Array).subarray(q * H);
          const got = part[KV_OUTPUT_RESID].data as Float32Array;
          let err = 0;
          for (let k = 0; k < want.length; k++) err = Math.max(err, Math.abs(got[k] - want[k]));
          expect(err).toBeLessThan(1e-5);
          for (const kind of ['key', 'value'] as const) {
            expect(part[kvOutputName(layer, kind)].dims).toEqual([1, cfg.num_key_value_heads, T, cfg.head_dim]);
            expect(Array.from(part[kvOutputName(layer, kind)].data as Float32Array)).toEqual(Array.from(all[kvOutputName(layer, kind)].data as Float32Array));
          }
        }
      } finally {
        await ort.close();
      }
    } finally {
      ckpt.close();
    }
  });
});
