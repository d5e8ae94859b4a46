/**
 * Activation frequencies and deterministic top-K selection (method.md steps 3–4).
 * mu_w[j] = share of chosen responses whose pooled representation fires latent j (f_j(z) > 0), mu_l[j] the same
 * over rejected responses, on the training split only. Positive latents: top K by mu_w − mu_l; negative: top K by
 * mu_l − mu_w. Ties: larger mean activation difference (in the same direction), then lower latent index.
 * The ranking compares INTEGER firing counts (cross-multiplied by the other side's response count), never the
 * float frequencies: 1/10 − 0/10 and 3/10 − 2/10 differ by a rounding error as doubles, so a float comparison
 * would order them by noise and the documented tie-break would never run.
 */
export interface SparseRow {
  idx: Int32Array;
  val: Float32Array;
}

export interface SelectedLatent {
  index: number;
  side: 'positive' | 'negative';
  muW: number;
  muL: number;
  /** Mean activation over chosen / rejected responses (0 where inactive). */
  meanActW: number;
  meanActL: number;
}

export interface LatentStats {
  muW: Float64Array;
  muL: Float64Array;
  actW: Float64Array;
  actL: Float64Array;
  /** Firing counts (responses with f_j(z) > 0) and the response counts they are out of: what selection ranks by. */
  countW: Int32Array;
  countL: Int32Array;
  nW: number;
  nL: number;
}

export function latentStats(dSae: number, chosen: SparseRow[], rejected: SparseRow[]): LatentStats {
  const acc = (rows: SparseRow[]) => {
    const count = new Int32Array(dSae);
    const freq = new Float64Array(dSae);
    const act = new Float64Array(dSae);
    for (const r of rows)
      for (let i = 0; i < r.idx.length; i++) {
        if (r.val[i] > 0) count[r.idx[i]] += 1;
        act[r.idx[i]] += r.val[i];
      }
    const n = Math.max(rows.length, 1);
    for (let j = 0; j < dSae; j++) {
      freq[j] = count[j] / n;
      act[j] /= n;
    }
    return { count, freq, act };
  };
  const w = acc(chosen);
  const l = acc(rejected);
  return { muW: w.freq, muL: l.freq, actW: w.act, actL: l.act, countW: w.count, countL: l.count, nW: Math.max(chosen.length, 1), nL: Math.max(rejected.length, 1) };
}

/**
 * Returns K positive then K negative latents. K is capped at floor(d_sae / 2) so the two sides never share a
 * latent (only matters for toy SAEs); the effective K is `selected.length / 2`.
 */
export function selectLatents(stats: LatentStats, k: number): SelectedLatent[] {
  const dSae = stats.muW.length;
  const kEff = Math.min(k, Math.floor(dSae / 2));
  const ids = Array.from({ length: dSae }, (_, j) => j);
  // mu_w − mu_l = (countW·nL − countL·nW) / (nW·nL): the numerator is an exact integer (< 2^53 for any real
  // data), so equal frequency differences compare exactly equal. nW = nL for pairs, but nothing here assumes it.
  const { countW, countL, nW, nL } = stats;
  const diff = (j: number) => countW[j] * nL - countL[j] * nW;
  const rank = (sign: 1 | -1) =>
    [...ids].sort((a, b) => {
      const d = sign * diff(b) - sign * diff(a);
      if (d !== 0) return d;
      const e = sign * (stats.actW[b] - stats.actL[b]) - sign * (stats.actW[a] - stats.actL[a]);
      if (e !== 0) return e;
      return a - b;
    });
  const pos = rank(1).slice(0, kEff);
  const taken = new Set(pos);
  const neg = rank(-1)
    .filter((j) => !taken.has(j))
    .slice(0, kEff);
  const mk = (index: number, side: SelectedLatent['side']): SelectedLatent => ({
    index,
    side,
    muW: stats.muW[index],
    muL: stats.muL[index],
    meanActW: stats.actW[index],
    meanActL: stats.actL[index],
  });
  return [...pos.map((j) => mk(j, 'positive')), ...neg.map((j) => mk(j, 'negative'))];
}

/** The decoder rows of the selected latents, stacked [m × dIn]. */
export function gatherDirections(wDec: Float32Array, dIn: number, latents: number[]): Float32Array {
  const out = new Float32Array(latents.length * dIn);
  latents.forEach((j, c) => out.set(wDec.subarray(j * dIn, (j + 1) * dIn), c * dIn));
  return out;
}
