import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { clearContentHashMemory, loadCheckpoint } from '../../../main/engine/backbone';
import { CancelledError, InputError } from '../../../main/engine/errors';
import { openSafetensors, writeSafetensors } from '../../../main/engine/formats/safetensors';
import { fixturesDir, tempDir } from '../../helpers/paths';
import { gemma2Config, writeRandomCheckpoint } from './random-checkpoint';

const work = tempDir('sparserm-ckpt-');
// The digest memo goes under SPARSERM_CACHE: keep it inside the test folder.
process.env.SPARSERM_CACHE = path.join(work, 'cache');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

let n = 0;
function fresh(over: Record<string, unknown> = {}, opts: Parameters<typeof writeRandomCheckpoint>[2] = {}): string {
  return writeRandomCheckpoint(path.join(work, `c${n++}`), gemma2Config(over as never), opts);
}

async function inputError(p: Promise<unknown> | (() => unknown)): Promise<InputError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

/** Rewrites one tensor of a single-file checkpoint through a callback. */
function rewrite(dir: string, edit: (t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const st = openSafetensors(file);
  const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [name, e] of st.entries) t[name] = { dtype: 'F32', shape: e.shape, data: st.readF32(name) };
  st.close();
  edit(t);
  writeSafetensors(file, t);
}

