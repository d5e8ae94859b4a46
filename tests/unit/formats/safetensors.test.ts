import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  openSafetensors,
  writeSafetensors,
} from '../../../main/engine/formats/safetensors';
import { fixturesDir, tempDir } from '../../helpers/paths';
import { catchInputError } from '../../helpers/errors';

const f32Ckpt = path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-f32', 'model.safetensors');
const bf16Ckpt = path.join(fixturesDir, 'gemma2-tiny', 'checkpoint-bf16', 'model.safetensors');
const saeFile = path.join(fixturesDir, 'sae-tiny', 'saelens', 'sae_weights.safetensors');

const catchErr = catchInputError;

describe('openSafetensors on real files', () => {
  it('lists the Gemma-2 fixture tensors with dtype, shape and absolute offsets', () => {
    const st = openSafetensors(f32Ckpt);
    try {
      expect(st.entries.size).toBe(2 + 4 * 11); // embedding + final norm + 11 per block
      expect(st.entries.has('model.norm.weight')).toBe(true);
      const emb = st.entries.get('model.embed_tokens.weight')!;
      expect(emb).toMatchObject({ dtype: 'F32', shape: [270, 32] });
      expect(emb.begin).toBe(st.headerBytes);
      expect(emb.end - emb.begin).toBe(270 * 32 * 4);
      expect(st.entries.get('model.layers.3.mlp.down_proj.weight')!.shape).toEqual([32, 64]);
    } finally {
      st.close();
    }
  });

  it('reads the f32 values byte-exactly (checked against a manual decode of the same bytes)', () => {
    const st = openSafetensors(f32Ckpt);
    const name = 'model.layers.1.self_attn.q_proj.weight';
    const e = st.entries.get(name)!;
    const x = st.readF32(name);
    st.close();
    const all = fs.readFileSync(f32Ckpt);
    expect(x.length).toBe(48 * 32);
    for (const i of [0, 1, 777, x.length - 1]) expect(x[i]).toBe(all.readFloatLE(e.begin + 4 * i));
  });

  it('readRawRange reads a slice of one tensor (embedding rows) and refuses bytes outside it', () => {
    const st = openSafetensors(bf16Ckpt);
    const name = 'model.embed_tokens.weight';
    const full = st.readRaw(name);
    const dest = Buffer.alloc(64 + 8);
    st.readRawRange(name, 7 * 64, 64, dest, 8); // row 7 of a [270, 32] BF16 tensor
    expect(dest.subarray(8).equals(full.subarray(7 * 64, 8 * 64))).toBe(true);
    expect(() => st.readRawRange(name, 269 * 64, 65, Buffer.alloc(65))).toThrow(RangeError);
    expect(() => st.readRawRange(name, -1, 2, Buffer.alloc(2))).toThrow(RangeError);
    st.close();
  });

  it('converts BF16 to f32 exactly: the bf16 checkpoint is the f32 one rounded to nearest even', () => {
    const a = openSafetensors(f32Ckpt);
    const b = openSafetensors(bf16Ckpt);
    try {
      expect(b.entries.get('model.embed_tokens.weight')!.dtype).toBe('BF16');
      for (const name of a.entries.keys()) {
        const x = a.readF32(name);
        const y = b.readF32(name);
        expect(y.length).toBe(x.length);
        let mismatches = 0;
        for (let i = 0; i < x.length; i++) {
          const want = f32FromBits(f32ToBf16(x[i]) << 16);
          if (y[i] !== want) mismatches++;
        }
        expect(mismatches, name).toBe(0);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('reads the SAELens sae_weights.safetensors', () => {
    const st = openSafetensors(saeFile);
    for (const n of ['W_dec', 'W_enc', 'b_dec', 'b_enc', 'threshold']) expect(st.entries.has(n), n).toBe(true);
    expect(st.entries.get('W_enc')!.shape).toEqual([32, 64]);
    const w = st.readF32('W_dec');
    // Gemma Scope decoder rows are unit-norm (fixture README): a real property of real data.
    let norm = 0;
    for (let j = 0; j < 32; j++) norm += w[j] * w[j];
    expect(Math.sqrt(norm)).toBeCloseTo(1, 4);
    st.close();
  });
});

function f32FromBits(u: number): number {
  const b = new Uint32Array([u >>> 0]);
  return new Float32Array(b.buffer)[0];
}

describe('float conversions', () => {
  it('f16 ↔ f32 round-trips every finite half value', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >> 10) & 0x1f;
      if (exp === 31 && (h & 0x3ff)) continue; // NaN payloads
      if (f32ToF16(f16ToF32(h)) !== h) bad++;
    }
    expect(bad).toBe(0);
  });

  it('f16 known values, rounding to nearest even, overflow and subnormals', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(70000)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(2 ** -26)).toBe(0x0000);
    // 1 + 2^-11 is exactly halfway between 1 and 1+2^-10: ties to even (1).
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16ToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });

  it('bf16 round-trips every finite value and rounds ties to even', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      if (((h >> 7) & 0xff) === 0xff && (h & 0x7f)) continue;
      if (f32ToBf16(f32FromBits(h << 16)) !== h) bad++;
    }
    expect(bad).toBe(0);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above the tie → up
  });
});

