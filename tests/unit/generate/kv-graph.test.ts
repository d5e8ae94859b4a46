/**
 * The KV-cache graph (kv-graph.ts) against the independent float64 references (no KV cache, whole sequence every
 * time): full prefill, prefill + one token at a time past the sliding window, left-padded batches, truncated depth.
 * Tolerance: 2e-4 × the logits' scale (f32 graph vs f64 loops).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadCheckpoint, type Checkpoint } from '../../../main/engine/backbone';
import { buildKvGraph, KV_INPUT_QUERY_FROM, kvInputName, kvOutputName, type KvGraphSpec } from '../../../main/engine/backbone/kv-graph';
import { createSession, type OrtSession, type TensorValue } from '../../../main/engine/runtime/ort';
import { gemma2Config, llamaConfig, randomIds, writeRandomCheckpoint } from '../backbone/random-checkpoint';
import { referenceLogits, referenceResidPost } from '../backbone/reference-forward';
import { llamaReferenceLogits } from '../backbone/reference-forward-llama';
import { weightsOf } from '../backbone/weights';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvgraph-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function open(dir: string, spec: KvGraphSpec): Promise<{ ckpt: Checkpoint; s: OrtSession }> {
  const ckpt = await loadCheckpoint(dir);
  const out = path.join(dir, `graph-${Math.random().toString(36).slice(2)}`);
  const g = await buildKvGraph(ckpt, { ...spec, dir: out });
  return { ckpt, s: await createSession(g.modelPath, { ep: 'cpu', cache: false }) };
}

type Past = Record<string, TensorValue>;

/** One run: new ids per row (equal length, 0 = left pad marked in mask), mask over past + new. */
async function step(ckpt: Checkpoint, s: OrtSession, ids: number[][], mask: number[][], past: Past | undefined, layers: number) {
  const c = ckpt.config;
  const B = ids.length;
  const T = ids[0].length;
  const H = c.hiddenSize;
  const emb = new Float32Array(B * T * H);
  ids.forEach((row, r) => emb.set(ckpt.embeddingRows(row), r * T * H));
  const feeds: Record<string, TensorValue> = {
    inputs_embeds: { type: 'float32', data: emb, dims: [B, T, H] },
    attention_mask: { type: 'int64', data: BigInt64Array.from(mask.flat().map(BigInt)), dims: [B, mask[0].length] },
  };
  // Truncated graphs take query_from (0: every new token through block L); full-depth graphs have no such input.
  if (s.inputNames.includes(KV_INPUT_QUERY_FROM)) feeds[KV_INPUT_QUERY_FROM] = { type: 'int64', data: BigInt64Array.of(0n), dims: [1] };
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value'] as const) {
      feeds[kvInputName(i, kind)] = past?.[kvOutputName(i, kind)] ?? { type: 'float32', data: new Float32Array(0), dims: [B, c.numKvHeads, 0, c.headDim] };
    }
  }
  return s.run(feeds);
}

function rel(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / scale;
}

