/** Pairwise metrics on margins s_chosen − s_rejected. */

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/**
 * Share of pairs the model orders right: margin > 0 counts 1, an exact tie ½ (a model that cannot tell the two
 * responses apart is at chance, not wrong — matters for sparse inputs such as raw SAE activations).
 */
export function pairAccuracy(margins: ArrayLike<number>): number {
  if (margins.length === 0) return NaN;
  let c = 0;
  for (let i = 0; i < margins.length; i++) c += margins[i] > 0 ? 1 : margins[i] === 0 ? 0.5 : 0;
  return c / margins.length;
}

/**
 * ROC AUC of the margin as a classifier of pair orientation: each pair appears once as presented (margin m,
 * label 1) and once swapped (−m, label 0); AUC = P(m_i > −m_j) with ties counting ½ (Mann–Whitney on ranks).
 * 0.5 = chance, 1 = every pair separated.
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

export function perSourceAccuracy(margins: ArrayLike<number>, sources: Array<string | undefined>): Record<string, { n: number; accuracy: number }> {
  const acc: Record<string, { n: number; c: number }> = {};
  for (let i = 0; i < margins.length; i++) {
    const s = sources[i] ?? '(none)';
    acc[s] ??= { n: 0, c: 0 };
    acc[s].n++;
    acc[s].c += margins[i] > 0 ? 1 : margins[i] === 0 ? 0.5 : 0;
  }
  return Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, { n: v.n, accuracy: v.c / v.n }]));
}
