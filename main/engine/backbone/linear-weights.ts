/**
 * One projection x·Wᵀ of a stored [out, in] checkpoint weight, emitted into a graph at the session's precision.
 * Every decoder graph (truncated resid_post, KV-cache decoding) emits its projections through here, so the
 * weight formats a precision implies live in one place.
 */
import { InputError } from '../errors';
import { f32ToF16 } from '../formats/safetensors';
import type { GraphBuilder } from '../onnx/graph-builder';
import type { Checkpoint } from './checkpoint';
import { quantizeBlockwise, type QuantBits } from './quantize';

/**
 * Weight formats of the projections: f32; f16 (16-bit weights and matmuls, for CUDA); int8 / int4 (weight-only,
 * block-wise with zero points, through ORT's com.microsoft MatMulNBits; activations and the residual stream stay f32).
 */
export const PRECISIONS = ['f32', 'f16', 'int8', 'int4'] as const;
export type Precision = (typeof PRECISIONS)[number];

export function isPrecision(v: unknown): v is Precision {
  return typeof v === 'string' && (PRECISIONS as readonly string[]).includes(v);
}

/** Refuses anything but a known precision (CLI flags, API bodies, openBackbone): never a silent f32 fallback. */
export function parsePrecision(v: unknown, field = 'precision'): Precision {
  if (v === undefined) return 'f32';
  if (!isPrecision(v)) throw new InputError({ field, expected: PRECISIONS.join(' | '), got: JSON.stringify(v) });
  return v;
}

/** Weights per quantization block along K: 32, the usual choice (ORT takes 16 and up; smaller = more scales). */
export const QUANT_BLOCK = 32;
/**
 * MatMulNBits accuracy_level 4 = activations quantized to int8 per block, int8 dot products (ORT's fast CPU path);
 * 0 = dequantize to f32 then f32 GEMM. Measured in bench/backbone-quantized.ts.
 */
export const QUANT_ACCURACY_LEVEL = ['0', '1', '2', '3', '4'].includes(process.env.SPARSERM_QUANT_ACCURACY_LEVEL ?? '') ? Number(process.env.SPARSERM_QUANT_ACCURACY_LEVEL) : 4;

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
  if (precision === 'int8' || precision === 'int4') return emitQuantized(b, name, ckpt.readF32(name), out, inp, x, precision === 'int8' ? 8 : 4);
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

/**
 * MatMulNBits with the stored [out, in] weight quantized block-wise (it is already MatMulNBits's [N, K] layout).
 * The f32 copy is dropped once quantized: peak memory is one tensor plus its packed form.
 */
export function emitQuantized(b: GraphBuilder, name: string, w: Float32Array, n: number, k: number, x: string, bits: QuantBits, accuracyLevel = QUANT_ACCURACY_LEVEL): string {
  const q = quantizeBlockwise(w, n, k, bits, QUANT_BLOCK);
  const blob = (QUANT_BLOCK * bits) / 8;
  const packed = b.initializer(`${name}.q${bits}`, q.packed, [n, q.nBlocks, blob], { type: 'uint8' });
  const scales = b.initializer(`${name}.q${bits}.scales`, q.scales, [n * q.nBlocks]);
  const zps = b.initializer(`${name}.q${bits}.zero_points`, q.zeroPoints, [q.zeroPoints.length], { type: 'uint8' });
  const y = b.fresh('matmulnbits');
  b.node('MatMulNBits', [x, packed, scales, zps], [y], { K: k, N: n, bits, block_size: QUANT_BLOCK, accuracy_level: accuracyLevel }, { domain: 'com.microsoft' });
  return y;
}
