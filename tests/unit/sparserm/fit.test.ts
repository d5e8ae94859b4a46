import { describe, expect, it } from 'vitest';

import { fitSparseRm } from '../../../main/engine/sparserm/fit';
import { selectLatents, latentStats } from '../../../main/engine/sparserm/selection';
import { splitByPrompt } from '../../../main/engine/sparserm/splits';
import { marginAuc, pairAccuracy } from '../../../main/engine/sparserm/metrics';
import { decompose, headScores } from '../../../main/engine/sparserm/head';
import { plantedData } from './synthetic';

describe('SparseRM on synthetic features with planted preference latents', () => {
  it('selects exactly the planted latents and reaches held-out accuracy >= 0.95', async () => {
    const d = plantedData({ pairs: 800, pairsPerPrompt: 2 });
    const fit = await fitSparseRm(d.table, d.pairs, d.sae, { k: 5, seed: 3, valFraction: 0.15, testFraction: 0.25, hidden: 64 });
    expect(fit.selected.filter((s) => s.side === 'positive').map((s) => s.index).sort((a, b) => a - b)).toEqual(d.positive);
    expect(fit.selected.filter((s) => s.side === 'negative').map((s) => s.index).sort((a, b) => a - b)).toEqual(d.negative);
    expect(fit.metrics.test.n).toBeGreaterThanOrEqual(190);
    expect(fit.metrics.test.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(fit.metrics.test.auc).toBeGreaterThanOrEqual(0.95);
  });

  it('stays near chance when the labels are shuffled', async () => {
    const d = plantedData({ pairs: 800, shuffleLabels: true, seed: 9 });
    const fit = await fitSparseRm(d.table, d.pairs, d.sae, { k: 5, seed: 3, valFraction: 0.15, testFraction: 0.25, hidden: 64 });
    expect(fit.metrics.test.accuracy).toBeGreaterThan(0.38);
    expect(fit.metrics.test.accuracy).toBeLessThan(0.62);
  });

  it('is deterministic for a seed and trains with Bradley–Terry too', async () => {
    const d = plantedData({ pairs: 300 });
    const a = await fitSparseRm(d.table, d.pairs, d.sae, { k: 8, seed: 5, hidden: 32, loss: 'bt' });
    const b = await fitSparseRm(d.table, d.pairs, d.sae, { k: 8, seed: 5, hidden: 32, loss: 'bt' });
    expect(Array.from(a.head.W1)).toEqual(Array.from(b.head.W1));
    expect(a.selected).toEqual(b.selected);
    expect(a.metrics.test.accuracy).toBeGreaterThan(0.9);
  });
});

describe('too little data', () => {
  it('is an InputError explaining the prompt-grouped split, not a crash', async () => {
    const d = plantedData({ pairs: 10, pairsPerPrompt: 10 });
    await expect(fitSparseRm(d.table, d.pairs, d.sae, { k: 2, hidden: 8 })).rejects.toThrow(/distinct prompts.*1 distinct prompt/);
  });
});

describe('selection', () => {
  it('breaks frequency ties by mean activation difference, then lower index', () => {
    // Latents 0..5; 1 and 2 have the same frequency gap, 2 has the larger activation gap; 4 and 5 tie fully.
    const row = (pairs: Array<[number, number]>) => ({ idx: Int32Array.from(pairs.map((p) => p[0])), val: Float32Array.from(pairs.map((p) => p[1])) });
    const chosen = [row([[1, 1], [2, 3], [4, 1], [5, 1]]), row([[1, 1], [2, 3], [4, 1], [5, 1]])];
    const rejected = [row([]), row([[0, 1]])];
    const sel = selectLatents(latentStats(6, chosen, rejected), 2);
    expect(sel.filter((s) => s.side === 'positive').map((s) => s.index)).toEqual([2, 1]);
    const sel3 = selectLatents(latentStats(8, chosen, rejected), 4);
    expect(sel3.filter((s) => s.side === 'positive').map((s) => s.index)).toEqual([2, 1, 4, 5]);
    expect(sel3.filter((s) => s.side === 'negative')[0].index).toBe(0);
    expect(sel3[0].muW).toBe(1);
  });
});

describe('splits by prompt', () => {
  it('never puts one prompt in two splits and hits the requested sizes roughly', () => {
    const prompts = Array.from({ length: 1000 }, (_, i) => `p${i % 300}`);
    const s = splitByPrompt(prompts, { seed: 1, valFraction: 0.1, testFraction: 0.2 });
    const where = new Map<string, string>();
    prompts.forEach((p, i) => {
      if (where.has(p)) expect(where.get(p)).toBe(s[i]);
      where.set(p, s[i]);
    });
    const count = (x: string) => s.filter((v) => v === x).length;
    expect(count('test')).toBeGreaterThanOrEqual(200);
    expect(count('test')).toBeLessThan(210);
    expect(count('val')).toBeGreaterThanOrEqual(100);
    // Independent of input order.
    const rev = splitByPrompt([...prompts].reverse(), { seed: 1, valFraction: 0.1, testFraction: 0.2 });
    expect(rev.reverse()).toEqual(s);
  });
});

describe('metrics', () => {
  it('AUC matches the brute-force pair count, with ties as 1/2', () => {
    const m = [2, -1, 0.5, 0, 3, -0.5, 0.5];
    const pos = m;
    const neg = m.map((v) => -v);
    let wins = 0;
    for (const a of pos) for (const b of neg) wins += a > b ? 1 : a === b ? 0.5 : 0;
    expect(marginAuc(m)).toBeCloseTo(wins / (m.length * m.length), 12);
    // The exact tie is reported, not counted as ½ (accuracy-stats.test.ts covers the interval).
    expect(pairAccuracy(m)).toMatchObject({ n: 7, correct: 4, ties: 1, accuracy: 4 / 7 });
  });
});

describe('explanations', () => {
  it('contributions sum exactly to score minus bias', async () => {
    const d = plantedData({ pairs: 200 });
    const fit = await fitSparseRm(d.table, d.pairs, d.sae, { k: 8, seed: 1, hidden: 32, maxEpochs: 5 });
    for (const r of [0, 1, 7]) {
      const z = d.table.z.subarray(r * d.sae.dIn, (r + 1) * d.sae.dIn);
      const p = new Float32Array(fit.selected.length);
      for (let c = 0; c < p.length; c++) for (let i = 0; i < d.sae.dIn; i++) p[c] += z[i] * fit.directions[c * d.sae.dIn + i];
      const dec = decompose(fit.head, p);
      const sum = dec.contributions.reduce((a, b) => a + b, 0);
      expect(sum + dec.bias).toBeCloseTo(dec.score, 4);
      expect(dec.score).toBeCloseTo(headScores(fit.head, p, 1)[0], 5);
    }
  });
});

describe('topByMagnitude', () => {
  it('agrees with a full sort by |value| (ties to the lower index)', async () => {
    const { topByMagnitude } = await import('../../../main/engine/sparserm/service');
    const vals = [0.5, -3, 2, -2, 0, 3, 1, -0.5, 2];
    const full = vals.map((_, c) => c).sort((a, b) => Math.abs(vals[b]) - Math.abs(vals[a]) || a - b);
    for (const top of [1, 3, 5, 9, 12]) expect(topByMagnitude(vals.length, top, (c) => vals[c])).toEqual(full.slice(0, top));
  });
});
