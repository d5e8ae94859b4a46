/**
 * Hostile safetensors headers and weights (issue 9, row 10): aliased or overlapping data_offsets, offsets past the
 * file, a tensor listed twice and NaN/Inf weights are refused, each naming the file and the tensor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { firstDuplicateTopLevelKey, f32ToBf16, openSafetensors } from '../../../main/engine/formats/safetensors';
import { firstNonFinite } from '../../../main/engine/formats/finite';
import { tempDir } from '../../helpers/paths';
import { catchInputError } from '../../helpers/errors';

const catchErr = catchInputError;

const dir = tempDir();
let n = 0;
/** A safetensors file with a header given as raw JSON text (so keys can repeat) and the given data bytes. */
function writeRaw(headerJson: string, data: Buffer): string {
  const file = path.join(dir, `t${n++}.safetensors`);
  const h = Buffer.from(headerJson);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}
const f32 = (...v: number[]) => Buffer.from(new Float32Array(v).buffer);

describe('safetensors offsets and entries', () => {
  it('refuses two tensors aliasing the same bytes', () => {
    const file = writeRaw(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), f32(1, 2));
    const err = catchErr(() => openSafetensors(file));
    expect(err.details.file).toBe(file);
    expect(err.message).toMatch(/tensor "[ab]": expected bytes of its own \(tensor "[ab]" ends at data offset 8\), got data_offsets \[0, 8\], overlapping it/);
  });

  it('refuses partly overlapping tensors but accepts adjacent ones and empty tensors', () => {
    const overlap = writeRaw(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), f32(1, 2, 3));
    expect(catchErr(() => openSafetensors(overlap)).details.tensor).toBe('b');
    const ok = writeRaw(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }), f32(1, 2, 3));
    const st = openSafetensors(ok);
    expect(Array.from(st.readF32('b'))).toEqual([3]);
    st.close();
  });

  it('refuses offsets past the end of the file and reversed offsets', () => {
    const past = writeRaw(JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [1000000, 1000016] } }), f32(1));
    const e1 = catchErr(() => openSafetensors(past));
    expect(e1.details.tensor).toBe('a');
    expect(e1.message).toMatch(/data up to byte .*truncated/);
    const reversed = writeRaw(JSON.stringify({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }), f32(1, 2));
    expect(catchErr(() => openSafetensors(reversed)).details.tensor).toBe('a');
  });

  it('refuses a tensor listed twice in the header (JSON.parse would silently keep the last)', () => {
    const file = writeRaw('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w" : {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', f32(1, 2));
    const err = catchErr(() => openSafetensors(file));
    expect(err.message).toMatch(/t\d+\.safetensors, tensor "w": expected each tensor listed once in the header, got it listed twice/);
  });

  it('finds duplicate keys only at the top level, with escapes and nesting handled', () => {
    expect(firstDuplicateTopLevelKey('{"a": {"a": 1, "b": [{"a": 2}]}, "b": "x\\"a\\":", "c": 3}')).toBeUndefined();
    expect(firstDuplicateTopLevelKey('{"a\\u0062": 1, "ab": 2}')).toBe('ab');
    expect(firstDuplicateTopLevelKey('{"__metadata__": {"k": "v"}, "t": {"dtype": "F32"}, "__metadata__": {}}')).toBe('__metadata__');
  });
});

describe('non-finite weights', () => {
  it('refuses NaN and Inf in an F32 tensor when it is read, naming the tensor and the index', () => {
    const file = writeRaw(JSON.stringify({ ok: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, w: { dtype: 'F32', shape: [2, 2], data_offsets: [8, 24] } }), f32(1, 2, 0.5, 0.25, NaN, 4));
    const st = openSafetensors(file);
    try {
      expect(Array.from(st.readF32('ok'))).toEqual([1, 2]);
      const err = catchErr(() => st.readF32('w'));
      expect(err.message).toMatch(/tensor "w": expected finite weights \(no NaN or Inf\), got NaN at index 2 of shape \[2, 2\]/);
    } finally {
      st.close();
    }
  });

  it('refuses Inf in BF16 and F16 tensors', () => {
    const bf = Buffer.from(new Uint16Array([f32ToBf16(1), f32ToBf16(-Infinity)]).buffer);
    const f16 = Buffer.from(new Uint16Array([0x3c00, 0x7c00]).buffer);
    const file = writeRaw(JSON.stringify({ b: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] }, h: { dtype: 'F16', shape: [2], data_offsets: [4, 8] } }), Buffer.concat([bf, f16]));
    const st = openSafetensors(file);
    try {
      expect(catchErr(() => st.readF32('b')).message).toMatch(/tensor "b".*got -Infinity at index 1/);
      expect(catchErr(() => st.readF32('h')).message).toMatch(/tensor "h".*got Infinity at index 1/);
    } finally {
      st.close();
    }
  });

  it('firstNonFinite finds the first NaN/Inf and nothing in finite data', () => {
    const v = new Float32Array(1000).fill(0.5);
    expect(firstNonFinite(v)).toBe(-1);
    v[999] = -Infinity;
    v[700] = NaN;
    expect(firstNonFinite(v)).toBe(700);
    expect(firstNonFinite(Float64Array.of(1, Number.MAX_VALUE, Infinity))).toBe(2);
  });
});