describe('loadCheckpoint', () => {
  it('reads the fixture config (head_dim read, not derived) and lists tensors lazily', async () => {
    const c = await loadCheckpoint(path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-bf16'));
    expect(c.config).toMatchObject({ hiddenSize: 32, numHeads: 2, numKvHeads: 1, headDim: 24, queryScale: 24, slidingWindow: 3, attnSoftcap: 50, numLayers: 4 });
    expect(c.config.arch.id).toBe('gemma2');
    expect(c.tensors.get('model.embed_tokens.weight')!.dtype).toBe('BF16');
    expect(c.tensorsThrough(1)).toHaveLength(1 + 2 * 11);
    const rows = c.embeddingRows([5, 2, 5]);
    const full = c.readF32('model.embed_tokens.weight');
    expect(Array.from(rows.subarray(0, 32))).toEqual(Array.from(full.subarray(5 * 32, 6 * 32)));
    expect(Array.from(rows.subarray(64, 96))).toEqual(Array.from(full.subarray(5 * 32, 6 * 32)));
    expect(Array.from(rows.subarray(32, 64))).toEqual(Array.from(full.subarray(2 * 32, 3 * 32)));
    c.close();
  });

  it('reads a sharded checkpoint through its index', async () => {
    const dir = fresh({}, { shards: 3 });
    const c = await loadCheckpoint(dir);
    expect(c.files).toHaveLength(3);
    expect(new Set([...c.tensors.values()].map((t) => path.basename(t.file))).size).toBe(3);
    c.validateThrough(3);
    c.close();
  });

  it('unsupported or unknown architecture', async () => {
    // Llama is supported now: a Gemma config relabelled Llama is refused at the family's activation.
    const llama = fresh({ architectures: ['LlamaForCausalLM'] });
    expect((await inputError(loadCheckpoint(llama))).message).toMatch(/field "hidden_activation": expected the llama activation \(silu\), got "gelu_pytorch_tanh"/);
    const other = fresh({ architectures: ['GPT2LMHeadModel'] });
    const e = await inputError(loadCheckpoint(other));
    expect(e.details.field).toBe('architectures');
    expect(e.details.file).toBe(path.join(path.resolve(other), 'config.json'));
  });

  it('missing or invalid config fields name the field', async () => {
    const dir = fresh();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    delete cfg.head_dim;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    expect((await inputError(loadCheckpoint(dir))).details.field).toBe('head_dim');
    const bad = fresh({ num_key_value_heads: 3, num_attention_heads: 4 });
    expect((await inputError(loadCheckpoint(bad))).details.field).toBe('num_key_value_heads');
    const noFolder = await inputError(loadCheckpoint(path.join(work, 'nope')));
    expect(noFolder.message).toContain('checkpoint folder');
  });

  it('missing tensor and wrong shape name the tensor, expected and got', async () => {
    const a = fresh();
    rewrite(a, (t) => delete t['model.layers.1.mlp.up_proj.weight']);
    const ca = await loadCheckpoint(a);
    ca.validateThrough(0); // blocks after L are never needed
    const e = await inputError(() => ca.validateThrough(1));
    expect(e.details.tensor).toBe('model.layers.1.mlp.up_proj.weight');
    ca.close();

    const b = fresh();
    rewrite(b, (t) => {
      t['model.layers.0.self_attn.k_proj.weight'] = { dtype: 'F32', shape: [32, 32], data: new Float32Array(32 * 32) };
    });
    const cb = await loadCheckpoint(b);
    const e2 = await inputError(() => cb.validateThrough(0));
    expect(e2.details.tensor).toBe('model.layers.0.self_attn.k_proj.weight');
    expect(e2.details.expected).toContain('[24, 32]');
    expect(e2.details.got).toBe('[32, 32]');
    cb.close();
  });

  it('unsupported dtype and truncated files', async () => {
    const dir = fresh();
    const file = path.join(dir, 'model.safetensors');
    const buf = fs.readFileSync(file);
    const hlen = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + hlen).toString());
    header['model.layers.0.input_layernorm.weight'].dtype = 'I32'; // same byte size as F32
    const h = Buffer.from(JSON.stringify(header).padEnd(hlen, ' '));
    fs.writeFileSync(file, Buffer.concat([buf.subarray(0, 8), h, buf.subarray(8 + hlen)]));
    const c = await loadCheckpoint(dir);
    const e = await inputError(() => c.validateThrough(0));
    expect(e.message).toMatch(/input_layernorm.*dtype F32, BF16 or F16, got I32/);
    c.close();

    const t = fresh();
    const tf = path.join(t, 'model.safetensors');
    fs.truncateSync(tf, fs.statSync(tf).size - 100);
    const e2 = await inputError(loadCheckpoint(t));
    expect(e2.details.file).toBe(tf);
    expect(e2.message).toMatch(/truncated/);
  });

  it('index pointing at a missing shard or the wrong shard', async () => {
    const dir = fresh({}, { shards: 2 });
    const idxFile = path.join(dir, 'model.safetensors.index.json');
    const idx = JSON.parse(fs.readFileSync(idxFile, 'utf8'));
    const name = 'model.layers.0.mlp.up_proj.weight';
    const other = Object.values(idx.weight_map).find((f) => f !== idx.weight_map[name]);
    idx.weight_map[name] = other;
    fs.writeFileSync(idxFile, JSON.stringify(idx));
    expect((await inputError(loadCheckpoint(dir))).details.tensor).toBe(name);
    idx.weight_map[name] = 'model-00009-of-00009.safetensors';
    fs.writeFileSync(idxFile, JSON.stringify(idx));
    expect((await inputError(loadCheckpoint(dir))).message).toMatch(/00009.*no such file/);
  });

  it('token ids outside the vocabulary are rejected', async () => {
    const c = await loadCheckpoint(fresh());
    expect((await inputError(() => c.embeddingRows([2, 300]))).message).toMatch(/0\.\.299.*got 300/);
    c.close();
  });
});

