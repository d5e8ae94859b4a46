/**
 * Block-wise asymmetric weight quantization in the layout of ONNX Runtime's com.microsoft MatMulNBits:
 *   B           uint8 [N, nBlocks, blockSize·bits/8]  codes packed low-first along K (4-bit: element 2j in the low nibble)
 *   scales      float [N · nBlocks]
 *   zero_points uint8 [N · ceil(nBlocks·bits/8)]       packed the same way (4-bit: two blocks per byte, low first)
 * and w ≈ (code − zero_point) · scale. A stored checkpoint weight is [out, in] = [N, K]: the layout MatMulNBits
 * wants, so no transpose is needed. A ragged last block is padded with zeros (codes of value 0.0).
 */

export type QuantBits = 4 | 8;

export interface QuantizedMatrix {
  bits: QuantBits;
  blockSize: number;
  /** Rows (output features). */
  n: number;
  /** Columns (input features, the reduction axis). */
  k: number;
  nBlocks: number;
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
}

/** Quantizes a row-major [n, k] f32 matrix, one block of `blockSize` along k at a time (min/max, 0 kept exact). */
export function quantizeBlockwise(w: Float32Array, n: number, k: number, bits: QuantBits, blockSize = 32): QuantizedMatrix {
  if (w.length !== n * k) throw new Error(`quantizeBlockwise: ${w.length} values for [${n}, ${k}]`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`block size must be a power of two ≥ 16, got ${blockSize}`);
  const nBlocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const qmax = (1 << bits) - 1;
  const zpRow = Math.ceil((nBlocks * bits) / 8);
  const packed = new Uint8Array(n * nBlocks * blob);
  const scales = new Float32Array(n * nBlocks);
  const zeroPoints = new Uint8Array(n * zpRow);
  const codes = new Uint8Array(blockSize);
  for (let r = 0; r < n; r++) {
    const row = r * k;
    for (let blk = 0; blk < nBlocks; blk++) {
      const k0 = blk * blockSize;
      const k1 = Math.min(k, k0 + blockSize);
      // Range includes 0 so the zero point is a valid code and padding/zeros dequantize exactly.
      let lo = 0;
      let hi = 0;
      for (let c = k0; c < k1; c++) {
        const v = w[row + c];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`non-finite weight in row ${r}, columns ${k0}..${k1 - 1}`);
      const scale = hi > lo ? Math.fround((hi - lo) / qmax) : 1;
      const zp = Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      scales[r * nBlocks + blk] = scale;
      codes.fill(zp);
      for (let c = k0; c < k1; c++) codes[c - k0] = Math.min(qmax, Math.max(0, Math.round(w[row + c] / scale) + zp));
      const out = (r * nBlocks + blk) * blob;
      if (bits === 8) packed.set(codes, out);
      else for (let j = 0; j < blob; j++) packed[out + j] = codes[2 * j] | (codes[2 * j + 1] << 4);
      if (bits === 8) zeroPoints[r * zpRow + blk] = zp;
      else zeroPoints[r * zpRow + (blk >> 1)] |= blk & 1 ? zp << 4 : zp;
    }
  }
  return { bits, blockSize, n, k, nBlocks, packed, scales, zeroPoints };
}

/** The code and zero point of element (r, c), read back from the packed layout. */
export function codeAt(q: QuantizedMatrix, r: number, c: number): { code: number; zeroPoint: number; scale: number } {
  const blk = Math.floor(c / q.blockSize);
  const i = c - blk * q.blockSize;
  const blob = (q.blockSize * q.bits) / 8;
  const zpRow = Math.ceil((q.nBlocks * q.bits) / 8);
  const byte = q.packed[(r * q.nBlocks + blk) * blob + (q.bits === 8 ? i : i >> 1)];
  const code = q.bits === 8 ? byte : i & 1 ? byte >> 4 : byte & 15;
  const zb = q.zeroPoints[r * zpRow + (q.bits === 8 ? blk : blk >> 1)];
  const zeroPoint = q.bits === 8 ? zb : blk & 1 ? zb >> 4 : zb & 15;
  return { code, zeroPoint, scale: q.scales[r * q.nBlocks + blk] };
}

/** Bytes a quantized [n, k] matrix takes (codes + f32 scales + zero points). */
export function quantizedBytes(n: number, k: number, bits: QuantBits, blockSize = 32): number {
  const nBlocks = Math.ceil(k / blockSize);
  return n * nBlocks * ((blockSize * bits) / 8) + n * nBlocks * 4 + n * Math.ceil((nBlocks * bits) / 8);
}
