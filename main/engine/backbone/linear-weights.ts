/**
 * One projection x·Wᵀ of a stored [out, in] checkpoint weight, emitted into a graph at the session's precision.
 * Every decoder graph (truncated resid_post, KV-cache decoding) emits its projections through here, so the
 * weight formats a precision implies live in one place.
 */
import { InputError } from '../errors';
import { f32ToF16 } from '../formats/safetensors';
import type { GraphBuilder } from '../onnx/graph-builder';
import type { Checkpoint } from './checkpoint';

export type Precision = 'f32' | 'f16';

const FLOAT16 = 10;
const FLOAT = 1;

/** [rows, cols] row-major → [cols, rows], blocked for cache locality. */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[base + c];
      }
    }
  }
  return out;
}

/** Emits y = x·Wᵀ (f32 in, f32 out) for the checkpoint tensor `name` of shape [out, in]; returns y's name. */
export function emitLinear(b: GraphBuilder, ckpt: Checkpoint, name: string, x: string, precision: Precision): string {
  const [out, inp] = ckpt.tensor(name).shape;
  const wT = transpose2d(ckpt.readF32(name), out, inp);
  if (precision === 'f16') {
    const w16 = new Uint16Array(wT.length);
    for (let k = 0; k < wT.length; k++) {
      w16[k] = f32ToF16(wT[k]);
      if ((w16[k] & 0x7c00) === 0x7c00 && Number.isFinite(wT[k])) {
        throw new InputError({ file: ckpt.tensor(name).file, tensor: name, expected: 'weights within float16 range (|w| ≤ 65504) for precision f16; use f32', got: String(wT[k]) });
      }
    }
    const init = b.initializer(`${name}.T.f16`, w16, [inp, out], { type: 'float16' });
    return b.op('Cast', [b.op('MatMul', [b.op('Cast', [x], { to: FLOAT16 }), init])], { to: FLOAT });
  }
  return b.op('MatMul', [x, b.initializer(`${name}.T`, wT, [inp, out])]);
}
