/** Accuracy with its n, exact ties apart, and the 95 % Wilson interval. */
import { describe, expect, it } from 'vitest';

import { formatAccuracy, pairAccuracy, perSourceAccuracy, wilsonInterval } from '../../../main/engine/sparserm/metrics';

describe('Wilson 95 % interval', () => {
  // Reference values: statsmodels proportion_confint(k, n, alpha=0.05, method="wilson"), rounded to 4 places.
  it.each([
    [8, 10, 0.4902, 0.9433],
    [0, 10, 0.0, 0.2775],
    [10, 10, 0.7225, 1.0],
    [50, 100, 0.4038, 0.5962],
    [1, 2, 0.0945, 0.9055],
  ])('%i of %i → %f–%f', (k, n, lo, hi) => {
    const [a, b] = wilsonInterval(k, n);
    expect(a).toBeCloseTo(lo, 4);
    expect(b).toBeCloseTo(hi, 4);
  });

  it('is empty (NaN) for n = 0 and stays inside [0, 1]', () => {
    expect(wilsonInterval(0, 0).every(Number.isNaN)).toBe(true);
    for (let n = 1; n < 30; n++)
      for (let k = 0; k <= n; k++) {
        const [a, b] = wilsonInterval(k, n);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThanOrEqual(1);
        expect(a).toBeLessThanOrEqual(k / n);
        expect(b).toBeGreaterThanOrEqual(k / n);
      }
  });
});

describe('pair accuracy', () => {
  it('counts exact ties separately, never as ½', () => {
    const a = pairAccuracy([1, 0.5, 0, 0, -2, 3, 0, 1e-9, 4, 2]);
    expect(a).toMatchObject({ n: 10, correct: 6, ties: 3, accuracy: 0.6 });
    expect(a.ci95).toEqual(wilsonInterval(6, 10));
    // All ties is not "chance" (0.5) but 0 correct, with 10 ties on display.
    expect(pairAccuracy(new Array(10).fill(0))).toMatchObject({ correct: 0, ties: 10, accuracy: 0 });
    expect(Number.isNaN(pairAccuracy([]).accuracy)).toBe(true);
  });

  it('per source carries n, ties and the interval', () => {
    const r = perSourceAccuracy([1, -1, 0, 2, 3], ['a', 'a', 'a', undefined, 'b']);
    expect(r.a).toMatchObject({ n: 3, correct: 1, ties: 1 });
    expect(r['(none)']).toMatchObject({ n: 1, correct: 1, ties: 0 });
    expect(r.b.ci95).toEqual(wilsonInterval(1, 1));
  });

  it('is printed with its n and interval', () => {
    expect(formatAccuracy({ accuracy: 0.8, n: 10 })).toBe('0.800 (n = 10, 95% CI 0.490–0.943)');
    expect(formatAccuracy(pairAccuracy([1, 1, 0, -1]))).toBe('0.500 (n = 4, 95% CI 0.150–0.850, 1 tie)');
    expect(formatAccuracy({ accuracy: null, n: 0 })).toBe('n/a (n = 0)');
  });
});
