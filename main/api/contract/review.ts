/** Review: pairs, filters and sorting, decisions, undo / redo, history and explanations. */
import { z } from 'zod';
import { Decision, Id, Verdict } from './common';
import { op, type OpTable } from './op';

/**
 * index = file order; doubt = |margin − τ| ascending (the doubtful first; direction ignored); decision = effective
 * decision in review order drop, swap, uncertain, keep, undecided (desc reverses it); source = alphabetical
 * (code-point order), pairs without a source last. Ties: file order.
 */
export const PairSortKey = z.enum(['index', 'margin', 'doubt', 'decision', 'source']);
export type PairSortKey = z.infer<typeof PairSortKey>;
export const PairFilter = z.object({
  /** The curator's decision; 'undecided' = no curator decision yet. */
  decision: z.enum(['keep', 'drop', 'swap', 'undecided', 'any']).default('any'),
  verdict: z.enum(['keep', 'drop', 'uncertain', 'unscored', 'any']).default('any'),
  source: z.string().max(200).optional(),
  /** Only pairs where this latent is among the explained latents of either response. */
  latent: z.number().int().nonnegative().optional(),
  marginMin: z.number().optional(),
  marginMax: z.number().optional(),
  /** Full-text search over prompt, chosen and rejected. */
  search: z.string().max(500).optional(),
  /**
   * Review slices: 'overrides' = the curator's decision contradicts the model's keep/drop verdict (swap counts as
   * drop); 'decided-uncertain' = the model left the pair uncertain and a curator decided it.
   */
  curated: z.enum(['overrides', 'decided-uncertain']).optional(),
  /** Only the pairs of this near-duplicate prompt group (its id, from promptGroup / dedupeDataset). */
  promptGroup: Id.optional(),
  /** Only these pairs (e.g. where two reward models disagree, from compareModels). */
  pairIds: z.array(Id).max(20000).optional(),
});
export type PairFilter = z.infer<typeof PairFilter>;

/** A curator's name as set in the app; absent = the OS user running the engine. */
export const Curator = z.string().trim().min(1).max(100);

export const PairRow = z.object({
  id: Id,
  /** 1-based line (or array index) in the imported file. */
  index: z.number().int().nonnegative(),
  source: z.string(),
  prompt: z.string(),
  chosen: z.string(),
  rejected: z.string(),
  scoreChosen: z.number().nullable(),
  scoreRejected: z.number().nullable(),
  margin: z.number().nullable(),
  verdict: Verdict.nullable(),
  decision: Decision.nullable(),
  note: z.string().nullable(),
  /** Curator decision, else model verdict, else undecided. */
  effective: z.enum(['keep', 'drop', 'swap', 'uncertain', 'undecided']),
});
export type PairRow = z.infer<typeof PairRow>;

export const LatentContribution = z.object({
  latent: z.number().int().nonnegative(),
  label: z.string().nullable(),
  /** Signed contribution to the response's score (exact attribution, see docs/sparserm.md). */
  contribution: z.number(),
  /** JumpReLU activation of the pooled response; null where only the stored summary is known (before explainPair). */
  activation: z.number().nullable(),
});
export type LatentContribution = z.infer<typeof LatentContribution>;

/** What undo / redo did: the pairs it changed, the step's decision action (keep, drop, swap, clear, note) and the stacks after it. */
export const UndoResult = z.object({
  pairIds: z.array(Id),
  action: z.string().nullable(),
  /** How many pairs the reverted step covered (pairIds can be fewer: pairs another curator changed since are left alone). */
  stepCount: z.number().int().nonnegative(),
  canUndo: z.boolean(),
  canRedo: z.boolean(),
});
export type UndoResult = z.infer<typeof UndoResult>;

