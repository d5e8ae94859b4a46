/**
 * `sparserm dedupe` / the dedupeDataset op: a dataset's near-duplicate prompt groups (near-duplicates.ts) computed,
 * stored (store/prompt-groups.ts) and reported, with how many of them the older exact-text split put on two sides.
 */
import { InputError } from '../errors';
import type { PromptGroupSet, Store } from '../store';
import { DEFAULT_NEAR_DUP_THRESHOLD, NEAR_DUP_SCHEME, groupNearDuplicates } from './near-duplicates';
import { DEFAULT_FIT_OPTIONS } from './fit';
import { crossedUnderExactSplit } from './splits';

export interface DedupeReport {
  datasetId: number;
  dataset: string;
  scheme: string;
  threshold: number;
  pairs: number;
  /** Distinct prompts (trimmed text). */
  prompts: number;
  groups: number;
  /** Groups with ≥ 2 distinct (normalised) prompts, and the pairs in them. */
  nearGroups: number;
  nearPairs: number;
  /** Near-duplicate groups the exact-text prompt split (the given seed / fractions) put on more than one side. */
  crossedUnderExactSplit: { groups: number; crossed: number; seed: number; valFraction: number; testFraction: number };
  /** The largest groups of ≥ 2 pairs: id (smallest pair id), pairs, and up to 3 distinct prompts (first 200 chars). */
  largest: { groupId: number; pairs: number; prompts: string[] }[];
  seconds: number;
}

/** Groups a dataset's prompts (id order) and stores the groups, replacing earlier ones. */
export function dedupeDataset(
  store: Store,
  dataset: string | number,
  opts: { threshold?: number; split?: { seed: number; valFraction: number; testFraction: number }; largest?: number } = {},
): DedupeReport {
  const started = Date.now();
  const threshold = opts.threshold ?? DEFAULT_NEAR_DUP_THRESHOLD;
  if (!(threshold > 0 && threshold <= 1)) throw new InputError({ field: 'threshold', expected: 'a Jaccard similarity in (0, 1]', got: String(opts.threshold) });
  const ds = store.datasets.resolve(dataset);
  const ids: number[] = [];
  const prompts: string[] = [];
  for (const p of store.pairs.iterate({ datasetId: ds.id })) {
    ids.push(p.id);
    prompts.push(p.prompt);
  }
  const g = groupNearDuplicates(prompts, { threshold });
  // Group id in the store = the group's smallest pair id (groupOf points at the first index, and ids ascend).
  const groupIds = g.groupOf.map((i) => ids[i]);
  store.promptGroups.replace(ds.id, ids, groupIds, { scheme: NEAR_DUP_SCHEME, threshold, groups: g.groups, nearGroups: g.nearGroups });
  // Default: the split `train` makes with its default seed and fractions.
  const split = opts.split ?? { seed: DEFAULT_FIT_OPTIONS.seed, valFraction: DEFAULT_FIT_OPTIONS.valFraction, testFraction: DEFAULT_FIT_OPTIONS.testFraction };
  const crossed = crossedUnderExactSplit(prompts, split, g.groupOf);
  const largest = store.promptGroups.largest(ds.id, opts.largest ?? 10).map((l) => {
    const members = store.promptGroups.members(l.groupId, 50).members;
    return { ...l, prompts: [...new Set(members.map((m) => m.prompt.trim()))].slice(0, 3).map((p) => p.slice(0, 200)) };
  });
  return {
    datasetId: ds.id,
    dataset: ds.name,
    scheme: NEAR_DUP_SCHEME,
    threshold,
    pairs: ids.length,
    prompts: new Set(prompts.map((p) => p.trim())).size,
    groups: g.groups,
    nearGroups: g.nearGroups,
    nearPairs: g.nearPrompts,
    crossedUnderExactSplit: { ...crossed, ...split },
    largest,
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * pair id → group id for the whole dataset, recomputing (and storing) the groups first when they are missing or
 * stale (pairs imported after they were made).
 */
export function freshPromptGroups(store: Store, datasetId: number): { map: Map<number, number>; scheme: string; threshold: number } {
  const set = ensurePromptGroups(store, datasetId);
  return { map: store.promptGroups.map(datasetId), scheme: set.scheme, threshold: set.threshold };
}

/** The dataset's group set, recomputed first when missing, stale, or made by another scheme (same threshold). */
export function ensurePromptGroups(store: Store, datasetId: number): PromptGroupSet {
  const set = store.promptGroups.set(datasetId);
  if (set && set.scheme === NEAR_DUP_SCHEME && store.promptGroups.ungrouped(datasetId) === 0) return set;
  dedupeDataset(store, datasetId, { threshold: set?.threshold });
  return store.promptGroups.set(datasetId)!;
}
