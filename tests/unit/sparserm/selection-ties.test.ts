/**
 * Top-K selection ranks by INTEGER firing-count differences, then the mean activation difference, then the index.
 * With 10 responses per side, 1−0 and 3−2 firings are the same difference, but as doubles 1/10 − 0/10 ≠ 3/10 − 2/10,
 * so a float comparison ordered them by rounding noise and never reached the tie-break.
 */
import { describe, expect, it } from 'vitest';

import { latentStats, selectLatents, type SparseRow } from '../../../main/engine/sparserm/selection';

/** n responses; latent j fires (value v) on the first `fires[j]` of them. */
function side(n: number, fires: Record<number, { count: number; value: number }>): SparseRow[] {
  return Array.from({ length: n }, (_, r) => {
    const on = Object.entries(fires).filter(([, f]) => r < f.count);
    return { idx: Int32Array.from(on.map(([j]) => Number(j))), val: Float32Array.from(on.map(([, f]) => f.value)) };
  });
}

describe('exact top-K tie-break', () => {
  it('the float frequency differences of equal count differences are not equal (why counts are compared)', () => {
    expect(1 / 10 - 0 / 10).not.toBe(3 / 10 - 2 / 10);
  });

  it('equal count differences (1−0 vs 3−2 of 10) are decided by the mean activation difference', () => {
    // Positive side: latent 0 fires 1−0 (activation gap 0.1), latent 1 fires 3−2 (gap 0.3 − 0.05 = 0.25).
    // Negative side mirrors it: latent 2 fires 0−1 (gap 0.1), latent 3 fires 2−3 (gap 0.25).
    const chosen = side(10, { 0: { count: 1, value: 1 }, 1: { count: 3, value: 1 }, 2: { count: 0, value: 1 }, 3: { count: 2, value: 0.25 } });
    const rejected = side(10, { 0: { count: 0, value: 1 }, 1: { count: 2, value: 0.25 }, 2: { count: 1, value: 1 }, 3: { count: 3, value: 1 } });
    const stats = latentStats(8, chosen, rejected);
    expect([stats.countW[0] - stats.countL[0], stats.countW[1] - stats.countL[1]]).toEqual([1, 1]);
    const sel = selectLatents(stats, 2);
    expect(sel.filter((s) => s.side === 'positive').map((s) => s.index)).toEqual([1, 0]);
    expect(sel.filter((s) => s.side === 'negative').map((s) => s.index)).toEqual([3, 2]);
    expect(sel[0]).toMatchObject({ index: 1, muW: 0.3, muL: 0.2 });
  });

  it('equal counts and equal activation differences fall back to the lower index', () => {
    // Latents 5, 2, 7 fire identically (2−0, value 0.5); latent 4 has a larger count difference (3−0).
    const pattern = { count: 2, value: 0.5 };
    const chosen = side(10, { 5: pattern, 2: pattern, 7: pattern, 4: { count: 3, value: 0.1 } });
    const rejected = side(10, {});
    const sel = selectLatents(latentStats(16, chosen, rejected), 4);
    expect(sel.filter((s) => s.side === 'positive').map((s) => s.index)).toEqual([4, 2, 5, 7]);
  });

  it('compares exactly when the sides have different response counts (cross-multiplied counts)', () => {
    // 1 of 4 chosen vs 0 of 8 rejected = 0.25; 3 of 4 vs 4 of 8 = 0.25: a tie, decided by the activation gap.
    const chosen = side(4, { 0: { count: 1, value: 1 }, 1: { count: 3, value: 2 } });
    const rejected = side(8, { 1: { count: 4, value: 0.1 } });
    const sel = selectLatents(latentStats(4, chosen, rejected), 2);
    expect(sel.filter((s) => s.side === 'positive').map((s) => s.index)).toEqual([1, 0]);
  });
});