export const HistoryEntry = z.object({
  at: z.string(),
  who: z.string(),
  from: Decision.nullable(),
  to: Decision.nullable(),
  note: z.string().nullable(),
  modelId: z.string().nullable(),
  threshold: z.number().nullable(),
  /** decide = one pair; bulk = a decision on many pairs; note = only the note changed; undo / redo revert a step. */
  action: z.enum(['decide', 'bulk', 'note', 'undo', 'redo']),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

/** Tokens the length policy cut from one side's sequence (prompt: oldest first; response: from its end). */
export const SideTruncation = z.object({ prompt: z.number().int().nonnegative(), response: z.number().int().nonnegative(), original: z.number().int().positive() });
export const PairTruncation = z.object({ chosen: SideTruncation.optional(), rejected: SideTruncation.optional() });
export type PairTruncation = z.infer<typeof PairTruncation>;

export const PairDetail = PairRow.extend({
  datasetId: Id,
  /** The prompt as conversation turns (HH "Human: … Assistant: …" text split the way scoring reads it); one user turn for plain text. */
  promptTurns: z.array(z.object({ role: z.string(), content: z.string() })),
  /** σ(margin): the model's probability that chosen ≻ rejected. */
  pChosen: z.number().min(0).max(1).nullable(),
  rewardModelId: z.string().nullable(),
  isDemoModel: z.boolean(),
  /** The reward model's folder is here, so explainPair can compute activations and token firing. */
  explainable: z.boolean(),
  explanation: z
    .object({
      chosen: z.array(LatentContribution),
      rejected: z.array(LatentContribution),
    })
    .nullable(),
  /** What the reward model's max-token setting cut when this pair was scored; null when nothing (or not scored). */
  truncation: PairTruncation.nullable(),
  history: z.array(HistoryEntry),
});
export type PairDetail = z.infer<typeof PairDetail>;

/** One latent of an explained response: its exact contribution split over the tokens, and apart, SAE firing. */
export const ExplainedLatent = LatentContribution.extend({
  side: z.enum(['positive', 'negative']),
  /** p_j = mean over the pooled tokens of ⟨h_t, d_j⟩ (what the head reads), μ_j and σ_j over the training responses. */
  projection: z.number(),
  trainingMean: z.number(),
  trainingStd: z.number(),
  /** g_j: score change per σ_j of projection with this response's ReLU pattern fixed; contribution = g_j (p_j − μ_j)/σ_j. */
  weight: z.number(),
  /** Aligned with `tokens` (0 outside the pooled tokens); sums to `contribution`. */
  tokenContributions: z.array(z.number()),
  /** Whether and where the SAE latent fired (JumpReLU): not needed for a contribution. */
  firing: z.object({
    pooledActivation: z.number(),
    tokensFired: z.number().int().nonnegative(),
    peak: z.object({ token: z.number().int().nonnegative(), text: z.string(), activation: z.number() }).nullable(),
  }),
  /** Activation on each response token (same length as `tokens`; 0 = did not fire). */
  perToken: z.array(z.number()),
});
export type ExplainedLatent = z.infer<typeof ExplainedLatent>;

/** One response explained on demand: score = bias + Σ latents' contributions = bias + Σ tokenContributions. */
export const ResponseExplanation = z.object({
  score: z.number(),
  bias: z.number(),
  /** Display strings of the response tokens. */
  tokens: z.array(z.string()),
  /** [start, end) into `tokens` of the tokens the head pools (all for mean pooling, the last for 'last'). */
  pooledSpan: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  /** Each token's total contribution over all selected latents (aligned with `tokens`). */
  tokenContributions: z.array(z.number()),
  /** The top latents by |contribution|. */
  latents: z.array(ExplainedLatent),
  /** Llama Scope SAEs: which encoding the activations use (absent for Gemma Scope). */
  saeEncoding: z.enum(['saelens', 'authors']).optional(),
});
/** The margin by latent: margin = biasDelta + Σ latents[].delta + rest (the latents not listed). */
export const MarginDecomposition = z.object({
  biasDelta: z.number(),
  latents: z.array(z.object({ latent: z.number().int().nonnegative(), label: z.string().nullable(), side: z.enum(['positive', 'negative']), chosen: z.number(), rejected: z.number(), delta: z.number() })),
  rest: z.number(),
});
export type MarginDecomposition = z.infer<typeof MarginDecomposition>;
export type ResponseExplanation = z.infer<typeof ResponseExplanation>;

export const reviewOps = {
  // --- review -----------------------------------------------------------------------------------------------
  queryPairs: op(
    'One page of pairs matching a filter, sorted.',
    z.object({
      datasetId: Id,
      filter: PairFilter.default({ decision: 'any', verdict: 'any' }),
      sort: z.object({ by: PairSortKey, dir: z.enum(['asc', 'desc']) }).default({ by: 'index', dir: 'asc' }),
      offset: z.number().int().nonnegative(),
      limit: z.number().int().min(1).max(1000),
      /** A pair whose position in this filter and sort to report (keeps the selection across filter changes). */
      locate: Id.optional(),
    }),
    z.object({
      total: z.number().int().nonnegative(),
      rows: z.array(PairRow),
      /**
       * Of the matching pairs, how many carry a curator decision ("reviewed X of N"); counted for the first page
       * (offset 0) or with `locate`, null on later pages so scrolling costs no extra count.
       */
      reviewed: z.number().int().nonnegative().nullable(),
      /** 0-based position of `locate` in the result; null when it is not listed (or not asked). */
      located: z.number().int().nonnegative().nullable(),
    }),
  ),
  getPair: op('A pair with scores, explanation and history.', z.object({ pairId: Id }), PairDetail),
  explainPair: op(
    'Explain both responses now (one backbone run each): score = bias + exact latent contributions, each split over the tokens; the margin by latent and a one-line why; where each SAE latent fired.',
    z.object({ pairId: Id, top: z.number().int().min(1).max(64).default(12) }),
    z.object({ chosen: ResponseExplanation, rejected: ResponseExplanation, rewardModelId: Id, margin: z.number(), marginDecomposition: MarginDecomposition, why: z.string() }),
  ),
  decide: op(
    "Record the curator's decision (null clears it) and/or a note for one pair.",
    z.object({ pairId: Id, decision: Decision.nullable().optional(), note: z.string().max(10_000).nullable().optional(), curator: Curator.optional() }),
    PairRow,
  ),
  undo: op("Undo this curator's last step in a dataset (each curator has their own undo).", z.object({ datasetId: Id, curator: Curator.optional() }), UndoResult),
  redo: op("Redo this curator's last undone step in a dataset.", z.object({ datasetId: Id, curator: Curator.optional() }), UndoResult),
  curator: op('Who decisions are attributed to when the app sets no name: the OS user running the engine.', z.object({}), z.object({ name: z.string() })),
  bulkDecide: op(
    'Apply one decision to all pairs matching a filter. expectedCount guards against the set changing under the curator.',
    z.object({ datasetId: Id, filter: PairFilter, decision: Decision.nullable(), expectedCount: z.number().int().nonnegative(), curator: Curator.optional() }),
    z.object({ changed: z.number().int().nonnegative() }),
  ),
} as const satisfies OpTable;