describe('content hash', () => {
  it('covers exactly what resid_post(L) depends on, and changes when those weights change', async () => {
    const dir = fresh();
    const c1 = await loadCheckpoint(dir);
    const h0 = await c1.contentHash(0);
    const h1 = await c1.contentHash(1);
    const hAll = await c1.contentHash();
    c1.close();
    expect(new Set([h0, h1, hAll]).size).toBe(3);
    expect(h0).toMatch(/^[0-9a-f]{64}$/);

    // Change a block-2 weight: L=0 and L=1 hashes stay, the full hash changes.
    rewrite(dir, (t) => (t['model.layers.2.mlp.up_proj.weight'].data[0] += 1));
    const c2 = await loadCheckpoint(dir);
    expect(await c2.contentHash(0)).toBe(h0);
    expect(await c2.contentHash(1)).toBe(h1);
    expect(await c2.contentHash()).not.toBe(hAll);
    c2.close();
    // Change a block-0 weight by one ulp-ish: every hash changes.
    rewrite(dir, (t) => (t['model.layers.0.input_layernorm.weight'].data[3] *= 1.0000001));
    const c3 = await loadCheckpoint(dir);
    expect(await c3.contentHash(0)).not.toBe(h0);
    c3.close();
  });

  it('does not depend on sharding, file layout or config metadata; does depend on config numbers', async () => {
    const a = fresh({}, { seed: 5 });
    const b = fresh({}, { seed: 5, shards: 3 });
    const ca = await loadCheckpoint(a);
    const cb = await loadCheckpoint(b);
    expect(await cb.contentHash(2)).toBe(await ca.contentHash(2));
    ca.close();
    cb.close();
    const d = fresh({ rms_norm_eps: 1e-5 }, { seed: 5 });
    const cd = await loadCheckpoint(d);
    const ca2 = await loadCheckpoint(a);
    const ha = await ca2.contentHash(2);
    expect(await cd.contentHash(2)).not.toBe(ha);
    cd.close();
    // Metadata-only config edits (what a re-download from the Hub often brings) keep the hash.
    const e = fresh({ transformers_version: '9.9.9', torch_dtype: 'bfloat16' } as never, { seed: 5 });
    const ce = await loadCheckpoint(e);
    expect(await ce.contentHash(2)).toBe(ha);
    ce.close();
    ca2.close();
  });

  it('can be cancelled, and keeps the digests finished before the cancel', async () => {
    const dir = fresh();
    const c = await loadCheckpoint(dir);
    const ctl = new AbortController();
    let calls = 0;
    await expect(c.contentHash(3, { signal: ctl.signal, onProgress: () => ++calls === 5 && ctl.abort() })).rejects.toBeInstanceOf(CancelledError);
    // The 5 digests finished before the cancel are on disk.
    const real = fs.realpathSync(path.join(dir, 'model.safetensors'));
    const memoDir = path.join(work, 'cache', 'checkpoint-digests');
    const memo = fs.readdirSync(memoDir).map((f) => JSON.parse(fs.readFileSync(path.join(memoDir, f), 'utf8'))).find((m) => m.path === real);
    expect(Object.keys(memo.digests)).toEqual(c.tensorsThrough(3).slice(0, 5));
    const h = await c.contentHash(3);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    c.close();
  });

  it('is memoised on disk by (path, size, mtime): a restart does not re-read the weights', async () => {
    const dir = fresh();
    const file = path.join(dir, 'model.safetensors');
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000); // whole seconds: restorable exactly
    const atime = mtime;
    fs.utimesSync(file, atime, mtime);
    const c = await loadCheckpoint(dir);
    const h = await c.contentHash(1);
    c.close();
    expect(fs.readdirSync(path.join(work, 'cache', 'checkpoint-digests')).length).toBeGreaterThan(0);
    // Flip data bytes in place but keep size and mtime: a memo hit returns the old hash (proof nothing was re-read).
    const fd = fs.openSync(file, 'r+');
    const st = openSafetensors(file);
    const off = st.entries.get('model.layers.0.self_attn.q_proj.weight')!.begin;
    st.close();
    fs.writeSync(fd, Buffer.from([1, 2, 3, 4]), 0, 4, off);
    fs.closeSync(fd);
    fs.utimesSync(file, atime, mtime);
    clearContentHashMemory(); // simulated restart: only the disk memo remains
    const again = await loadCheckpoint(dir);
    expect(await again.contentHash(1)).toBe(h);
    // A new mtime invalidates the memo and the change is seen.
    fs.utimesSync(file, atime, new Date(mtime.getTime() + 5000));
    expect(await again.contentHash(1)).not.toBe(h);
    again.close();
  });
});
