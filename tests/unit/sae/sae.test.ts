import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadSae, checkSaeForBackbone, SaeEncoder, jumpReluSubset, hookLayerFrom } from '../../../main/engine/sae';
import { writeNpz } from '../../../main/engine/formats/npz';
import { writeSafetensors } from '../../../main/engine/formats/safetensors';
import { InputError } from '../../../main/engine/errors';
import { fixturesDir, tempDir } from '../../helpers/paths';

// Tolerance for SAE parity against the PyTorch-made reference: float32 matmul order differences only.
const TOL = 1e-5;
const saeDir = path.join(fixturesDir, 'sae-tiny');
const graphsDir = tempDir('sae-graphs-');

interface SaeRef { cases: Array<{ ids: number[]; layer: number; activations: number[][] }> }
interface BackboneRef { cases: Array<{ ids: number[]; resid_post: number[][][] }> }
const saeRef = JSON.parse(fs.readFileSync(path.join(saeDir, 'reference.json'), 'utf8')) as SaeRef;
const bbRef = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32.reference.json'), 'utf8')) as BackboneRef;

function residFor(ids: number[], layer: number): { x: Float32Array; rows: number } {
  const c = bbRef.cases.find((k) => k.ids.join(',') === ids.join(','))!;
  const rows = c.resid_post[layer];
  return { x: Float32Array.from(rows.flat()), rows: rows.length };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('loadSae on the sae-tiny fixture', () => {
  it('reads both layouts to the same tensors, hash and hook layer', async () => {
    const a = await loadSae(path.join(saeDir, 'params.npz'));
    const b = await loadSae(path.join(saeDir, 'saelens'));
    expect([a.dIn, a.dSae, a.format]).toEqual([32, 64, 'npz']);
    expect([b.dIn, b.dSae, b.format]).toEqual([32, 64, 'saelens']);
    expect(maxAbsDiff(a.W_enc, b.W_enc)).toBe(0);
    expect(maxAbsDiff(a.W_dec, b.W_dec)).toBe(0);
    expect(maxAbsDiff(a.threshold, b.threshold)).toBe(0);
    expect(a.hash).toBe(b.hash);
    expect(b.hookLayer).toBe(2);
    expect(a.id).toMatch(new RegExp(`@${a.hash.slice(0, 12)}$`));
  });

  for (const layout of ['params.npz', 'saelens']) {
    it(`JumpReLU in ONNX Runtime matches reference.json (${layout}) within ${TOL}`, async () => {
      const sae = await loadSae(path.join(saeDir, layout));
      const enc = await SaeEncoder.open(sae, { ep: 'cpu', graphsDir });
      try {
        for (const c of saeRef.cases) {
          const { x, rows } = residFor(c.ids, c.layer);
          const f = await enc.encode(x, rows);
          expect(maxAbsDiff(f, c.activations.flat())).toBeLessThanOrEqual(TOL);
          // The subset encoder (used for explanations) agrees too.
          const all = Array.from({ length: sae.dSae }, (_, j) => j);
          expect(maxAbsDiff(jumpReluSubset(sae, x, rows, all), c.activations.flat())).toBeLessThanOrEqual(TOL);
        }
      } finally {
        await enc.close();
      }
    });
  }
});

/** A random SAE the code has never seen, with a float64 reference encoder written independently here. */
function randomSae(dIn: number, dSae: number, seed: number) {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const W_enc = Float32Array.from({ length: dIn * dSae }, rnd);
  const W_dec = Float32Array.from({ length: dSae * dIn }, rnd);
  const b_enc = Float32Array.from({ length: dSae }, () => rnd() * 0.5);
  const b_dec = Float32Array.from({ length: dIn }, rnd);
  const threshold = Float32Array.from({ length: dSae }, () => 0.2 + Math.abs(rnd()));
  return { W_enc, W_dec, b_enc, b_dec, threshold };
}
function refEncode(t: ReturnType<typeof randomSae>, x: Float32Array, rows: number, dIn: number, dSae: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < dSae; j++) {
      let pre = t.b_enc[j];
      for (let i = 0; i < dIn; i++) pre += x[r * dIn + i] * t.W_enc[i * dSae + j];
      out.push(pre > t.threshold[j] ? pre : 0);
    }
  return out;
}

