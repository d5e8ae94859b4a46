/** Pairwise metrics on margins s_chosen − s_rejected. */

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** z of a two-sided 95 % normal interval. */
const Z95 = 1.959963984540054;

/**
 * Wilson score interval for k successes in n trials (95 % by default). Unlike the normal approximation it stays
 * inside [0, 1] and is sensible at k = 0, k = n and small n — the sizes per-source accuracies often have.
 * n = 0 → [NaN, NaN].
 */
export function wilsonInterval(k: number, n: number, z = Z95): [number, number] {
  if (n <= 0) return [NaN, NaN];
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // k = 0 / k = n give exactly 0 / 1 analytically; don't let float rounding say otherwise.
  return [k <= 0 ? 0 : Math.max(0, center - half), k >= n ? 1 : Math.min(1, center + half)];
}

/** An accuracy with what it rests on: n pairs, how many ordered right, how many exact ties, the 95 % Wilson CI. */
export interface AccuracyStats {
  n: number;
  correct: number;
  /** Pairs with margin exactly 0: not counted as correct (nor as ½), reported so the reader can see them. */
  ties: number;
  /** correct / n (NaN when n = 0). */
  accuracy: number;
  /** 95 % Wilson interval of `accuracy`. */
  ci95: [number, number];
}

export function accuracyStats(correct: number, ties: number, n: number): AccuracyStats {
  return { n, correct, ties, accuracy: n > 0 ? correct / n : NaN, ci95: wilsonInterval(correct, n) };
}

/**
 * Share of pairs the model orders right: margin > 0 counts 1; an exact tie counts 0 and is reported separately
 * (counting it ½ flattered inputs that are often identical on both sides, such as raw SAE activations).
 */
export function pairAccuracy(margins: ArrayLike<number>): AccuracyStats {
  let c = 0;
  let t = 0;
  for (let i = 0; i < margins.length; i++) {
    if (margins[i] > 0) c++;
    else if (margins[i] === 0) t++;
  }
  return accuracyStats(c, t, margins.length);
}

/**
 * ROC AUC of the margin as a classifier of pair orientation: each pair appears once as presented (margin m,
 * label 1) and once swapped (−m, label 0); AUC = P(m_i > −m_j) with ties counting ½ (Mann–Whitney on ranks, the
 * standard AUC definition). 0.5 = chance, 1 = every pair separated.
 */
export function marginAuc(margins: ArrayLike<number>): number {
  const n = margins.length;
  if (n === 0) return NaN;
  const items: Array<{ v: number; pos: boolean }> = [];
  for (let i = 0; i < n; i++) items.push({ v: margins[i], pos: true }, { v: -margins[i], pos: false });
  items.sort((a, b) => a.v - b.v);
  let rankSumPos = 0;
  for (let i = 0; i < items.length; ) {
    let j = i;
    while (j < items.length && items[j].v === items[i].v) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (items[k].pos) rankSumPos += avgRank;
    i = j;
  }
  return (rankSumPos - (n * (n + 1)) / 2) / (n * n);
}

/** Accuracy per source (missing source → "(none)"), each with its n, ties and Wilson interval. */
export function perSourceAccuracy(margins: ArrayLike<number>, sources: Array<string | undefined>): Record<string, AccuracyStats> {
  const acc: Record<string, { n: number; c: number; t: number }> = {};
  for (let i = 0; i < margins.length; i++) {
    const s = sources[i] ?? '(none)';
    acc[s] ??= { n: 0, c: 0, t: 0 };
    acc[s].n++;
    if (margins[i] > 0) acc[s].c++;
    else if (margins[i] === 0) acc[s].t++;
  }
  return Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, accuracyStats(v.c, v.t, v.n)]));
}

/** "0.800 (n = 10, 95% CI 0.490–0.943)" — how every accuracy is printed (CLI), so none appears without its n. */
export function formatAccuracy(a: { accuracy: number | null; n: number; ci95?: [number, number] | null; ties?: number }, digits = 3): string {
  if (a.accuracy === null || !Number.isFinite(a.accuracy) || a.n === 0) return `n/a (n = ${a.n})`;
  const ci = a.ci95 ?? wilsonInterval(Math.round(a.accuracy * a.n), a.n);
  const ties = a.ties ? `, ${a.ties} tie${a.ties === 1 ? '' : 's'}` : '';
  return `${a.accuracy.toFixed(digits)} (n = ${a.n}, 95% CI ${ci[0].toFixed(digits)}–${ci[1].toFixed(digits)}${ties})`;
}
