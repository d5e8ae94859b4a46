/**
 * Near-duplicate prompts (HH-RLHF repeats a prompt with changed whitespace, punctuation or a word): MinHash over
 * character 5-shingles of the normalised text (the MinHash sketch of `bloom-filters`, with seeded hash functions so
 * groups are reproducible), LSH banding to find candidates, union-find to form groups. Time is linear in the data:
 * each prompt is compared only with the first prompt of each LSH bucket it falls in (so one huge bucket cannot make
 * the work quadratic), and memory per prompt is bounded (text past MAX_CHARS is not shingled).
 */
import { MinHash } from 'bloom-filters';

import { mulberry32 } from './rng';

/** bloom-filters' (a·x + b) mod c permutation (its type is not exported from the package root). */
type HashFunction = { a: number; b: number; c: number };

/** Recorded with stored groups, so a later change of parameters is visible (groups of another scheme are stale). */
export const NEAR_DUP_SCHEME = 'minhash-64:char5,lsh-16x4,seed-0x5eed' as const;
export const DEFAULT_NEAR_DUP_THRESHOLD = 0.8;

const SHINGLE = 5;
const HASHES = 64;
const BANDS = 16;
const ROWS = HASHES / BANDS;
/** Shingles come from the first MAX_CHARS characters only: a hostile 100 MB prompt costs no more than a long one. */
export const MAX_CHARS = 20_000;

/** Lower-case, punctuation and whitespace runs → one space: "Hello,  world!" ≈ "hello world". */
export function normalizeForShingles(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/** The distinct character shingles of a prompt (normalised; a text shorter than one shingle is one shingle). */
export function shingleStrings(text: string): Set<string> {
  const t = normalizeForShingles(text.length > MAX_CHARS * 2 ? text.slice(0, MAX_CHARS * 2) : text).slice(0, MAX_CHARS);
  const out = new Set<string>();
  if (t.length === 0) return out;
  if (t.length <= SHINGLE) out.add(t);
  for (let i = 0; i + SHINGLE <= t.length; i++) out.add(t.slice(i, i + SHINGLE));
  return out;
}

function isPrime(x: number): boolean {
  if (x < 2 || x % 2 === 0) return x === 2;
  for (let i = 3; i * i <= x; i += 2) if (x % i === 0) return false;
  return true;
}

/**
 * The universe of the MinHash permutations (a·x + b) mod P: a prime just above 2^26, so a·x + b stays below 2^53
 * and bloom-filters' float arithmetic is exact.
 */
const P = (() => {
  let p = (1 << 26) + 1;
  while (!isPrime(p)) p += 2;
  return p;
})();

/** Seeded (not bloom-filters' Math.random factory): the same prompts give the same groups on every run. */
const HASH_FUNCTIONS: HashFunction[] = (() => {
  const rand = mulberry32(0x5eed);
  return Array.from({ length: HASHES }, () => ({ a: 1 + Math.floor(rand() * (P - 1)), b: Math.floor(rand() * P), c: P }));
})();

/** FNV-1a (32 bit) of a shingle, reduced below P. */
function shingleId(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % P;
}

/** The MinHash sketch of a prompt, or null when it has no shingles (empty after normalisation). */
export function minhashOf(text: string): MinHash | null {
  const sh = shingleStrings(text);
  if (sh.size === 0) return null;
  const m = new MinHash(HASHES, HASH_FUNCTIONS);
  for (const s of sh) m.add(shingleId(s));
  return m;
}

/** Estimated Jaccard similarity of two prompts' shingle sets (0 when either has none). */
export function estimatedJaccard(a: string, b: string): number {
  const ma = minhashOf(a);
  const mb = minhashOf(b);
  return ma && mb ? ma.compareWith(mb) : 0;
}

/** Exact Jaccard similarity of two prompts' shingle sets (the reference the estimate is tested against). */
export function exactJaccard(a: string, b: string): number {
  const sa = shingleStrings(a);
  const sb = shingleStrings(b);
  if (sa.size === 0 || sb.size === 0) return 0;
  let inter = 0;
  for (const s of sa) if (sb.has(s)) inter++;
  return inter / (sa.size + sb.size - inter);
}

export interface NearDuplicateGroups {
  /** Per prompt: the index of its group's first prompt (a prompt alone is its own group). */
  groupOf: number[];
  /** Number of groups (distinct values of groupOf). */
  groups: number;
  /** Groups with more than one distinct (normalised) prompt: near-duplicates beyond exact repeats. */
  nearGroups: number;
  /** Prompts in those groups. */
  nearPrompts: number;
}

function find(parent: Int32Array, x: number): number {
  while (parent[x] !== x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/**
 * Groups prompts whose estimated shingle Jaccard is ≥ threshold (transitively). Exact repeats (same normalised
 * text) are always one group. The result depends only on the multiset of prompts, not on their order.
 */
export function groupNearDuplicates(prompts: readonly string[], opts: { threshold?: number } = {}): NearDuplicateGroups {
  const threshold = opts.threshold ?? DEFAULT_NEAR_DUP_THRESHOLD;
  // Distinct normalised texts, sorted: bucket representatives (first come) must not depend on the input order.
  const keyOf = prompts.map((p) => normalizeForShingles(p.length > MAX_CHARS * 2 ? p.slice(0, MAX_CHARS * 2) : p).slice(0, MAX_CHARS));
  const distinct = [...new Set(keyOf)].sort();
  const index = new Map(distinct.map((k, i) => [k, i]));
  const parent = new Int32Array(distinct.length).map((_, i) => i);
  const sketches: (MinHash | null)[] = distinct.map((k) => minhashOf(k));
  const buckets: Map<string, number>[] = Array.from({ length: BANDS }, () => new Map());
  distinct.forEach((_, i) => {
    const m = sketches[i];
    if (!m) return;
    const sig = m._signature;
    for (let b = 0; b < BANDS; b++) {
      const key = sig.slice(b * ROWS, (b + 1) * ROWS).join(',');
      const rep = buckets[b].get(key);
      if (rep === undefined) buckets[b].set(key, i);
      else if (find(parent, rep) !== find(parent, i) && m.compareWith(sketches[rep]!) >= threshold) {
        const ra = find(parent, rep);
        const rb = find(parent, i);
        parent[Math.max(ra, rb)] = Math.min(ra, rb);
      }
    }
  });
  // Group id = first prompt (input order) of the group.
  const firstOfRoot = new Map<number, number>();
  const groupOf = keyOf.map((k, i) => {
    const r = find(parent, index.get(k)!);
    const f = firstOfRoot.get(r);
    if (f !== undefined) return f;
    firstOfRoot.set(r, i);
    return i;
  });
  const distinctPerRoot = new Map<number, number>();
  for (let i = 0; i < distinct.length; i++) {
    const r = find(parent, i);
    distinctPerRoot.set(r, (distinctPerRoot.get(r) ?? 0) + 1);
  }
  let nearGroups = 0;
  for (const n of distinctPerRoot.values()) if (n > 1) nearGroups++;
  const nearPrompts = keyOf.filter((k) => distinctPerRoot.get(find(parent, index.get(k)!))! > 1).length;
  return { groupOf, groups: firstOfRoot.size, nearGroups, nearPrompts };
}
