/**
 * config.json messages and limits, and hostile checkpoints (issue 9, rows 9 and 10): every message names the file
 * and the field in plain words, once; absurd sizes, a tensor in two shards and NaN weights are refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { loadCheckpoint } from '../../../main/engine/backbone';
import { CONFIG_LIMITS, parseModelConfig, readModelConfig } from '../../../main/engine/backbone/config';
import { InputError } from '../../../main/engine/errors';
import { openSafetensors, writeSafetensors } from '../../../main/engine/formats/safetensors';
import { fixturesDir, tempDir } from '../../helpers/paths';
import { gemma2Config, writeRandomCheckpoint } from './random-checkpoint';

const work = tempDir('sparserm-cfg-');
process.env.SPARSERM_CACHE = path.join(work, 'cache');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const fixtureConfig = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32', 'config.json'), 'utf8')) as Record<string, unknown>;
const FILE = '/models/g/config.json';

function messageFor(over: Record<string, unknown>): string {
  try {
    parseModelConfig({ ...fixtureConfig, ...over }, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('expected an InputError');
}

describe('config.json messages', () => {
  it('a string where a number belongs: file, field, plain words, said once', () => {
    const m = messageFor({ hidden_size: '32' });
    expect(m).toBe('/models/g/config.json, field "hidden_size": expected a number, got the string "32"');
    expect(m).not.toMatch(/expected expected|received/);
  });

  it('1e999 is explained as a number too large, not "null"', () => {
    const dir = path.join(work, 'inf');
    fs.mkdirSync(dir, { recursive: true });
    const text = JSON.stringify(fixtureConfig).replace(/"rms_norm_eps":[^,}]+/, '"rms_norm_eps":1e999');
    expect(text).toContain('1e999');
    fs.writeFileSync(path.join(dir, 'config.json'), text);
    let m = '';
    try {
      readModelConfig(dir);
    } catch (err) {
      m = (err as Error).message;
    }
    expect(m).toBe(`${path.join(dir, 'config.json')}, field "rms_norm_eps": expected a finite number, got Infinity (a number too large to represent, such as 1e999)`);
  });

  it('missing, negative, fractional and wrongly typed fields', () => {
    const noHead = { ...fixtureConfig };
    delete noHead.head_dim;
    expect(() => parseModelConfig(noHead, FILE)).toThrow('/models/g/config.json, field "head_dim": expected a number, got nothing (the field is missing)');
    expect(messageFor({ num_hidden_layers: 0 })).toBe('/models/g/config.json, field "num_hidden_layers": expected a number greater than 0, got 0');
    expect(messageFor({ vocab_size: 2.5 })).toBe('/models/g/config.json, field "vocab_size": expected a whole number, got 2.5');
    expect(messageFor({ hidden_activation: 7 })).toBe('/models/g/config.json, field "hidden_activation": expected a string, got 7');
    expect(messageFor({ sliding_window: true })).toMatch(/field "sliding_window": expected a number, got true$/);
  });

  it('absurd sizes are refused with the limit (num_hidden_layers = 1e9, huge vocab and hidden sizes)', () => {
    expect(messageFor({ num_hidden_layers: 1e9 })).toBe(
      `/models/g/config.json, field "num_hidden_layers": expected at most ${CONFIG_LIMITS.num_hidden_layers} (a sanity limit far above any released model), got 1000000000`,
    );
    expect(messageFor({ vocab_size: 1e12 })).toMatch(/field "vocab_size": expected at most 4194304/);
    expect(messageFor({ hidden_size: 1 << 20 })).toMatch(/field "hidden_size": expected at most 65536/);
    expect(messageFor({ intermediate_size: 1e15 })).toMatch(/field "intermediate_size"/);
    expect(messageFor({ bos_token_id: 270 })).toMatch(/field "bos_token_id": expected a token id below vocab_size \(270\), got 270/);
    // Real Gemma-2 sizes stay well inside the limits.
    expect(parseModelConfig({ ...fixtureConfig, hidden_size: 4608, intermediate_size: 36864, num_hidden_layers: 46, vocab_size: 256000, head_dim: 128, num_attention_heads: 32, num_key_value_heads: 16 }, FILE).numLayers).toBe(46);
  });
});

describe('hostile checkpoints', () => {
  it('refuses a tensor present in two shards', async () => {
    const dir = writeRandomCheckpoint(path.join(work, 'dup'), gemma2Config(), { shards: 2 });
    const shard2 = path.join(dir, 'model-00002-of-00002.safetensors');
    const st = openSafetensors(shard2);
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, e] of st.entries) t[name] = { dtype: 'F32', shape: e.shape, data: st.readF32(name) };
    st.close();
    const s1 = openSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'));
    const stolen = [...s1.entries.keys()][0]!;
    t[stolen] = { dtype: 'F32', shape: s1.entries.get(stolen)!.shape, data: s1.readF32(stolen) };
    s1.close();
    writeSafetensors(shard2, t);
    const err = await loadCheckpoint(dir).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(`${shard2}, tensor "${stolen}": expected each tensor in exactly one shard, got it also in model-00001-of-00002.safetensors`);
  });

  it('refuses NaN weights in the tensors it reads (layer weights, embedding rows), naming file and tensor', async () => {
    const dir = writeRandomCheckpoint(path.join(work, 'nan'), gemma2Config());
    const file = path.join(dir, 'model.safetensors');
    const st = openSafetensors(file);
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, e] of st.entries) t[name] = { dtype: 'F32', shape: e.shape, data: st.readF32(name) };
    st.close();
    const q = 'model.layers.0.self_attn.q_proj.weight';
    t[q].data[5] = NaN;
    const embed = 'model.embed_tokens.weight';
    const hidden = t[embed].shape[1]!;
    t[embed].data[7 * hidden + 3] = Infinity;
    writeSafetensors(file, t);
    const ckpt = await loadCheckpoint(dir);
    try {
      expect(() => ckpt.readF32(q)).toThrow(`${file}, tensor "${q}": expected finite weights (no NaN or Inf), got NaN at index 5`);
      expect(ckpt.embeddingRows([2, 3]).length).toBe(2 * hidden);
      expect(() => ckpt.embeddingRows([2, 7])).toThrow(`${file}, tensor "${embed}": expected finite weights (no NaN or Inf), got Infinity in the row of token 7`);
    } finally {
      ckpt.close();
    }
  });
});
