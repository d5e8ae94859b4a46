/** Learning from the curators (issue 14): the review queue and curator agreement per model generation. */
import { z } from 'zod';
import { Id } from './common';
import { op, type OpTable } from './op';

export const learnOps = {
  // --- learning from the curators (issue 14) ------------------------------------------------------------------
  reviewQueue: op(
    'The undecided pairs to review next: smallest |margin| under the latest scoring run first (bands of 5 %), within a band where the current and the previous reward model disagree.',
    z.object({ datasetId: Id, limit: z.number().int().min(1).max(500).default(50) }),
    z.object({
      runId: Id.nullable(),
      rewardModelId: z.string().nullable(),
      previousRunId: Id.nullable(),
      previousRewardModelId: z.string().nullable(),
      total: z.number().int().nonnegative(),
      items: z.array(z.object({ pairId: Id, margin: z.number(), previousMargin: z.number().nullable(), disagree: z.boolean(), band: z.number().int().nonnegative(), reasons: z.array(z.string()) })),
      /** The dataset's current keep/drop rule (re-applied after a background rescore); null when none was applied. */
      rule: z.object({ threshold: z.number(), band: z.number() }).nullable(),
    }),
  ),
  curatorAgreement: op(
    "Per model generation (each reward model that scored the dataset), accuracy against the curators' keep/swap decisions on the curator hold-out, with n, ties and the 95 % Wilson interval.",
    z.object({ datasetId: Id }),
    z.object({
      holdOutFraction: z.number(),
      heldOut: z.number().int().nonnegative(),
      generations: z.array(
        z.object({
          generation: z.number().int().positive(),
          rewardModelId: z.string(),
          runId: Id,
          created: z.string(),
          n: z.number().int().nonnegative(),
          correct: z.number().int().nonnegative(),
          ties: z.number().int().nonnegative(),
          accuracy: z.number().nullable(),
          ci95: z.tuple([z.number(), z.number()]).nullable(),
          /** Trained on the curators' decisions: the decision group it learned up to and its label counts. */
          decisions: z.object({ groupId: z.number().int().nullable(), asLabelled: z.number().int(), swapped: z.number().int(), excluded: z.number().int() }).nullable(),
          /** The hold-out was in its training data: its accuracy here is optimistic. */
          sawHoldout: z.boolean(),
        }),
      ),
    }),
  ),
} as const satisfies OpTable;
