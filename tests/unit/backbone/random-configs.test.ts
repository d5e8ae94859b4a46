import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { openBackbone } from '../../../main/engine/backbone';
import { fixturesDir, tempDir } from '../../helpers/paths';
import { maxAbsDiff, weightsOf } from './weights';
import { gemma2Config, randomIds, writeRandomCheckpoint } from './random-checkpoint';
import { referenceResidPost, type RefConfig } from './reference-forward';

const work = tempDir('sparserm-bb-random-');
const cacheDir = path.join(work, 'graphs');
// The checkpoint digest memo goes under SPARSERM_CACHE: keep it inside the test's temp folder.
process.env.SPARSERM_CACHE = path.join(cacheDir, 'cache');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));


describe('the test-only reference forward', () => {
  for (const name of ['checkpoint-f32', 'checkpoint-bf16']) {
    it(`matches the golden fixture ${name} on every block within 1e-4`, () => {
      const dir = path.join(fixturesDir, 'gemma2-tiny', name);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as RefConfig;
      const ref = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'gemma2-tiny', `${name}.reference.json`), 'utf8')) as {
        cases: Array<{ ids: number[]; resid_post: number[][][] }>;
      };
      const w = weightsOf(dir);
      for (const c of ref.cases) {
        const mine = referenceResidPost(cfg, w.read, c.ids, 3);
        for (let l = 0; l < 4; l++) {
          let err = 0;
          c.resid_post[l].forEach((row, t) => row.forEach((v, d) => (err = Math.max(err, Math.abs(mine[l][t][d] - v)))));
          expect(err, `block ${l}`).toBeLessThanOrEqual(1e-4);
        }
      }
      w.close();
    });
  }
});

/**
 * Configs no fixture covers. Tolerance: max |ONNX f32 − float64 reference| ≤ 1e-4 · max(1, max |reference|)
 * (f32 rounding grows with the activation scale).
 */
const cases: Array<{ name: string; cfg: Partial<RefConfig>; dtype: 'F32' | 'BF16' | 'F16'; shards: number; layers: number[]; lengths: number[] }> = [
  {
    name: 'BF16, head_dim ≠ hidden/heads, query_pre_attn_scalar ≠ head_dim, GQA 4/2, sequences past the window',
    cfg: { hidden_size: 48, intermediate_size: 96, num_hidden_layers: 5, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, query_pre_attn_scalar: 20, sliding_window: 5 },
    dtype: 'BF16',
    shards: 1,
    layers: [3, 4],
    lengths: [17, 1, 9, 23],
  },
  {
    name: 'sharded F32 (3 shards), MHA (kv = heads), head_dim 40 > hidden/heads, long sequences',
    cfg: { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 40, query_pre_attn_scalar: 32, sliding_window: 8, rope_theta: 500 },
    dtype: 'F32',
    shards: 3,
    layers: [1, 2],
    lengths: [40, 33, 2],
  },
  {
    name: 'F16 weights, 6 query heads on 1 kv head, a softcap that bites, window 2',
    cfg: { hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 1, head_dim: 8, query_pre_attn_scalar: 6, sliding_window: 2, attn_logit_softcapping: 1.5 },
    dtype: 'F16',
    shards: 1,
    layers: [0, 1],
    lengths: [12, 5],
  },
];

describe('ONNX graph vs the reference on random configs', () => {
  cases.forEach((c, ci) => {
    it(c.name, async () => {
      const cfg = gemma2Config(c.cfg);
      const dir = writeRandomCheckpoint(path.join(work, `ckpt-${ci}`), cfg, { dtype: c.dtype, shards: c.shards, seed: 10 + ci });
      if (c.shards > 1) expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(true);
      const w = weightsOf(dir);
      const seqs = c.lengths.map((n, i) => randomIds(n, cfg.vocab_size, 100 * ci + i));
      for (const layer of c.layers) {
        const s = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir });
        const out = await s.hidden(seqs);
        seqs.forEach((ids, i) => {
          const ref = referenceResidPost(cfg, w.read, ids, layer)[layer];
          const { err, scale } = maxAbsDiff(out[i], ref);
          expect(out[i].length).toBe(ids.length * cfg.hidden_size);
          expect(err, `L${layer} seq ${i} (max |x| ${scale.toFixed(1)})`).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
        });
        await s.close();
      }
      w.close();
    });
  });
});

describe('precision f16 (16-bit weights and matmuls, f32 residual stream)', () => {
  it('stays close to the f32 graph on every block, with no NaN/Inf', async () => {
    const cfg = gemma2Config({ hidden_size: 64, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 24 });
    // F32 source weights, so the f16 graph really rounds them (bf16 values would be exact in f16).
    const dir = writeRandomCheckpoint(path.join(work, 'ckpt-f16'), cfg, { dtype: 'F32', seed: 77 });
    const seqs = [randomIds(20, cfg.vocab_size, 1), randomIds(7, cfg.vocab_size, 2)];
    for (let layer = 0; layer < 4; layer++) {
      const a = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir, precision: 'f32' });
      const b = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir, precision: 'f16' });
      expect(b.info.graphPath).not.toBe(a.info.graphPath);
      const [ya, yb] = [await a.hidden(seqs), await b.hidden(seqs)];
      let maxDiff = 0;
      let maxAbs = 0;
      ya.forEach((row, i) =>
        row.forEach((v, k) => {
          expect(Number.isFinite(yb[i][k])).toBe(true);
          maxDiff = Math.max(maxDiff, Math.abs(v - yb[i][k]));
          maxAbs = Math.max(maxAbs, Math.abs(v));
        }),
      );
      // fp16 has an 11-bit mantissa: relative error a few 1e-3 through a few blocks.
      expect(maxDiff, `block ${layer}: max |f16 − f32| = ${maxDiff}, max |x| = ${maxAbs}`).toBeLessThanOrEqual(1e-2 * Math.max(1, maxAbs));
      expect(maxDiff).toBeGreaterThan(0); // really a different (16-bit) graph
      await a.close();
      await b.close();
    }
  });
});