describe('loadSae on SAEs it has never seen', () => {
  const dIn = 24;
  const dSae = 96;
  const t = randomSae(dIn, dSae, 42);
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const arrays = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { shape: k === 'W_enc' ? [dIn, dSae] : k === 'W_dec' ? [dSae, dIn] : [v.length], data: v }]));
    fs.mkdirSync(path.join(dir, 'layer_5', 'width_96', 'average_l0_9'), { recursive: true });
    await writeNpz(path.join(dir, 'layer_5', 'width_96', 'average_l0_9', 'params.npz'), arrays, { compress: true });
    await writeNpz(path.join(dir, 'stored.npz'), arrays, { compress: false });
    const lens = path.join(dir, 'lens');
    fs.mkdirSync(lens);
    fs.writeFileSync(path.join(lens, 'cfg.json'), JSON.stringify({ architecture: 'jumprelu', d_in: dIn, d_sae: dSae, hook_name: 'blocks.7.hook_resid_post', apply_b_dec_to_input: false, normalize_activations: null }));
    writeSafetensors(path.join(lens, 'sae_weights.safetensors'), {
      W_enc: { dtype: 'F32', shape: [dIn, dSae], data: t.W_enc },
      W_dec: { dtype: 'F32', shape: [dSae, dIn], data: t.W_dec },
      b_enc: { dtype: 'F32', shape: [dSae], data: t.b_enc },
      b_dec: { dtype: 'F32', shape: [dIn], data: t.b_dec },
      log_threshold: { dtype: 'F32', shape: [dSae], data: t.threshold.map(Math.log) },
    });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('encodes deflated npz, stored npz and SAELens-with-log_threshold identically to a float64 reference', async () => {
    const x = Float32Array.from({ length: 5 * dIn }, (_, i) => Math.sin(i * 0.7) * 2);
    const expected = refEncode(t, x, 5, dIn, dSae);
    expect(expected.filter((v) => v > 0).length).toBeGreaterThan(10);
    for (const p of [path.join(dir, 'layer_5', 'width_96', 'average_l0_9', 'params.npz'), path.join(dir, 'stored.npz'), path.join(dir, 'lens')]) {
      const sae = await loadSae(p);
      const enc = await SaeEncoder.open(sae, { ep: 'cpu', graphsDir });
      try {
        expect(maxAbsDiff(await enc.encode(x, 5), expected)).toBeLessThanOrEqual(1e-4);
        const sparse = await enc.encodeSparse(x, 5, { top: 3 });
        expect(sparse).toHaveLength(5);
        for (const row of sparse) for (let i = 1; i < row.length; i++) expect(row[i - 1][1]).toBeGreaterThanOrEqual(row[i][1]);
      } finally {
        await enc.close();
      }
    }
    const gs = await loadSae(path.join(dir, 'layer_5', 'width_96', 'average_l0_9', 'params.npz'));
    expect(gs.hookLayer).toBe(5);
    expect(gs.id.startsWith('layer_5/width_96/average_l0_9@')).toBe(true);
    expect((await loadSae(path.join(dir, 'lens'))).hookLayer).toBe(7);
  });

  it('checks the SAE against the backbone: d_in mismatch is an InputError naming both, other layer a warning', async () => {
    const sae = await loadSae(path.join(dir, 'lens'));
    expect(() => checkSaeForBackbone(sae, { checkpoint: '/models/gemma', hiddenSize: 32, layer: 7 })).toThrow(InputError);
    expect(() => checkSaeForBackbone(sae, { checkpoint: '/models/gemma', hiddenSize: 32, layer: 7 })).toThrow(/lens vs \/models\/gemma\/config\.json.*hidden_size 32.*d_in 24/);
    expect(checkSaeForBackbone(sae, { checkpoint: '/m', hiddenSize: 24, layer: 7 }).warnings).toEqual([]);
    expect(checkSaeForBackbone(sae, { checkpoint: '/m', hiddenSize: 24, layer: 3 }).warnings[0]).toMatch(/layer 7.*layer 3/);
  });

  it('rejects wrong shapes, missing tensors and non-JumpReLU configs precisely', async () => {
    const bad = tempDir();
    await writeNpz(path.join(bad, 'shape.npz'), {
      W_enc: { shape: [dIn, dSae], data: t.W_enc }, W_dec: { shape: [dSae, dIn], data: t.W_dec },
      b_enc: { shape: [dSae - 1], data: t.b_enc.subarray(1) }, b_dec: { shape: [dIn], data: t.b_dec }, threshold: { shape: [dSae], data: t.threshold },
    });
    await expect(loadSae(path.join(bad, 'shape.npz'))).rejects.toThrow(/tensor "b_enc".*shape \[96\].*\[95\]/);
    await writeNpz(path.join(bad, 'missing.npz'), { W_enc: { shape: [dIn, dSae], data: t.W_enc } });
    await expect(loadSae(path.join(bad, 'missing.npz'))).rejects.toThrow(/tensor "b_enc"/);
    const lens = path.join(bad, 'topk');
    fs.mkdirSync(lens);
    fs.writeFileSync(path.join(lens, 'cfg.json'), JSON.stringify({ architecture: 'topk', d_in: dIn, d_sae: dSae }));
    await expect(loadSae(lens)).rejects.toThrow(/cfg\.json, field "architecture": expected "jumprelu"/);
    await expect(loadSae(path.join(bad, 'nothing-here'))).rejects.toThrow(InputError);
  });

  it('reads hook layers from SAELens hook names and Gemma Scope paths', () => {
    expect(hookLayerFrom('blocks.13.hook_resid_post')).toBe(13);
    expect(hookLayerFrom('/x/gemma-scope-9b-it-res/layer_31/width_131k/average_l0_109/params.npz')).toBe(31);
    expect(hookLayerFrom('blocks.13.hook_mlp_out')).toBeUndefined();
  });
});

