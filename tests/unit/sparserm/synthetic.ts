import { mulberry32, gaussian } from '../../../main/engine/sparserm/rng';
import type { FeatureTable, PairRef } from '../../../main/engine/sparserm/fit';
import type { SparseRow } from '../../../main/engine/sparserm/selection';

/**
 * Synthetic features with planted preference latents: chosen responses fire `positive` latents often and
 * `negative` ones rarely, rejected the reverse; every response also fires random background latents. z is the
 * SAE-consistent sum of the active decoder rows plus noise, so projections carry the same signal.
 */
export function plantedData(opts: { pairs: number; dIn?: number; dSae?: number; seed?: number; shuffleLabels?: boolean; pairsPerPrompt?: number }) {
  const dIn = opts.dIn ?? 48;
  const dSae = opts.dSae ?? 256;
  const rand = mulberry32(opts.seed ?? 1);
  const normal = gaussian(rand);
  const W_dec = new Float32Array(dSae * dIn);
  for (let j = 0; j < dSae; j++) {
    let s = 0;
    for (let i = 0; i < dIn; i++) s += (W_dec[j * dIn + i] = normal()) ** 2;
    for (let i = 0; i < dIn; i++) W_dec[j * dIn + i] /= Math.sqrt(s);
  }
  const positive = [17, 42, 99, 150, 201];
  const negative = [3, 64, 128, 180, 240];
  const planted = new Set([...positive, ...negative]);
  const n = opts.pairs * 2;
  const z = new Float32Array(n * dIn);
  const latents: SparseRow[] = [];
  const makeResponse = (row: number, good: boolean) => {
    const active = new Map<number, number>();
    for (const j of positive) if (rand() < (good ? 0.7 : 0.1)) active.set(j, 1 + rand() * 2);
    for (const j of negative) if (rand() < (good ? 0.1 : 0.7)) active.set(j, 1 + rand() * 2);
    for (let b = 0; b < 12; b++) {
      const j = Math.floor(rand() * dSae);
      if (!planted.has(j)) active.set(j, 0.5 + rand() * 2);
    }
    const idx = Int32Array.from([...active.keys()].sort((a, b) => a - b));
    const val = Float32Array.from(idx, (j) => active.get(j)!);
    latents[row] = { idx, val };
    for (let i = 0; i < dIn; i++) z[row * dIn + i] = normal() * 0.3;
    idx.forEach((j, c) => {
      for (let i = 0; i < dIn; i++) z[row * dIn + i] += val[c] * W_dec[j * dIn + i];
    });
  };
  const pairs: PairRef[] = [];
  const per = opts.pairsPerPrompt ?? 1;
  for (let p = 0; p < opts.pairs; p++) {
    makeResponse(2 * p, true);
    makeResponse(2 * p + 1, false);
    const swap = opts.shuffleLabels && rand() < 0.5;
    pairs.push({ chosen: swap ? 2 * p + 1 : 2 * p, rejected: swap ? 2 * p : 2 * p + 1, prompt: `prompt ${Math.floor(p / per)}`, source: p % 2 ? 'a' : 'b' });
  }
  const table: FeatureTable = { hiddenSize: dIn, n, z, latents };
  return { table, pairs, sae: { dIn, dSae, W_dec }, positive, negative };
}
