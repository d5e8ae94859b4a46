/**
 * Head training on 1,000 cached pairs (target < 2 s on 2 cores): synthetic cached features with the real shapes
 * of the default configuration (K = 128 → 256 inputs, 512 hidden), hidden size 2304 (Gemma-2-2B), SAE 16k wide.
 * Times selection + projection + training (what a re-train with cached features does), not feature extraction.
 */
import { fitSparseRm, type FeatureTable, type PairRef } from '../main/engine/sparserm/fit';
import { mulberry32, gaussian } from '../main/engine/sparserm/rng';
import { machine } from './lib/machine';

const pairs = 1000;
const dIn = Number(process.env.HIDDEN ?? 2304);
const dSae = Number(process.env.D_SAE ?? 16384);
const rand = mulberry32(1);
const normal = gaussian(rand);
const W_dec = Float32Array.from({ length: dSae * dIn }, () => normal() / Math.sqrt(dIn));
const n = pairs * 2;
const z = Float32Array.from({ length: n * dIn }, () => normal());
const latents = Array.from({ length: n }, (_, r) => {
  const idx = Int32Array.from(new Set(Array.from({ length: 80 }, () => Math.floor(rand() * dSae))), (j) => j).sort();
  // a planted signal so early stopping behaves like on real data
  const val = Float32Array.from(idx, () => 1 + rand());
  if (r % 2 === 0) return { idx: Int32Array.from([...idx, 7].sort((a, b) => a - b)), val: Float32Array.from([...val, 1]) };
  return { idx, val };
});
for (let r = 0; r < n; r += 2) for (let i = 0; i < dIn; i++) z[r * dIn + i] += W_dec[7 * dIn + i] * 3;
const table: FeatureTable = { hiddenSize: dIn, n, z, latents };
const refs: PairRef[] = Array.from({ length: pairs }, (_, p) => ({ chosen: 2 * p, rejected: 2 * p + 1, prompt: `p${p}` }));

const t0 = performance.now();
const fit = await fitSparseRm(table, refs, { dIn, dSae, W_dec }, { k: 128, seed: 0 });
const ms = performance.now() - t0;
console.log(JSON.stringify({ bench: 'sparserm-train', pairs, hidden: dIn, dSae, k: 128, epochsRun: fit.epochsRun, bestEpoch: fit.bestEpoch, seconds: +(ms / 1000).toFixed(3), testAccuracy: fit.metrics.test.accuracy, ...machine() }));
