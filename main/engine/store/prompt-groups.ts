/**
 * Near-duplicate prompt groups of a dataset (migration 9): computed by engine/sparserm/near-duplicates.ts over the
 * dataset's prompts in id order and stored as (pair → group id = smallest pair id of the group), replaced whole.
 */
import { z } from 'zod';

import { InputError } from '../errors';
import type { Db } from './db';
import { now } from './rows';

export const PromptGroupSetSchema = z
  .object({
    dataset_id: z.number().int(),
    scheme: z.string(),
    threshold: z.number(),
    pairs: z.number().int(),
    groups: z.number().int(),
    near_groups: z.number().int(),
    created_at: z.string(),
  })
  .transform((r) => ({ datasetId: r.dataset_id, scheme: r.scheme, threshold: r.threshold, pairs: r.pairs, groups: r.groups, nearGroups: r.near_groups, createdAt: r.created_at }));
export type PromptGroupSet = z.output<typeof PromptGroupSetSchema>;

export interface PromptGroupMember {
  id: number;
  prompt: string;
  effective: string;
}

export class PromptGroupsRepo {
  constructor(private readonly db: Db) {}

  /** Replaces the dataset's groups (one transaction). `groupOf[i]` is the group id of `pairIds[i]`. */
  replace(datasetId: number, pairIds: readonly number[], groupOf: readonly number[], meta: { scheme: string; threshold: number; groups: number; nearGroups: number }): PromptGroupSet {
    if (pairIds.length !== groupOf.length) throw new InputError({ field: 'groupOf', expected: `${pairIds.length} group ids (one per pair)`, got: String(groupOf.length) });
    const ins = this.db.prepare('INSERT INTO prompt_groups(pair_id, dataset_id, group_id) VALUES (?,?,?)');
    this.db
      .transaction(() => {
        this.db.prepare('DELETE FROM prompt_groups WHERE dataset_id = ?').run(datasetId);
        pairIds.forEach((id, i) => ins.run(id, datasetId, groupOf[i]));
        this.db
          .prepare(
            `INSERT INTO prompt_group_sets(dataset_id, scheme, threshold, pairs, groups, near_groups, created_at) VALUES (?,?,?,?,?,?,?)
             ON CONFLICT(dataset_id) DO UPDATE SET scheme=excluded.scheme, threshold=excluded.threshold, pairs=excluded.pairs,
               groups=excluded.groups, near_groups=excluded.near_groups, created_at=excluded.created_at`,
          )
          .run(datasetId, meta.scheme, meta.threshold, pairIds.length, meta.groups, meta.nearGroups, now());
      })
      .immediate();
    return this.set(datasetId)!;
  }

  /** How the dataset's groups were made, or undefined when they never were. */
  set(datasetId: number): PromptGroupSet | undefined {
    const r = this.db.prepare('SELECT * FROM prompt_group_sets WHERE dataset_id = ?').get(datasetId);
    return r ? PromptGroupSetSchema.parse(r) : undefined;
  }

  /** Pairs of the dataset with no group row (imported after the groups were computed). */
  ungrouped(datasetId: number): number {
    return (
      this.db.prepare('SELECT count(*) AS n FROM pairs p WHERE p.dataset_id = ? AND NOT EXISTS (SELECT 1 FROM prompt_groups g WHERE g.pair_id = p.id)').get(datasetId) as { n: number }
    ).n;
  }

  groupOf(pairId: number): number | undefined {
    const r = this.db.prepare('SELECT group_id FROM prompt_groups WHERE pair_id = ?').pluck().get(pairId) as number | undefined;
    return r;
  }

  /** All members of a group, in id order (at most `limit`), and the group's size. */
  members(groupId: number, limit = 200): { count: number; members: PromptGroupMember[] } {
    const count = (this.db.prepare('SELECT count(*) AS n FROM prompt_groups WHERE group_id = ?').get(groupId) as { n: number }).n;
    const members = this.db
      .prepare(
        `SELECT p.id AS id, p.prompt AS prompt, p.effective AS effective FROM prompt_groups g JOIN pairs p ON p.id = g.pair_id
         WHERE g.group_id = ? ORDER BY p.id LIMIT ?`,
      )
      .all(groupId, limit) as PromptGroupMember[];
    return { count, members };
  }

  /** pair id → group id for a whole dataset (export keeps one pair per group). */
  map(datasetId: number): Map<number, number> {
    const rows = this.db.prepare('SELECT pair_id, group_id FROM prompt_groups WHERE dataset_id = ?').raw().all(datasetId) as [number, number][];
    return new Map(rows);
  }

  /** The largest groups (by pair count, ties by group id) with their sizes. */
  largest(datasetId: number, limit = 20): { groupId: number; pairs: number }[] {
    return this.db
      .prepare(
        `SELECT group_id AS groupId, count(*) AS pairs FROM prompt_groups WHERE dataset_id = ? GROUP BY group_id HAVING count(*) > 1
         ORDER BY pairs DESC, group_id LIMIT ?`,
      )
      .all(datasetId, limit) as { groupId: number; pairs: number }[];
  }
}