describe.each([
  ['gemma2', () => gemma2Config({ sliding_window: 4 }), referenceLogits],
  ['llama', () => llamaConfig(), llamaReferenceLogits],
] as const)('KV graph (%s)', (name, cfgOf, refLogits) => {
  const cfg = cfgOf();
  let dir: string;
  beforeAll(() => {
    dir = writeRandomCheckpoint(path.join(tmp, name), cfg, { seed: 7 });
  });

  it('prefill of all positions equals the reference logits (sequence longer than the window)', async () => {
    const { ckpt, s } = await open(dir, { depth: 'full', logits: 'all', precision: 'f32' });
    const ids = randomIds(9, cfg.vocab_size, 3);
    const res = await step(ckpt, s, [ids], [ids.map(() => 1)], undefined, cfg.num_hidden_layers);
    const ref = refLogits(cfg as never, weightsOf(dir).read, ids);
    expect(res.logits.dims).toEqual([1, 9, cfg.vocab_size]);
    expect(rel(res.logits.data as Float32Array, ref.flatMap((r) => [...r]))).toBeLessThan(2e-4);
    expect(res[kvOutputName(0, 'key')].dims).toEqual([1, ckpt.config.numKvHeads, 9, ckpt.config.headDim]);
    await s.close();
    ckpt.close();
  });

  it('prefill then one token at a time with the cache: each last-position logits equals the reference', async () => {
    const { ckpt, s } = await open(dir, { depth: 'full', logits: 'last', precision: 'f32' });
    const ids = randomIds(10, cfg.vocab_size, 5);
    const w = weightsOf(dir).read;
    let res = await step(ckpt, s, [ids.slice(0, 4)], [[1, 1, 1, 1]], undefined, cfg.num_hidden_layers);
    for (let t = 4; t < ids.length; t++) {
      const ref = refLogits(cfg as never, w, ids.slice(0, t));
      expect(rel(res.logits.data as Float32Array, ref[t - 1])).toBeLessThan(2e-4);
      res = await step(ckpt, s, [[ids[t]]], [Array(t + 1).fill(1)], res, cfg.num_hidden_layers);
    }
    await s.close();
    ckpt.close();
  });

  it('left-padded batch: each row equals the row alone, through decoding steps', async () => {
    const { ckpt, s } = await open(dir, { depth: 'full', logits: 'last', precision: 'f32' });
    const a = randomIds(7, cfg.vocab_size, 11);
    const b = randomIds(3, cfg.vocab_size, 12);
    const w = weightsOf(dir).read;
    let res = await step(ckpt, s, [a, [0, 0, 0, 0, ...b]], [a.map(() => 1), [0, 0, 0, 0, 1, 1, 1]], undefined, cfg.num_hidden_layers);
    const V = cfg.vocab_size;
    const next = [17, 29, 41, 53];
    const seqA = [...a];
    const seqB = [...b];
    const maskB = [0, 0, 0, 0, 1, 1, 1];
    for (const n of next) {
      const lg = res.logits.data as Float32Array;
      expect(rel(lg.subarray(0, V), refLogits(cfg as never, w, seqA).at(-1)!)).toBeLessThan(2e-4);
      expect(rel(lg.subarray(V, 2 * V), refLogits(cfg as never, w, seqB).at(-1)!)).toBeLessThan(2e-4);
      seqA.push(n);
      seqB.push(n + 1);
      maskB.push(1);
      res = await step(ckpt, s, [[n], [n + 1]], [seqA.map(() => 1), maskB], res, cfg.num_hidden_layers);
    }
    await s.close();
    ckpt.close();
  });
});

describe('KV graph, truncated depth (prefix sharing)', () => {
  it('prompt once, then a right-padded batch of responses with the past keys/values: resid_post equals the reference', async () => {
    const cfg = gemma2Config({ sliding_window: 4 });
    const dir = writeRandomCheckpoint(path.join(tmp, 'trunc'), cfg, { seed: 9 });
    const { ckpt, s } = await open(dir, { depth: 2, precision: 'f32' });
    const prompt = randomIds(6, cfg.vocab_size, 21);
    const r1 = [101, 102, 103];
    const r2 = [201, 202];
    const pre = await step(ckpt, s, [prompt], [prompt.map(() => 1)], undefined, 3);
    // tile the prompt's cache over 2 rows
    const past: Past = {};
    for (const [k, v] of Object.entries(pre)) {
      if (!k.startsWith('present.')) continue;
      const d = v.data as Float32Array;
      const tiled = new Float32Array(d.length * 2);
      tiled.set(d, 0);
      tiled.set(d, d.length);
      past[k] = { type: 'float32', data: tiled, dims: [2, ...v.dims.slice(1)] };
    }
    const res = await step(ckpt, s, [r1, [...r2, 0]], [[...prompt.map(() => 1), 1, 1, 1], [...prompt.map(() => 1), 1, 1, 0]], past, 3);
    const H = cfg.hidden_size;
    const y = res.resid_post.data as Float32Array;
    const w = weightsOf(dir).read;
    for (const [row, resp] of [r1, r2].entries()) {
      const ref = referenceResidPost(cfg, w, [...prompt, ...resp], 2)[2].slice(prompt.length);
      expect(rel(y.subarray(row * 3 * H, (row * 3 + resp.length) * H), ref.flatMap((r) => [...r]))).toBeLessThan(2e-4);
    }
    await s.close();
    ckpt.close();
  });
});
