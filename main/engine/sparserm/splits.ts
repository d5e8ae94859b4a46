import crypto from 'node:crypto';

import { groupNearDuplicates } from './near-duplicates';

export type SplitName = 'train' | 'val' | 'test';

export interface SplitOptions {
  seed: number;
  valFraction: number;
  testFraction: number;
  /**
   * What stays on one side: 'near-duplicate' (default; near-duplicates.ts groups, so a prompt re-typed with other
   * whitespace, punctuation or one changed word cannot land in train and test) or 'exact' (same trimmed text only:
   * what models trained before the near-duplicate grouping used).
   */
  grouping?: 'near-duplicate' | 'exact';
}

function indicesByGroup(groupOf: readonly number[]): number[][] {
  const m = new Map<number, number[]>();
  groupOf.forEach((g, i) => {
    const a = m.get(g);
    if (a) a.push(i);
    else m.set(g, [i]);
  });
  return [...m.values()];
}

/** The prompt groups a split keeps together: per group, the indices of its prompts. */
export function promptGroups(prompts: string[], grouping: SplitOptions['grouping'] = 'near-duplicate'): number[][] {
  if (grouping !== 'exact') return indicesByGroup(groupNearDuplicates(prompts).groupOf);
  const groups = new Map<string, number[]>();
  prompts.forEach((p, i) => {
    const key = p.trim();
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  });
  return [...groups.values()];
}

/**
 * Assigns each pair to train / val / test BY PROMPT GROUP: all pairs of one prompt, and of its near-duplicates, land
 * in the same split, so a model is never evaluated on a prompt it trained on. Groups are ordered by
 * sha256(seed, smallest prompt of the group), which makes the split
 * depend only on the seed and the set of prompts (not on file order), then filled test → val → train by pair count.
 */
export function splitByPrompt(prompts: string[], opts: SplitOptions): SplitName[] {
  // A group is ordered by its smallest trimmed prompt: for exact groups that is the prompt itself (older splits
  // reproduce), and it does not depend on file order.
  const order = promptGroups(prompts, opts.grouping)
    .map((idx) => {
      const k = idx.map((i) => prompts[i].trim()).reduce((a, b) => (b < a ? b : a));
      return { idx, h: crypto.createHash('sha256').update(`${opts.seed}\u0000${k}`).digest('hex') };
    })
    .sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  const n = prompts.length;
  const wantTest = Math.round(n * opts.testFraction);
  const wantVal = Math.round(n * opts.valFraction);
  const out = new Array<SplitName>(n);
  let test = 0;
  let val = 0;
  for (const { idx } of order) {
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

/**
 * How many near-duplicate groups the older exact-text split (same seed and fractions) put on more than one side:
 * the leakage the near-duplicate grouping removes. `groups`: near-duplicate groups with ≥ 2 distinct prompts.
 */
export function crossedUnderExactSplit(prompts: string[], opts: SplitOptions, groupOf?: readonly number[]): { groups: number; crossed: number } {
  const exact = splitByPrompt(prompts, { ...opts, grouping: 'exact' });
  let groups = 0;
  let crossed = 0;
  const near = groupOf ? indicesByGroup(groupOf) : promptGroups(prompts, 'near-duplicate');
  for (const idx of near) {
    if (new Set(idx.map((i) => prompts[i].trim())).size < 2) continue;
    groups++;
    if (new Set(idx.map((i) => exact[i])).size > 1) crossed++;
  }
  return { groups, crossed };
}
