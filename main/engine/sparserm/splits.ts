import crypto from 'node:crypto';

export type SplitName = 'train' | 'val' | 'test';

export interface SplitOptions {
  seed: number;
  valFraction: number;
  testFraction: number;
}

/**
 * Assigns each pair to train / val / test BY PROMPT: all pairs of one prompt land in the same split, so a model is
 * never evaluated on a prompt it trained on. Prompts are ordered by sha256(seed, prompt), which makes the split
 * depend only on the seed and the set of prompts (not on file order), then filled test → val → train by pair count.
 */
export function splitByPrompt(prompts: string[], opts: SplitOptions): SplitName[] {
  const groups = new Map<string, number[]>();
  prompts.forEach((p, i) => {
    const key = p.trim();
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  });
  const order = [...groups.keys()]
    .map((k) => ({ k, h: crypto.createHash('sha256').update(`${opts.seed}\u0000${k}`).digest('hex') }))
    .sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  const n = prompts.length;
  const wantTest = Math.round(n * opts.testFraction);
  const wantVal = Math.round(n * opts.valFraction);
  const out = new Array<SplitName>(n);
  let test = 0;
  let val = 0;
  for (const { k } of order) {
    const idx = groups.get(k)!;
    let split: SplitName = 'train';
    if (test < wantTest) {
      split = 'test';
      test += idx.length;
    } else if (val < wantVal) {
      split = 'val';
      val += idx.length;
    }
    for (const i of idx) out[i] = split;
  }
  return out;
}