describe('writeSafetensors', () => {
  it('writes F32/BF16/F16 that the reader reads back (with metadata), atomically', () => {
    const dir = tempDir();
    const file = path.join(dir, 'out.safetensors');
    const data = new Float32Array([0.1, -2.5, 3.14159, 1e-3, 1000, -0.0]);
    writeSafetensors(file, {
      a: { dtype: 'F32', shape: [2, 3], data },
      b: { dtype: 'BF16', shape: [6], data },
      c: { dtype: 'F16', shape: [3, 2], data },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    }, { format: 'pt' });
    expect(fs.readdirSync(dir)).toEqual(['out.safetensors']);
    const st = openSafetensors(file);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.headerBytes % 8).toBe(0);
    expect(Array.from(st.readF32('a'))).toEqual(Array.from(data));
    const b = st.readF32('b');
    const c = st.readF32('c');
    for (let i = 0; i < data.length; i++) {
      expect(b[i]).toBe(f32FromBits(f32ToBf16(data[i]) << 16));
      expect(c[i]).toBe(f16ToF32(f32ToF16(data[i])));
      expect(Math.abs(b[i] - data[i])).toBeLessThanOrEqual(Math.abs(data[i]) * 2 ** -8);
      expect(Math.abs(c[i] - data[i])).toBeLessThanOrEqual(Math.abs(data[i]) * 2 ** -11 + 1e-7);
    }
    expect(st.readF32('empty').length).toBe(0);
    expect(st.entries.get('c')).toMatchObject({ dtype: 'F16', shape: [3, 2] });
    st.close();
    fs.rmSync(dir, { recursive: true });
  });

  it('rejects data that does not match the shape, and leaves no file behind', () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.safetensors');
    const err = catchErr(() => writeSafetensors(file, { w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }));
    expect(err.details.tensor).toBe('w');
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('openSafetensors on bad input', () => {
  function writeRaw(header: unknown, dataBytes: number, headerLenOverride?: number): string {
    const dir = tempDir();
    const file = path.join(dir, 'x.safetensors');
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerLenOverride ?? h.length));
    fs.writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
    return file;
  }

  it('a truncated file names the file and the tensor', () => {
    const file = writeRaw({ w: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] } }, 40);
    const err = catchErr(() => openSafetensors(file));
    expect(err.details.file).toBe(file);
    expect(err.details.tensor).toBe('w');
    expect(err.message).toMatch(/truncated/);
  });

  it('sizes must equal product(shape) × itemsize', () => {
    const file = writeRaw({ w: { dtype: 'BF16', shape: [3, 4], data_offsets: [0, 48] } }, 48);
    const err = catchErr(() => openSafetensors(file));
    expect(err.details.tensor).toBe('w');
    expect(err.message).toContain('24 bytes for BF16[3,4]');
  });

  it('a header longer than the file, garbage JSON, unknown dtype, missing tensor', () => {
    expect(catchErr(() => openSafetensors(writeRaw({}, 0, 5000))).message).toMatch(/header of 5000 bytes/);
    const dir = tempDir();
    const junk = path.join(dir, 'junk.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    fs.writeFileSync(junk, Buffer.concat([len, Buffer.from('{nop')]));
    expect(catchErr(() => openSafetensors(junk)).details.file).toBe(junk);
    const e = catchErr(() => openSafetensors(writeRaw({ w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, 1)));
    expect(e.details.tensor).toBe('w');
    const st = openSafetensors(f32Ckpt);
    expect(catchErr(() => st.readF32('nope')).details.tensor).toBe('nope');
    st.close();
    expect(catchErr(() => openSafetensors(path.join(dir, 'missing.safetensors'))).message).toMatch(/ENOENT/);
  });

  it('refuses to read integer tensors as floats', () => {
    const dir = tempDir();
    const file = path.join(dir, 'i.safetensors');
    const h = Buffer.from(JSON.stringify({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    fs.writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(16)]));
    const st = openSafetensors(file);
    expect(catchErr(() => st.readF32('ids')).message).toContain('got I64');
    expect(st.readRaw('ids').length).toBe(16);
    st.close();
  });
});
