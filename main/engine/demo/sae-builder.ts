import type { NpzWriteArray } from '../formats/npz';
import { Prng } from './prng';

/**
 * The demo SAE, in Gemma Scope's `params.npz` layout (W_enc [d_model, d_sae], W_dec [d_sae, d_model] with unit-norm
 * rows, b_enc, b_dec, threshold). A random backbone has no learnt features, so the directions are chosen to be
 * readable: most latents point along one frequent token's embedding (token identity survives in the middle-layer
 * residual stream), the rest along a mix of two tokens ("polysemantic"). Biases and JumpReLU thresholds are then
 * calibrated on the demo backbone's own activations so each latent fires on a target share of tokens
 * (3–10 %, i.e. an L0 of ~5–10 % of latents per token): sparse, but really firing.
 */

export interface SaeCalibrationInput {
  /** Embedding matrix [vocab, hidden] of the demo checkpoint. */
  embed: Float32Array;
  hiddenSize: number;
  /** Token ids of the calibration sequences (BOS first). */
  sequences: number[][];
  /** resid_post(layer) per sequence, [T × hidden] row-major (BOS included), from the backbone engine. */
  hidden: Float32Array[];
  dSae: number;
  seed: number;
  /** Token ids never used as a latent's anchor (BOS, pad). */
  excludeTokens: ReadonlySet<number>;
}

export interface DemoSae {
  arrays: Record<'W_enc' | 'W_dec' | 'b_enc' | 'b_dec' | 'threshold', NpzWriteArray>;
  /** The token each latent is anchored on (first anchor for mixed latents). */
  anchors: number[][];
  /** Mean share of latents active per (non-BOS) calibration token. */
  meanL0Fraction: number;
}

/** Rounds calibrated values so a last-bit difference in an activation can't change the written bytes. */
const round = (x: number, step = 1e-4) => Math.round(x / step) * step;

export function buildDemoSae(inp: SaeCalibrationInput): DemoSae {
  const { hiddenSize: H, dSae } = inp;
  const rng = new Prng(inp.seed);

  // Anchor tokens: the most frequent tokens of the calibration texts (ties → lower id).
  const freq = new Map<number, number>();
  for (const seq of inp.sequences) for (const id of seq.slice(1)) if (!inp.excludeTokens.has(id)) freq.set(id, (freq.get(id) ?? 0) + 1);
  const frequent = [...freq].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id);
  if (frequent.length < 8) throw new Error('demo SAE: too few distinct tokens in the calibration texts');
  const single = Math.floor((dSae * 3) / 4);
  const anchors: number[][] = [];
  for (let j = 0; j < dSae; j++) {
    if (j < single) anchors.push([frequent[j % frequent.length]]);
    else {
      const pool = Math.min(frequent.length, single);
      anchors.push([frequent[Math.floor(rng.next() * pool)], frequent[Math.floor(rng.next() * pool)]]);
    }
  }

  const W_dec = new Float32Array(dSae * H);
  for (let j = 0; j < dSae; j++) {
    const d = new Float64Array(H);
    for (const t of anchors[j]) {
      const row = inp.embed.subarray(t * H, (t + 1) * H);
      const n = Math.hypot(...row) || 1;
      for (let k = 0; k < H; k++) d[k] += row[k] / n;
    }
    let nn = 0;
    const noise = new Float64Array(H);
    for (let k = 0; k < H; k++) nn += (noise[k] = rng.normal()) ** 2;
    nn = Math.sqrt(nn) || 1;
    for (let k = 0; k < H; k++) d[k] += (0.3 * noise[k]) / nn;
    const norm = Math.hypot(...d) || 1;
    for (let k = 0; k < H; k++) W_dec[j * H + k] = d[k] / norm;
  }
  // Unit-norm in float32 (Gemma Scope's convention; loaders check it).
  for (let j = 0; j < dSae; j++) {
    const row = W_dec.subarray(j * H, (j + 1) * H);
    const n = Math.hypot(...row);
    for (let k = 0; k < H; k++) row[k] = row[k] / n;
  }

  // Calibration tokens: every position but BOS.
  const tokens: Float32Array[] = [];
  inp.hidden.forEach((h, s) => {
    const T = inp.sequences[s].length;
    if (h.length !== T * H) throw new Error(`demo SAE: hidden state of sequence ${s} has ${h.length} values, expected ${T}×${H}`);
    for (let t = 1; t < T; t++) tokens.push(h.subarray(t * H, (t + 1) * H));
  });
  const N = tokens.length;
  const b_dec = new Float32Array(H);
  for (const x of tokens) for (let k = 0; k < H; k++) b_dec[k] += x[k] / N;
  for (let k = 0; k < H; k++) b_dec[k] = round(b_dec[k]);

  const W_enc = new Float32Array(H * dSae);
  const b_enc = new Float32Array(dSae);
  const threshold = new Float32Array(dSae);
  const proj = new Float64Array(N);
  let active = 0;
  for (let j = 0; j < dSae; j++) {
    const d = W_dec.subarray(j * H, (j + 1) * H);
    for (let k = 0; k < H; k++) W_enc[k * dSae + j] = d[k];
    let mean = 0;
    for (let i = 0; i < N; i++) {
      let p = 0;
      const x = tokens[i];
      for (let k = 0; k < H; k++) p += x[k] * d[k];
      proj[i] = p;
      mean += p / N;
    }
    b_enc[j] = round(-mean);
    const pre = proj.map((p) => p + b_enc[j]).sort(); // typed-array sort: numeric, native
    const rate = 0.03 + 0.07 * rng.next();
    const q = pre[Math.min(N - 1, Math.floor((1 - rate) * N))];
    threshold[j] = round(Math.max(q, 1e-3));
    for (const p of pre) if (p > threshold[j]) active++;
  }

  return {
    arrays: {
      W_enc: { shape: [H, dSae], data: W_enc },
      W_dec: { shape: [dSae, H], data: W_dec },
      b_enc: { shape: [dSae], data: b_enc },
      b_dec: { shape: [H], data: b_dec },
      threshold: { shape: [dSae], data: threshold },
    },
    anchors,
    meanL0Fraction: active / (N * dSae),
  };
}

/** JumpReLU of one token vector (for labelling; the product's encoder runs in ONNX Runtime). */
export function jumpRelu(x: Float32Array, sae: DemoSae['arrays'], out: Float32Array): Float32Array {
  const [H, dSae] = sae.W_enc.shape;
  const W = sae.W_enc.data as Float32Array;
  const b = sae.b_enc.data as Float32Array;
  const th = sae.threshold.data as Float32Array;
  for (let j = 0; j < dSae; j++) {
    let p = b[j];
    for (let k = 0; k < H; k++) p += x[k] * W[k * dSae + j];
    out[j] = p > th[j] ? p : 0;
  }
  return out;
}