describe('SAE hash memo for big SAEs', () => {
  it('memoises the hash by file identity and still gives the true content hash', async () => {
    const dir = tempDir();
    process.env.SPARSERM_CACHE = path.join(dir, 'cache');
    try {
      const dIn = 256;
      const dSae = 36 * 1024; // ≈ 72 MB of weights: above the memo threshold
      const W = new Float32Array(dIn * dSae);
      for (let i = 0; i < W.length; i += 97) W[i] = (i % 13) / 13;
      const file = path.join(dir, 'big.npz');
      await writeNpz(file, {
        W_enc: { shape: [dIn, dSae], data: W }, W_dec: { shape: [dSae, dIn], data: W },
        b_enc: { shape: [dSae], data: new Float32Array(dSae) }, b_dec: { shape: [dIn], data: new Float32Array(dIn) }, threshold: { shape: [dSae], data: new Float32Array(dSae).fill(0.5) },
      });
      const a = await loadSae(file);
      const memo = JSON.parse(fs.readFileSync(path.join(dir, 'cache', 'sae-hashes.json'), 'utf8')) as Record<string, string>;
      expect(Object.values(memo)).toEqual([a.hash]);
      const b = await loadSae(file);
      expect(b.hash).toBe(a.hash);
      // A tampered memo entry is used only for the identical file: touching the file forces a true rehash.
      fs.writeFileSync(path.join(dir, 'cache', 'sae-hashes.json'), JSON.stringify(Object.fromEntries(Object.keys(memo).map((k) => [k, 'stale']))));
      expect((await loadSae(file)).hash).toBe('stale');
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(file, later, later);
      expect((await loadSae(file)).hash).toBe(a.hash);
    } finally {
      delete process.env.SPARSERM_CACHE;
    }
  });
});
