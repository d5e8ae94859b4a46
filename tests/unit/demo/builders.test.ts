import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadCheckpoint } from '../../../main/engine/backbone/checkpoint';
import { loadSae } from '../../../main/engine/sae';
import { writeNpz } from '../../../main/engine/formats/npz';
import { DEMO_MODEL_SHAPE, demoWeights, writeDemoCheckpoint } from '../../../main/engine/demo/checkpoint-builder';
import { buildDemoSae } from '../../../main/engine/demo/sae-builder';
import { buildDemoLabels } from '../../../main/engine/demo/labels-builder';
import { buildDemoTokenizer } from '../../../main/engine/demo/tokenizer-builder';
import { readDemoPairs, tokenizerCorpus } from '../../../main/engine/demo/demo-data';
import { Prng } from '../../../main/engine/demo/prng';
import { tempDir } from '../../helpers/paths';

const shape = { ...DEMO_MODEL_SHAPE, vocabSize: 1024 };

describe('demo checkpoint builder', () => {
  it('writes a Gemma-2 HF checkpoint that the backbone loader accepts, every dimension from config.json', async () => {
    const dir = tempDir('sparserm-demo-ckpt-');
    writeDemoCheckpoint(dir, shape, 7);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['Gemma2ForCausalLM']);
    expect(cfg.head_dim * cfg.num_attention_heads).not.toBe(cfg.hidden_size); // like real Gemma-2
    const ckpt = await loadCheckpoint(dir);
    try {
      expect(ckpt.config.numLayers).toBe(6);
      expect(ckpt.config.headDim).toBe(24);
      expect(ckpt.config.numKvHeads).toBe(2);
      expect(ckpt.config.slidingWindow).toBe(16);
      expect(ckpt.config.vocabSize).toBe(1024);
      ckpt.validateThrough(5);
      const norm = ckpt.readF32('model.layers.0.input_layernorm.weight', [64]);
      expect(norm.some((v) => v !== 0)).toBe(true); // zero-centred but non-zero: exercises the (1 + w) rule
    } finally {
      ckpt.close();
    }
  });

  it('is deterministic: the same seed gives byte-identical safetensors, another seed does not', () => {
    const a = tempDir('sparserm-demo-a-');
    const b = tempDir('sparserm-demo-b-');
    writeDemoCheckpoint(a, shape, 7);
    writeDemoCheckpoint(b, shape, 7);
    expect(fs.readFileSync(path.join(a, 'model.safetensors')).equals(fs.readFileSync(path.join(b, 'model.safetensors')))).toBe(true);
    const w8 = demoWeights(shape, 8)['model.embed_tokens.weight'].data;
    const w7 = demoWeights(shape, 7)['model.embed_tokens.weight'].data;
    expect(Buffer.from(w8.buffer).equals(Buffer.from(w7.buffer))).toBe(false);
  });

  it('the PRNG gives standard normals', () => {
    const xs = new Prng(1).normals(20000, 1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });
});

describe('demo tokenizer builder', () => {
  it('is deterministic and word-ish (whole frequent words are single tokens)', () => {
    const corpus = tokenizerCorpus(readDemoPairs());
    const a = buildDemoTokenizer(corpus, 1024);
    const b = buildDemoTokenizer(corpus, 1024);
    expect(JSON.stringify(a.tokenizerJson)).toBe(JSON.stringify(b.tokenizerJson));
    const vocab = (a.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
    expect(a.vocabSize).toBe(1024);
    expect(new Set(Object.values(vocab)).size).toBe(1024); // ids 0..1023, no gaps or duplicates
    expect(Math.max(...Object.values(vocab))).toBe(1023);
    for (const w of ['▁the', '▁not', 'user', 'model']) expect(vocab[w], w).toBeGreaterThan(363);
    expect(vocab['<0x00>']).toBe(108);
    expect(vocab['<0xFF>']).toBe(363);
  });
});

describe('demo SAE + labels builders (synthetic activations)', () => {
  // Activations = scaled embeddings + noise: enough to check the calibration and the file layout without a backbone.
  const rng = new Prng(3);
  const H = 64;
  const embed = rng.normals(300 * H, 0.5);
  const sequences = Array.from({ length: 120 }, () => [2, ...Array.from({ length: 30 }, () => 4 + Math.floor(rng.next() ** 2 * 290))]);
  const hidden = sequences.map((ids) => {
    const h = new Float32Array(ids.length * H);
    ids.forEach((id, t) => {
      for (let k = 0; k < H; k++) h[t * H + k] = embed[id * H + k] * 8 + rng.normal();
    });
    return h;
  });
  const sae = buildDemoSae({ embed, hiddenSize: H, sequences, hidden, dSae: 128, seed: 5, excludeTokens: new Set([0, 2]) });

  it('fires sparsely but really: mean L0 between 3 % and 10 % of latents, every latent fires', () => {
    expect(sae.meanL0Fraction).toBeGreaterThan(0.03);
    expect(sae.meanL0Fraction).toBeLessThan(0.1);
    const labels = buildDemoLabels({ sae: sae.arrays, sequences, hidden, tokenStrings: (ids) => ids.map((i) => `t${i}`), modelId: 'm', source: 's' });
    expect(labels.every((l) => !l.description.includes('never fired'))).toBe(true);
  });

  it('single-token latents are labelled with their anchor token among the top tokens', () => {
    const labels = buildDemoLabels({ sae: sae.arrays, sequences, hidden, tokenStrings: (ids) => ids.map((i) => `t${i}`), modelId: 'sparserm-demo', source: '3-demo-res-128' });
    let hits = 0;
    for (let j = 0; j < 96; j++) if (labels[j].description.includes(`‘t${sae.anchors[j][0]}’`)) hits++;
    expect(hits).toBeGreaterThan(85);
    expect(labels[0]).toMatchObject({ modelId: 'sparserm-demo', layer: '3-demo-res-128', index: '0' });
    expect(labels[0].description).toMatch(/^demo: top tokens ‘t\d+’/);
  });

  it('writes a Gemma Scope params.npz that the SAE loader accepts (unit-norm decoder rows, positive thresholds)', async () => {
    const dir = tempDir('sparserm-demo-sae-');
    const file = path.join(dir, 'layer_3', 'width_128', 'average_l0_9', 'params.npz');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writeNpz(file, sae.arrays);
    const loaded = await loadSae(file);
    expect([loaded.dIn, loaded.dSae]).toEqual([64, 128]);
    expect(loaded.hookLayer).toBe(3);
    for (let j = 0; j < 128; j++) {
      const row = loaded.W_dec.subarray(j * 64, (j + 1) * 64);
      expect(Math.abs(Math.hypot(...row) - 1)).toBeLessThan(1e-5);
    }
    expect(Array.from(loaded.threshold).every((t) => t > 0)).toBe(true);
  });
});
