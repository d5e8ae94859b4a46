/**
 * Which prompts a reward model has seen (trained or early-stopped on), recorded in its manifest as hashes, so
 * `eval` on ANY data can tell held-out pairs from seen ones — not only when the data is byte-identical to the
 * training file. Prompts are compared after collapsing whitespace and lower-casing, so a re-exported or
 * re-formatted copy of a training prompt still counts as seen.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { RewardModelManifest } from './manifest';
import type { SplitName } from './splits';

/** How `training.prompts` hashes are made (recorded in the manifest so a later change cannot be misread). */
export const PROMPT_HASH = 'sha256-64:collapse-whitespace,lowercase' as const;

export function normalizePrompt(prompt: string): string {
  return prompt.replace(/\s+/g, ' ').trim().toLowerCase();
}

/**
 * First 16 hex digits (64 bits) of sha256 of the normalised prompt: collisions are ~1e-9 likely at a million
 * prompts, and the manifest stays small (17 bytes per prompt instead of 67).
 */
export function promptHash(prompt: string): string {
  return crypto.createHash('sha256').update(normalizePrompt(prompt)).digest('hex').slice(0, 16);
}

export interface SeenPrompts {
  hash: string;
  /** Sorted, distinct hashes of the training / validation prompts. */
  train: string[];
  val: string[];
}

/** The record for the manifest: prompts of the pairs in the train and val splits. */
export function recordSeenPrompts(prompts: string[], splits: SplitName[]): SeenPrompts {
  const sets = { train: new Set<string>(), val: new Set<string>() };
  prompts.forEach((p, i) => {
    const s = splits[i];
    if (s === 'train' || s === 'val') sets[s].add(promptHash(p));
  });
  return { hash: PROMPT_HASH, train: [...sets.train].sort(), val: [...sets.val].sort() };
}

/** A record made with this version's hashing (an older or newer scheme cannot be compared: overlap unknown). */
export function usableRecord(r: SeenPrompts | undefined): r is SeenPrompts {
  return r !== undefined && r.hash === PROMPT_HASH;
}

/** Where each given prompt stands for a model: seen in training, in validation, or never (held out). */
export type PromptStatus = 'train' | 'val' | 'unseen';

export function promptStatuses(seen: Pick<SeenPrompts, 'train' | 'val'>, prompts: string[]): PromptStatus[] {
  const train = new Set(seen.train);
  const val = new Set(seen.val);
  return prompts.map((p) => {
    const h = promptHash(p);
    return train.has(h) ? 'train' : val.has(h) ? 'val' : 'unseen';
  });
}

/** How many distinct (normalised) prompts and how many pairs of the given ones the model has seen. */
export function overlapOf(prompts: string[], statuses: PromptStatus[]): { prompts: number; pairs: number } {
  const seen = new Set<string>();
  let pairs = 0;
  statuses.forEach((s, i) => {
    if (s === 'unseen') return;
    pairs++;
    seen.add(normalizePrompt(prompts[i]));
  });
  return { prompts: seen.size, pairs };
}

const manifestCache = new Map<string, { mtimeMs: number; seen: Set<string> | null }>();

/**
 * The seen (train ∪ val) prompt hashes of the reward model in `modelDir`, or null when its manifest predates
 * the record (or cannot be read). Memoised by manifest mtime: the Charts screen asks on every redraw.
 */
export function seenPromptSet(modelDir: string): Set<string> | null {
  const file = path.join(modelDir, 'manifest.json');
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
  const hit = manifestCache.get(file);
  if (hit && hit.mtimeMs === mtimeMs) return hit.seen;
  let seen: Set<string> | null = null;
  try {
    const prompts = RewardModelManifest.parse(JSON.parse(fs.readFileSync(file, 'utf8'))).training.prompts;
    if (usableRecord(prompts)) seen = new Set([...prompts.train, ...prompts.val]);
  } catch {
    seen = null;
  }
  manifestCache.set(file, { mtimeMs, seen });
  return seen;
}
