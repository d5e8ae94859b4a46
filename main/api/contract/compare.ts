/** Model comparison and near-duplicate prompt groups (issue 14 items 4 and 5). */
import { z } from 'zod';
import { Id } from './common';
import { op, type OpTable } from './op';

export const compareOps = {
  // --- model comparison + near-duplicate prompts (issue 14 items 4 and 5) -----------------------------------
  compareModels: op(
    "Compare two reward models on a dataset from their latest scoring runs: agreement (same verdict, margin ≥ 0) with n and the 95 % Wilson interval, Pearson and Spearman of the margins, the disagreeing pairs, and the latents whose contributions differ most. A model that has not scored the dataset is scored first (status 'scoring' with the job ids: ask again when they are done).",
    z.object({ datasetId: Id, modelA: Id, modelB: Id }),
    z.object({
      status: z.enum(['ready', 'scoring']),
      jobIds: z.array(Id),
      comparison: z
        .object({
          runA: Id,
          runB: Id,
          n: z.number().int().nonnegative(),
          agree: z.number().int().nonnegative(),
          agreement: z.number().nullable(),
          ci95: z.tuple([z.number(), z.number()]).nullable(),
          pearson: z.number().nullable(),
          spearman: z.number().nullable(),
          table: z.object({ keepKeep: z.number().int(), keepDrop: z.number().int(), dropKeep: z.number().int(), dropDrop: z.number().int() }),
          disagreements: z.object({
            total: z.number().int().nonnegative(),
            /** Every disagreeing pair id (for the Review filter), id order. */
            pairIds: z.array(Id),
            items: z.array(z.object({ pairId: Id, marginA: z.number(), marginB: z.number(), prompt: z.string() })),
          }),
          sameSae: z.boolean(),
          latents: z.array(z.object({ latent: z.number().int(), label: z.string().nullable(), meanAbsDiff: z.number(), meanA: z.number(), meanB: z.number() })),
          perModel: z.object({
            a: z.array(z.object({ latent: z.number().int(), label: z.string().nullable(), meanAbs: z.number(), mean: z.number() })),
            b: z.array(z.object({ latent: z.number().int(), label: z.string().nullable(), meanAbs: z.number(), mean: z.number() })),
          }),
          latentSource: z.string(),
          scatter: z.array(z.object({ pairId: Id, a: z.number(), b: z.number() })),
        })
        .nullable(),
    }),
  ),
  dedupeDataset: op(
    "Group a dataset's near-duplicate prompts (MinHash over character shingles + LSH; Jaccard ≥ threshold) and store the groups (the Review group filter and export one-per-group use them).",
    z.object({ datasetId: Id, threshold: z.number().gt(0).max(1).optional() }),
    z.object({
      scheme: z.string(),
      threshold: z.number(),
      pairs: z.number().int(),
      prompts: z.number().int(),
      groups: z.number().int(),
      nearGroups: z.number().int(),
      nearPairs: z.number().int(),
      crossedUnderExactSplit: z.object({ groups: z.number().int(), crossed: z.number().int(), seed: z.number(), valFraction: z.number(), testFraction: z.number() }),
      largest: z.array(z.object({ groupId: Id, pairs: z.number().int(), prompts: z.array(z.string()) })),
    }),
  ),
  promptGroup: op(
    "A pair's near-duplicate prompt group: its id, size and members. Missing or stale groups are computed first for datasets up to 20,000 pairs; larger ones answer groupId null until dedupeDataset (or `sparserm dedupe`) ran.",
    z.object({ pairId: Id }),
    z.object({
      groupId: Id.nullable(),
      count: z.number().int().nonnegative(),
      members: z.array(z.object({ id: Id, prompt: z.string(), effective: z.string() })),
      threshold: z.number(),
    }),
  ),
} as const satisfies OpTable;
