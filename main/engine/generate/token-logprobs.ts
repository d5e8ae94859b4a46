/**
 * Per-token log-probabilities as an OpenAI client sees them: log p(token) under the temperature-1 distribution and
 * the k likeliest alternatives at that position (logprobs / top_logprobs).
 */

export interface TopToken {
  id: number;
  logprob: number;
}

export interface TokenLogprob {
  logprob: number;
  top: TopToken[];
}

/** Log-softmax of one logits row, in f64 (a 256k vocabulary sums badly in f32). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > m) m = logits[i]!;
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (v) => v - lse);
}

/** The k most likely ids (ties to the lower id), by insertion into a k-long list: O(V·k), no full sort of V. */
export function topK(lp: Float64Array, k: number): TopToken[] {
  const best: TopToken[] = [];
  if (k <= 0) return best;
  for (let id = 0; id < lp.length; id++) {
    const v = lp[id]!;
    if (best.length === k && v <= best[k - 1]!.logprob) continue; // equal value: the earlier (lower) id stays
    let at = best.length;
    while (at > 0 && best[at - 1]!.logprob < v) at--;
    best.splice(at, 0, { id, logprob: v });
    if (best.length > k) best.pop();
  }
  return best;
}
