import { describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { argmax, candidateRng, checkSamplingParams, chooseToken, filteredDistribution, logProbOf, topK } from '../../../main/engine/generate/sampler';

const softmax = (l: number[]) => {
  const m = Math.max(...l);
  const e = l.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
};

describe('sampler', () => {
  it('greedy is argmax with ties to the lowest id, and never draws', () => {
    expect(argmax([0.5, 3, 3, -1])).toBe(1);
    let draws = 0;
    expect(chooseToken([0.5, 3, 3, -1], { temperature: 0, topP: 0.1, topK: 1 }, () => (draws++, 0.5))).toBe(1);
    expect(draws).toBe(0);
  });

  it('temperature scales the logits before the softmax', () => {
    const l = [2, 1, 0, -1];
    const { ids, probs } = filteredDistribution(l, { temperature: 2, topP: 1, topK: 0 });
    expect(ids).toEqual([0, 1, 2, 3]);
    softmax(l.map((x) => x / 2)).forEach((p, i) => expect(probs[i]).toBeCloseTo(p, 12));
  });

  it('top-k keeps the k most likely (ties by lower id) and renormalises', () => {
    const l = [1, 4, 4, 2, 0];
    const { ids, probs } = filteredDistribution(l, { temperature: 1, topP: 1, topK: 2 });
    expect(ids).toEqual([1, 2]);
    expect(probs).toEqual([0.5, 0.5]);
  });

  it('top-k selection equals a full sort (ties by lower id) on a large vocabulary', () => {
    const rand = candidateRng(3, 0);
    const l = Array.from({ length: 5000 }, () => Math.round(rand() * 200) / 10); // many ties
    const sorted = l.map((_, i) => i).sort((a, b) => l[b] - l[a] || a - b);
    for (const k of [1, 7, 50, 4999]) expect(topK(l, k)).toEqual(sorted.slice(0, k));
  });

  it('top-p keeps the smallest prefix whose mass reaches p (at least one token)', () => {
    const l = [Math.log(0.2), Math.log(0.5), Math.log(0.3)];
    expect(filteredDistribution(l, { temperature: 1, topP: 0.7, topK: 0 }).ids).toEqual([1, 2]);
    expect(filteredDistribution(l, { temperature: 1, topP: 0.5, topK: 0 }).ids).toEqual([1]);
    expect(filteredDistribution(l, { temperature: 1, topP: 0.01, topK: 0 }).ids).toEqual([1]);
    const both = filteredDistribution(l, { temperature: 1, topP: 0.9, topK: 2 });
    expect(both.ids).toEqual([1, 2]);
    expect(both.probs[0]).toBeCloseTo(0.625, 12);
    // the draw walks the kept ids in order: u below 0.625 → id 1, above → id 2
    expect(chooseToken(l, { temperature: 1, topP: 0.9, topK: 2 }, () => 0.6)).toBe(1);
    expect(chooseToken(l, { temperature: 1, topP: 0.9, topK: 2 }, () => 0.7)).toBe(2);
  });

  it('unfiltered sampling follows the softmax (frequencies over 20k seeded draws)', () => {
    const l = [0, 1, 2];
    const p = softmax(l);
    const rand = candidateRng(7, 0);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[chooseToken(l, { temperature: 1, topP: 1, topK: 0 }, rand)]++;
    counts.forEach((c, i) => expect(Math.abs(c / 20000 - p[i])).toBeLessThan(0.015));
  });

  it('seeded streams are reproducible and differ per candidate', () => {
    const a = candidateRng(42, 0);
    const b = candidateRng(42, 0);
    const c = candidateRng(42, 1);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs);
  });

  it('logProbOf is the temperature-1 log-softmax', () => {
    const l = [0.3, -1, 2];
    expect(logProbOf(l, 2)).toBeCloseTo(Math.log(softmax(l)[2]), 12);
  });

  it('refuses bad params, naming the field', () => {
    for (const [p, field] of [
      [{ temperature: -1 }, 'temperature'],
      [{ topP: 0 }, 'topP'],
      [{ topP: 1.2 }, 'topP'],
      [{ topK: 1.5 }, 'topK'],
      [{ maxNewTokens: 0 }, 'maxNewTokens'],
    ] as const) {
      let err: unknown;
      try {
        checkSamplingParams(p);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).details.field).toBe(field);
    }
  });
});
