import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, openBackbone, parseModelConfig } from '../../../main/engine/backbone';
import { ropeInvFreq } from '../../../main/engine/backbone/decoder-graph';
import { InputError } from '../../../main/engine/errors';
import { tempDir } from '../../helpers/paths';
import { maxAbsDiff, weightsOf } from './weights';
import { llamaConfig, randomIds, writeRandomCheckpoint } from './random-checkpoint';
import { llamaInvFreq, llamaReferenceResidPost, type LlamaRefConfig } from './reference-forward-llama';

const work = tempDir('sparserm-bb-llama-');
const cacheDir = path.join(work, 'graphs');
process.env.SPARSERM_CACHE = path.join(cacheDir, 'cache');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));


describe('Llama-3.x config as data', () => {
  it('reads head_dim from hidden/heads when absent, llama3 rope_scaling, no softcap, no window', () => {
    const c = parseModelConfig(llamaConfig(), 'config.json');
    expect(c.arch.id).toBe('llama');
    expect(c.headDim).toBe(8);
    expect(c.queryScale).toBe(8);
    expect(c.attnSoftcap).toBeNull();
    expect(c.slidingWindow).toBeNull();
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
    expect(parseModelConfig(llamaConfig({ head_dim: 16 }), 'config.json').headDim).toBe(16);
  });

  it('refuses an unknown rope_type, biases and a Gemma activation, naming the field', () => {
    const bad = (over: Record<string, unknown>) => () => parseModelConfig(llamaConfig(over), 'x/config.json');
    expect(bad({ rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling\.rope_type.*"yarn"/);
    expect(bad({ attention_bias: true })).toThrow(InputError);
    expect(bad({ mlp_bias: true })).toThrow(/mlp_bias/);
    expect(bad({ hidden_act: 'gelu_pytorch_tanh' })).toThrow(/hidden_act.*silu/);
    expect(bad({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } })).toThrow(/rope_scaling\.original_max_position_embeddings/);
  });

  it('llama3 inv_freq: high frequencies kept, low ones divided by factor, the middle band blended (f32 vs float64 ≤ 1e-6 rel)', () => {
    const cfg = llamaConfig({ head_dim: 32, rope_theta: 10000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
    const c = parseModelConfig(cfg, 'config.json');
    const mine = ropeInvFreq(c.ropeTheta, c.headDim, c.ropeScaling);
    const plain = ropeInvFreq(c.ropeTheta, c.headDim, null);
    const ref = llamaInvFreq(cfg);
    let kept = 0;
    let divided = 0;
    let blended = 0;
    mine.forEach((v, i) => {
      expect(Math.abs(v - ref[i]) / ref[i]).toBeLessThanOrEqual(1e-6);
      const ratio = plain[i] / v;
      if (Math.abs(ratio - 1) < 1e-6) kept++;
      else if (Math.abs(ratio - 8) < 1e-5) divided++;
      else blended++;
    });
    // All three regimes are exercised by this config.
    expect([kept > 0, divided > 0, blended > 0]).toEqual([true, true, true]);
  });
});

/** Tolerance: max |ONNX f32 − float64 reference| ≤ 1e-4 · max(1, max |reference|). */
const cases: Array<{ name: string; cfg: Partial<LlamaRefConfig> & Record<string, unknown>; dtype: 'F32' | 'BF16'; shards: number; layers: number[]; lengths: number[] }> = [
  {
    name: 'BF16 in 4 shards + index, GQA 4/2, head_dim derived, llama3 scaling, sequences past original_max_position_embeddings (24)',
    cfg: {
      hidden_size: 32, intermediate_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 24 },
    },
    dtype: 'BF16',
    shards: 4,
    layers: [1, 3],
    lengths: [57, 1, 30, 9],
  },
  {
    name: 'F32 single file, head_dim 12 given (≠ hidden/heads), 6 query heads on 2 KV heads, no rope_scaling',
    cfg: { hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 12, rope_theta: 500, rope_scaling: null },
    dtype: 'F32',
    shards: 1,
    layers: [0, 1],
    lengths: [21, 4],
  },
];

describe('Llama ONNX graph vs the float64 reference', () => {
  cases.forEach((c, ci) => {
    it(c.name, async () => {
      const cfg = llamaConfig(c.cfg);
      const dir = writeRandomCheckpoint(path.join(work, `llama-${ci}`), cfg, { dtype: c.dtype, shards: c.shards, seed: 40 + ci });
      if (c.shards > 1) expect(JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map['lm_head.weight']).toBeDefined();
      const ck = await loadCheckpoint(dir);
      expect(ck.config.arch.id).toBe('llama');
      ck.close();
      const w = weightsOf(dir);
      const seqs = c.lengths.map((n, i) => randomIds(n, cfg.vocab_size, 200 * ci + i));
      for (const layer of c.layers) {
        const s = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir });
        expect(s.info.architecture).toBe('llama');
        const out = await s.hidden(seqs);
        seqs.forEach((ids, i) => {
          const ref = llamaReferenceResidPost(cfg, w.read, ids, layer)[layer];
          const { err, scale } = maxAbsDiff(out[i], ref);
          expect(out[i].length).toBe(ids.length * cfg.hidden_size);
          expect(err, `L${layer} seq ${i} (max |x| ${scale.toFixed(1)})`).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
        });
        await s.close();
      }
      w.close();
    });
  });

  it('rope scaling matters past the original context: the unscaled reference is far off there', async () => {
    const cfg = llamaConfig(cases[0].cfg);
    const dir = path.join(work, 'llama-0');
    const w = weightsOf(dir);
    const ids = randomIds(57, cfg.vocab_size, 0);
    const scaled = llamaReferenceResidPost(cfg, w.read, ids, 1)[1];
    const plain = llamaReferenceResidPost({ ...cfg, rope_scaling: null }, w.read, ids, 1)[1];
    const s = await openBackbone({ checkpoint: dir, layer: 1, ep: 'cpu', cacheDir });
    const [out] = await s.hidden([ids]);
    await s.close();
    w.close();
    expect(maxAbsDiff(out, scaled).err).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbsDiff(out, scaled).scale));
    expect(maxAbsDiff(out, plain).err).toBeGreaterThan(1e-2);
  });

  it('precision f16 on a Llama checkpoint stays within 1e-2 · max|x| of f32 on every block, no NaN/Inf', async () => {
    const cfg = llamaConfig({ hidden_size: 48, intermediate_size: 96, num_hidden_layers: 3 });
    const dir = writeRandomCheckpoint(path.join(work, 'llama-f16'), cfg, { dtype: 'F32', seed: 9 });
    const seqs = [randomIds(40, cfg.vocab_size, 1), randomIds(6, cfg.vocab_size, 2)];
    for (let layer = 0; layer < 3; layer++) {
      const a = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir, precision: 'f32' });
      const b = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir, precision: 'f16' });
      const [ya, yb] = [await a.hidden(seqs), await b.hidden(seqs)];
      await a.close();
      await b.close();
      let diff = 0;
      let scale = 0;
      ya.forEach((row, i) => row.forEach((v, k) => ((diff = Math.max(diff, Math.abs(v - yb[i]![k]!))), (scale = Math.max(scale, Math.abs(v))))));
      expect(yb.every((r) => r.every(Number.isFinite))).toBe(true);
      expect(diff, `block ${layer}`).toBeLessThanOrEqual(1e-2 * Math.max(1, scale));
      expect(diff).toBeGreaterThan(0);
    }
  });
});
