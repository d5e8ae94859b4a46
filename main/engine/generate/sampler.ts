/**
 * Next-token choice from one row of logits: greedy at temperature 0 (argmax, ties to the lowest id), else
 * temperature → top-k → softmax → top-p (nucleus) → one draw from a seeded RNG. Deterministic: candidates are
 * ordered by (probability desc, id asc) before the draw, so the same logits, params and RNG state give the same id.
 */
import { InputError } from '../errors';
import { mulberry32 } from '../sparserm/rng';
import type { SamplingParams } from './types';

export type SamplerParams = Pick<SamplingParams, 'temperature' | 'topP' | 'topK'>;

/** Validates sampling params (InputError naming the field). */
export function checkSamplingParams(p: Partial<SamplingParams>): void {
  const bad = (field: string, expected: string, got: unknown) => {
    throw new InputError({ field, expected, got: String(got) });
  };
  if (p.temperature !== undefined && !(Number.isFinite(p.temperature) && p.temperature >= 0)) bad('temperature', 'a number ≥ 0 (0 = greedy)', p.temperature);
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) bad('topP', 'a number in (0, 1]', p.topP);
  if (p.topK !== undefined && !(Number.isInteger(p.topK) && p.topK >= 0)) bad('topK', 'an integer ≥ 0 (0 = off)', p.topK);
  if (p.maxNewTokens !== undefined && !(Number.isInteger(p.maxNewTokens) && p.maxNewTokens >= 1)) bad('maxNewTokens', 'an integer ≥ 1', p.maxNewTokens);
  if (p.seed !== undefined && !Number.isInteger(p.seed)) bad('seed', 'an integer', p.seed);
}

/** The RNG of candidate `index` of a request with `seed`: one stream per candidate, so a batch's composition never
 *  changes what a candidate draws. */
export function candidateRng(seed: number, index: number): () => number {
  return mulberry32((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** log softmax(logits)[id], in float64 (the temperature-1 distribution a candidate's log-probability is under). */
export function logProbOf(logits: ArrayLike<number>, id: number): number {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - m);
  return logits[id] - m - Math.log(z);
}

/** The candidate ids and their renormalised probabilities after temperature, top-k and top-p, in draw order. */
export function filteredDistribution(logits: ArrayLike<number>, p: SamplerParams): { ids: number[]; probs: number[] } {
  const V = logits.length;
  const ids = p.topK > 0 && p.topK < V ? topK(logits, p.topK) : Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const m = logits[ids[0]] / p.temperature;
  const w = ids.map((i) => Math.exp(logits[i] / p.temperature - m));
  const z = w.reduce((a, b) => a + b, 0);
  let probs = w.map((x) => x / z);
  if (p.topP < 1) {
    // The smallest prefix whose mass reaches topP (always at least one token).
    let acc = 0;
    let n = 0;
    while (n < probs.length && (n === 0 || acc < p.topP)) acc += probs[n++];
    ids.length = n;
    probs = probs.slice(0, n).map((x) => x / acc);
  }
  return { ids, probs };
}

/** Chooses the next id. `rand` is only called when sampling (temperature > 0). */
export function chooseToken(logits: ArrayLike<number>, p: SamplerParams, rand: () => number): number {
  if (p.temperature === 0) return argmax(logits);
  const u = rand();
  if (p.topK === 0 && p.topP >= 1) {
    // No filtering: draw in id order, no sort over the vocabulary (256k ids) per token.
    let m = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
    let z = 0;
    for (let i = 0; i < logits.length; i++) z += Math.exp((logits[i] - m) / p.temperature);
    let acc = 0;
    for (let i = 0; i < logits.length; i++) {
      acc += Math.exp((logits[i] - m) / p.temperature) / z;
      if (u < acc) return i;
    }
    return argmax(logits);
  }
  const { ids, probs } = filteredDistribution(logits, p);
  let acc = 0;
  for (let i = 0; i < ids.length; i++) {
    acc += probs[i];
    if (u < acc) return ids[i];
  }
  return ids[ids.length - 1];
}

/** The k best ids in (logit desc, id asc) order: a size-k heap over the vocabulary, O(V log k), not a full sort. */
export function topK(logits: ArrayLike<number>, k: number): number[] {
  // worse(a, b): a ranks below b. The heap keeps the worst of the kept at its root.
  const worse = (a: number, b: number) => logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
  const heap: number[] = [];
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < heap.length && worse(heap[l], heap[w])) w = l;
      if (r < heap.length && worse(heap[r], heap[w])) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w], heap[i]];
      i = w;
    }
  };
  for (let id = 0; id < logits.length; id++) {
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (worse(heap[0], id)) {
      heap[0] = id;
      down(0);
    }
  }
  return heap.sort((a, b) => logits[b] - logits[a] || a - b);
}
