import type { Sae } from './load';

/**
 * JumpReLU for a subset of latents in plain TypeScript: `f_j = pre_j · [pre_j > θ_j]`, `pre = x·W_enc + b_enc`.
 * Used where only a few hundred latents matter (the selected ones, for explanations) so building an ONNX graph
 * would cost more than the arithmetic; the full-width encoder runs in ONNX Runtime (encoder.ts).
 * `x` is [rows × dIn] row-major; returns [rows × latents.length].
 */
export function jumpReluSubset(sae: Sae, x: Float32Array, rows: number, latents: ArrayLike<number>): Float32Array {
  const { dIn, dSae, W_enc, b_enc, b_dec, threshold, applyBDecToInput } = sae;
  const k = latents.length;
  const out = new Float32Array(rows * k);
  // Gather the selected W_enc columns once so the inner loop is contiguous.
  const cols = new Float32Array(k * dIn);
  for (let c = 0; c < k; c++) for (let i = 0; i < dIn; i++) cols[c * dIn + i] = W_enc[i * dSae + latents[c]];
  const xi = new Float64Array(dIn);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dIn; i++) xi[i] = x[r * dIn + i] - (applyBDecToInput ? b_dec[i] : 0);
    for (let c = 0; c < k; c++) {
      let s = 0;
      const base = c * dIn;
      for (let i = 0; i < dIn; i++) s += xi[i] * cols[base + i];
      const pre = s + b_enc[latents[c]];
      out[r * k + c] = pre > threshold[latents[c]] ? pre : 0;
    }
  }
  return out;
}
