import { describe, expect, it } from 'vitest';

import { assertMemoryFor, backboneMemoryNeed, blockParameters, LLAMA31_8B_L15, llama8bMemoryLine, parseModelConfig } from '../../../main/engine/backbone';
import { InputError } from '../../../main/engine/errors';
import { llamaConfig } from './random-checkpoint';

const GB = 1e9;

describe('backbone memory estimate', () => {
  it('Llama-3.1-8B at layer 15 is 16 blocks of 218 M parameters (3.49 B): f32 14 GB of weights, f16 7 GB', () => {
    const perBlock = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096;
    expect(blockParameters(LLAMA31_8B_L15.shape, 15)).toBe(16 * perBlock);
    const f32 = backboneMemoryNeed(LLAMA31_8B_L15.shape, 15, 'f32');
    const f16 = backboneMemoryNeed(LLAMA31_8B_L15.shape, 15, 'f16');
    expect(f32.weightBytes).toBe(16 * perBlock * 4);
    expect(f16.weightBytes).toBe(f32.weightBytes / 2);
    expect(f32.needBytes).toBeGreaterThan(f32.weightBytes);
    expect(llama8bMemoryLine({ total: 16 * GB, available: 12 * GB })).toEqual({ ok: true, detail: expect.stringMatching(/3\.49 B parameters: f32 needs ~17\.7 GB, f16 ~9\.0 GB; this machine has 16\.0 GB \(12\.0 GB available\)/) });
    expect(llama8bMemoryLine({ total: 8 * GB, available: 6 * GB }).ok).toBe(false);
  });

  it('refuses a session that does not fit with the need, what the machine has, and the f16 way out', () => {
    const c = parseModelConfig(llamaConfig({ hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256 }), '/m/config.json');
    const err = (() => {
      try {
        assertMemoryFor(c, 15, 'f32', '/m', { total: 16 * GB, available: 12 * GB });
      } catch (e) {
        return e as InputError;
      }
    })();
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toMatch(/\/m, field "layer": expected memory for blocks 0\.\.15 \(3\.49 B parameters, f32\): ~17\.7 GB; precision f16 needs ~9\.0 GB, which fits .*got 12\.0 GB available of 16\.0 GB/);
    expect(() => assertMemoryFor(c, 15, 'f16', '/m', { total: 16 * GB, available: 12 * GB })).not.toThrow();
    expect(() => assertMemoryFor(c, 15, 'f16', '/m', { total: 8 * GB, available: 6 * GB })).toThrow(/try an earlier layer/);
    process.env.SPARSERM_IGNORE_MEMORY_CHECK = '1';
    try {
      expect(() => assertMemoryFor(c, 15, 'f32', '/m', { total: 8 * GB, available: 6 * GB })).not.toThrow();
    } finally {
      delete process.env.SPARSERM_IGNORE_MEMORY_CHECK;
    }
  });
});
