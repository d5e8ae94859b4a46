/**
 * The ONE typed API contract of SparseRM Studio. Every operation the UI can ask for is listed here with its input
 * and output zod schemas. Electron IPC (main/app), the preload bridge (preload/), `sparserm serve` (main/server) and
 * the renderer's two clients all derive from this object, so a new operation is added in exactly one place and every
 * transport validates the same shapes. This module imports only zod: it is shared with the browser bundle.
 */
import { z } from 'zod';
import type { OpNameList } from './op-names';

// ---------------------------------------------------------------------------------------------------------------
// Shared shapes
// ---------------------------------------------------------------------------------------------------------------

export const Id = z.string().min(1).max(200);

/** The curator's choice. `null` in a row means "no decision yet": the model's suggestion applies. */
export const Decision = z.enum(['keep', 'drop', 'swap']);
export type Decision = z.infer<typeof Decision>;
/** The model's verdict, shown as a suggestion only. */
export const Verdict = z.enum(['keep', 'drop', 'uncertain']);
export type Verdict = z.infer<typeof Verdict>;

export const JobState = z.enum(['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted']);
export const JobRef = z.object({ jobId: Id });

export const Job = z.object({
  id: Id,
  kind: z.string(),
  state: JobState,
  title: z.string(),
  /** 0..1, or null when the total is unknown. */
  progress: z.number().min(0).max(1).nullable(),
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative().nullable(),
  message: z.string(),
  etaSeconds: z.number().nonnegative().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
  resumable: z.boolean(),
  /** Kind-specific result once done (import report, run id, export path, ...). */
  result: z.unknown().nullable(),
});
export type Job = z.infer<typeof Job>;

/** What made a generated dataset (issue 12): its generation run, pairing recipe, policy, round, parent and prompts. */
export const DatasetLineage = z.object({
  generationRunId: Id.nullable(),
  recipe: z.string(),
  recipeParams: z.record(z.string(), z.unknown()),
  /** Local: the checkpoint's content hash; endpoint: `url#model`. */
  policy: z.string(),
  policyLabel: z.string(),
  round: z.number().int().positive(),
  /** The previous round's generated dataset (null for round 1). */
  parentDatasetId: Id.nullable(),
  promptsDatasetId: Id.nullable(),
  /** The prompts file path or `dataset:NAME`. */
  promptsSource: z.string(),
});
export type DatasetLineage = z.infer<typeof DatasetLineage>;

export const DatasetSummary = z.object({
  id: Id,
  name: z.string(),
  format: z.string(),
  sourcePath: z.string().nullable(),
  createdAt: z.string(),
  isDemo: z.boolean(),
  /** Effective decisions: the curator's decision, else the model's verdict, else undecided. */
  counts: z.object({
    total: z.number().int().nonnegative(),
    scored: z.number().int().nonnegative(),
    keep: z.number().int().nonnegative(),
    drop: z.number().int().nonnegative(),
    swap: z.number().int().nonnegative(),
    uncertain: z.number().int().nonnegative(),
    undecided: z.number().int().nonnegative(),
    humanDecided: z.number().int().nonnegative(),
  }),
  sources: z.array(z.string()),
  /** The reward model behind the current verdicts, if any. */
  rewardModelId: z.string().nullable(),
  rewardModelIsDemo: z.boolean(),
  /** Present on datasets made by the generation workflow. */
  lineage: DatasetLineage.optional(),
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;

export const ImportReport = z.object({
  datasetId: Id,
  format: z.string(),
  imported: z.number().int().nonnegative(),
  skipped: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  problems: z.array(z.object({ line: z.number().int().nullable(), message: z.string() })),
});
export type ImportReport = z.infer<typeof ImportReport>;

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

export const ModelInfo = z.object({
  id: Id,
  kind: z.enum(['checkpoint', 'sae', 'reward-model']),
  name: z.string(),
  path: z.string(),
  isDemo: z.boolean(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  /** Reward models: held-out accuracy with n and 95 % interval (the same numbers listRuns gives). */
  heldOut: z.lazy(() => AccuracyView).nullable().optional(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

export const Loss = z.enum(['margin', 'bt']);
/** Backbone graph precision (engine/backbone/linear-weights.ts PRECISIONS): f32, f16, or weight-only int8 / int4. */
export const BackbonePrecision = z.enum(['f32', 'f16', 'int8', 'int4']);

/**
 * An accuracy as shown anywhere: its n, exact ties (margin 0: reported, not counted as correct) and 95 % Wilson
 * interval; null fields where a stored older result does not say.
 */
export const AccuracyView = z.object({
  accuracy: z.number().nullable(),
  n: z.number().int().nonnegative().nullable(),
  ties: z.number().int().nonnegative().nullable(),
  ci95: z.tuple([z.number(), z.number()]).nullable(),
});
export type AccuracyView = z.infer<typeof AccuracyView>;

export const TrainResult = z.object({
  runId: Id,
  rewardModelId: Id,
  isDemo: z.boolean(),
  layer: z.number().int(),
  k: z.number().int(),
  loss: Loss,
  curve: z.array(z.object({ epoch: z.number(), trainLoss: z.number(), valLoss: z.number().nullable(), valAccuracy: z.number().nullable() })),
  heldOutAccuracy: z.number().nullable(),
  /** heldOutAccuracy with its n, ties and interval; `overlap`: pairs of the dataset seen in training/validation (left out). */
  heldOut: AccuracyView.extend({ overlap: z.number().int().nonnegative().nullable() }).nullable(),
  /** Trained on the model's training pairs, tested on exactly the pairs of `heldOut`. */
  baselines: z.array(AccuracyView.extend({ name: z.string(), accuracy: z.number() })),
  selected: z.array(z.object({ latent: z.number().int(), sign: z.enum(['positive', 'negative']), label: z.string().nullable(), muChosen: z.number(), muRejected: z.number() })),
});
export type TrainResult = z.infer<typeof TrainResult>;

export const ExportFormat = z.enum(['standard', 'conversational']);
/** Besides kept and swapped pairs: also pairs the rule left uncertain, or never scored/decided. */
export const ExportInclude = z.object({ uncertain: z.boolean().default(false), undecided: z.boolean().default(false) }).default({ uncertain: false, undecided: false });
/**
 * What an export holds and leaves out, by effective decision. `kept` = pairs written (keep + swap + what `include`
 * adds); `dropped` counts only pairs decided or judged drop: uncertain, undecided and unscored pairs are their own
 * counts, never folded into "dropped".
 */
export const ExportCounts = z.object({
  total: z.number().int(),
  kept: z.number().int(),
  dropped: z.number().int(),
  swapped: z.number().int(),
  uncertain: z.number().int(),
  /** No curator decision and no model verdict. */
  undecided: z.number().int(),
  /** Pairs the current scoring run has no score for. */
  unscored: z.number().int(),
  overrides: z.number().int(),
});

export const Histogram = z.object({
  /** bin edges, length bins+1 */
  edges: z.array(z.number()),
  series: z.array(z.object({ decision: z.string(), counts: z.array(z.number().int()) })),
});

// --- generation (issue 12): the policy generates candidates, a recipe pairs them, SparseRM filters the pairs ---
export const Sampling = z.object({
  /** 0 = greedy. */
  temperature: z.number().min(0).max(5).default(1),
  topP: z.number().gt(0).max(1).default(1),
  /** 0 = off. */
  topK: z.number().int().nonnegative().max(100000).default(0),
  seed: z.number().int().nonnegative().max(2 ** 31 - 1).default(0),
  maxNewTokens: z.number().int().min(1).max(4096).default(128),
});
export const GenerationRecipe = z.enum(['instructed', 'self-judged', 'best-worst', 'margin']);
/** An editable pair of instructions (system preface) for the instructed recipe: the label is given by construction. */
export const InstructionPair = z.object({ chosen: z.string().min(1).max(4000), rejected: z.string().min(1).max(4000) });
export const GenerationPreset = z.object({ id: z.string(), name: z.string(), description: z.string(), instructions: InstructionPair });
export const PolicySpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('local'), checkpointId: Id }),
  z.object({ kind: z.literal('endpoint'), url: z.string().min(1).max(2048), model: z.string().min(1).max(200) }),
]);
export const GenerationRun = z.object({
  id: Id,
  name: z.string(),
  policyKind: z.enum(['local', 'endpoint']),
  policy: z.string(),
  policyLabel: z.string(),
  sampling: z.object({ temperature: z.number(), topP: z.number(), topK: z.number().int(), seed: z.number().int(), maxNewTokens: z.number().int() }),
  n: z.number().int().positive(),
  promptsSource: z.string(),
  recipe: GenerationRecipe,
  recipeParams: z.record(z.string(), z.unknown()),
  rewardModelId: z.string().nullable(),
  round: z.number().int().positive(),
  parentDatasetId: Id.nullable(),
  /** The generated dataset, once the run has paired its candidates. */
  datasetId: Id.nullable(),
  status: z.enum(['running', 'done', 'failed', 'cancelled']),
  promptsTotal: z.number().int().nonnegative(),
  promptsDone: z.number().int().nonnegative(),
  /** Tokens generated so far. */
  tokens: z.number().int().nonnegative(),
  jobId: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type GenerationRun = z.infer<typeof GenerationRun>;
export const GenerationCandidate = z.object({
  id: Id,
  promptIndex: z.number().int().nonnegative(),
  prompt: z.string(),
  /** Instructed recipe: 'chosen' / 'rejected' (which instruction it answered); '' otherwise. */
  variant: z.string(),
  candidateIndex: z.number().int().nonnegative(),
  text: z.string(),
  /** Number of generated tokens (null when the source does not say). */
  tokenCount: z.number().int().nonnegative().nullable(),
  logprob: z.number().nullable(),
  finishReason: z.enum(['stop', 'length']),
  /** SparseRM score (null until scored). */
  score: z.number().nullable(),
});
export type GenerationCandidate = z.infer<typeof GenerationCandidate>;

const empty = z.object({}).strict();

// ---------------------------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------------------------

function op<I extends z.ZodType, O extends z.ZodType>(description: string, input: I, output: O) {
  return { description, input, output };
}

export const contract = {
  // --- environment / models ---------------------------------------------------------------------------------
  doctor: op(
    'Runtime information: execution provider and why, versions, database path.',
    empty,
    z.object({
      version: z.string(),
      node: z.string(),
      platform: z.string(),
      ep: z.string(),
      epReason: z.string(),
      dbPath: z.string(),
      checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
    }),
  ),
  listModels: op('Registered backbones, SAEs and trained reward models.', empty, z.object({ models: z.array(ModelInfo) })),
  addCheckpoint: op('Register a Hugging Face checkpoint folder (config.json + safetensors + tokenizer).', z.object({ path: z.string().min(1).max(4096) }), ModelInfo),
  addSae: op('Register an SAE (Gemma Scope params.npz or SAELens folder).', z.object({ path: z.string().min(1).max(4096) }), ModelInfo),
  checkCompatibility: op(
    'Check that an SAE fits a checkpoint at a layer.',
    z.object({ checkpointId: Id, saeId: Id, layer: z.number().int().nonnegative().optional() }),
    z.object({ ok: z.boolean(), layer: z.number().int().nullable(), problems: z.array(z.string()) }),
  ),
  buildModel: op('Build (and cache) the truncated backbone graph for a layer.', z.object({ checkpointId: Id, layer: z.number().int().nonnegative(), precision: BackbonePrecision.optional() }), JobRef),

  // --- demo kit ---------------------------------------------------------------------------------------------
  demoStatus: op('Whether the demo kit exists and what it contains.', empty, z.object({ installed: z.boolean(), path: z.string(), datasetPath: z.string().nullable() })),
  installDemo: op('Create the demo kit (random-weight model + SAE) and register it; also imports the demo pairs.', empty, JobRef),

  // --- datasets ---------------------------------------------------------------------------------------------
  listDatasets: op('Datasets with counts.', empty, z.object({ datasets: z.array(DatasetSummary) })),
  importDataset: op(
    'Import a preference file (format auto-detected unless given). Runs as a job; its result is an ImportReport.',
    z.object({
      path: z.string().min(1).max(4096),
      format: z.string().max(50).optional(),
      name: z.string().max(200).optional(),
      /** Largest line / JSON-array element accepted, in bytes (default 64 MiB, at most 512 MiB); a longer one refuses the file. */
      maxLineBytes: z.number().int().min(1).max(512 * 1024 * 1024).optional(),
    }),
    JobRef,
  ),

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

  // --- model work -------------------------------------------------------------------------------------------
  train: op(
    'Train a SparseRM head on a dataset. Runs as a job; its result is a TrainResult.',
    z.object({
      datasetId: Id,
      checkpointId: Id,
      saeId: Id,
      layer: z.number().int().nonnegative(),
      k: z.number().int().min(1).max(4096).default(128),
      loss: Loss.default('margin'),
      /** Tokens per response sequence (length policy; default 1,024, at most the checkpoint's max_position_embeddings). */
      maxTokens: z.number().int().min(1).optional(),
      /** Llama Scope SAEs: 'saelens' (default) or 'authors'; recorded in the reward model. */
      saeEncoding: z.enum(['saelens', 'authors']).optional(),
      /** Label pairs by the curators' decisions (swap flipped, drop and the curator hold-out left out; issue 14). */
      fromDecisions: z.boolean().optional(),
      /** With fromDecisions: undecided pairs as labelled (default) or left out. */
      undecided: z.enum(['as-labelled', 'exclude']).optional(),
      /** Backbone precision (default f32); recorded in the reward model, which scores at it by default. */
      precision: BackbonePrecision.optional(),
    }),
    JobRef,
  ),
  listRuns: op('Training runs (newest first).', z.object({ datasetId: Id.optional() }).default({}), z.object({ runs: z.array(TrainResult) })),
  score: op('Score a dataset with a reward model. Runs as a job. precision: default the one the model was trained at (another one warns in the job message).', z.object({ datasetId: Id, rewardModelId: Id, precision: BackbonePrecision.optional() }), JobRef),
  applyFilter: op(
    "Set the model's suggestions: drop when margin < threshold; |margin − threshold| < band is 'uncertain'.",
    z.object({ datasetId: Id, threshold: z.number().default(0), band: z.number().nonnegative().default(0) }),
    z.object({ keep: z.number().int(), drop: z.number().int(), uncertain: z.number().int() }),
  ),

  // --- export -----------------------------------------------------------------------------------------------
  exportPreview: op(
    'The first lines of the export, its counts and provenance, without writing anything.',
    z.object({ datasetId: Id, format: ExportFormat, lines: z.number().int().min(1).max(50).default(5), include: ExportInclude }),
    z.object({ datasetName: z.string(), lines: z.array(z.string()), counts: ExportCounts, provenance: z.record(z.string(), z.unknown()) }),
  ),
  exportDataset: op(
    'Write the curated JSONL (kept pairs, swaps applied) and its provenance sidecar. Runs as a job.',
    z.object({
      datasetId: Id,
      format: ExportFormat,
      path: z.string().min(1).max(4096),
      include: ExportInclude,
      /** Also write the pairs left out, with their decision, to this file (for audit). */
      droppedPath: z.string().min(1).max(4096).optional(),
      /**
       * Replace output files that already exist. Without it an existing file answers an error of kind 'exists'; the UI
       * asks the curator and retries with true. The database and the same file twice are refused either way.
       */
      overwrite: z.boolean().optional(),
      /** Write the file even when the selection holds 0 pairs (otherwise refused: an empty export is almost always a mistake). */
      allowEmpty: z.boolean().optional(),
      /** Keep one pair per near-duplicate prompt group (groups are computed first when missing or stale). */
      onePerGroup: z.boolean().optional(),
    }),
    JobRef,
  ),

  // --- files ------------------------------------------------------------------------------------------------
  pickPath: op(
    'Native open/save dialog (Electron only; `sparserm serve` answers kind "unavailable": the browser uploads and downloads instead).',
    z.object({
      mode: z.enum(['open', 'save']),
      title: z.string().max(200).optional(),
      defaultPath: z.string().max(4096).optional(),
      filters: z.array(z.object({ name: z.string().max(100), extensions: z.array(z.string().max(20)).max(20) })).max(10).optional(),
    }),
    z.object({ path: z.string().nullable() }),
  ),

  // --- jobs -------------------------------------------------------------------------------------------------
  listJobs: op('Recent jobs, including interrupted ones that can be resumed.', empty, z.object({ jobs: z.array(Job) })),
  getJob: op('One job with its progress.', z.object({ jobId: Id }), Job),
  cancelJob: op('Ask a running job to stop.', z.object({ jobId: Id }), Job),
  resumeJob: op('Resume an interrupted job without redoing finished batches.', z.object({ jobId: Id }), JobRef),

  // --- labels -----------------------------------------------------------------------------------------------
  importLabels: op(
    'Import latent labels (Neuronpedia explanation export: JSON / JSONL / .gz).',
    z.object({ path: z.string().min(1).max(4096), saeId: Id.optional() }),
    z.object({ imported: z.number().int().nonnegative() }),
  ),

  // --- generation --------------------------------------------------------------------------------------------
  generationPresets: op('Instruction templates for the instructed recipe (TruthfulQA-, SafeRLHF-style).', empty, z.object({ presets: z.array(GenerationPreset) })),
  startGeneration: op(
    "Generate candidates with a policy for a prompts file or a dataset's prompts, score them with a reward model, pair them by a recipe into a new dataset. Runs as a job (progress message carries tokens/s; cancel and resume).",
    z
      .object({
        prompts: z.object({ datasetId: Id.optional(), path: z.string().min(1).max(4096).optional() }).refine((p) => (p.datasetId === undefined) !== (p.path === undefined), { message: 'exactly one of datasetId or path' }),
        policy: PolicySpec,
        sampling: Sampling.default({ temperature: 1, topP: 1, topK: 0, seed: 0, maxNewTokens: 128 }),
        n: z.number().int().min(1).max(64).default(4),
        recipe: GenerationRecipe,
        /** Instructed recipe: a preset id (generationPresets) or explicit instructions (these win). */
        preset: z.string().max(100).optional(),
        instructions: InstructionPair.optional(),
        /** Margin recipe: keep pairs whose SparseRM margin exceeds delta. */
        delta: z.number().min(0).max(1e6).optional(),
        rewardModelId: Id,
        name: z.string().trim().min(1).max(200).optional(),
        round: z.number().int().min(1).max(1000).optional(),
        parentDatasetId: Id.optional(),
      }),
    JobRef,
  ),
  listGenerationRuns: op('Generation runs (newest first) with lineage and progress; of one generated dataset if given.', z.object({ datasetId: Id.optional() }).default({}), z.object({ runs: z.array(GenerationRun.extend({ lineage: DatasetLineage.nullable() })) })),
  nextRound: op(
    'The next round of a generated dataset: same prompts, recipe and sampling, a new policy checkpoint, round + 1, parent = that dataset. Runs as a job.',
    z.object({ datasetId: Id, checkpointId: Id, name: z.string().trim().min(1).max(200).optional() }),
    JobRef,
  ),
  listCandidates: op(
    'Candidates of a generation run with their SparseRM scores (prompt order).',
    z.object({ runId: Id, offset: z.number().int().nonnegative().default(0), limit: z.number().int().min(1).max(500).default(50) }),
    z.object({ total: z.number().int().nonnegative(), candidates: z.array(GenerationCandidate) }),
  ),

  // --- charts -----------------------------------------------------------------------------------------------
  chartData: op(
    'Everything the Charts screen draws for a dataset.',
    z.object({ datasetId: Id, bins: z.number().int().min(5).max(200).default(40) }),
    z.object({
      marginHistogram: Histogram.nullable(),
      accuracyVsThreshold: z.array(z.object({ threshold: z.number(), accuracy: z.number(), kept: z.number().int() })),
      /** Share of curator decisions that match the model's verdict (null when there are none). */
      agreement: z.object({ value: z.number().nullable(), decided: z.number().int() }),
      /** On pairs whose prompt the scoring model never saw (heldOut: false when its folder does not record them). */
      perSource: z.array(AccuracyView.extend({ source: z.string(), n: z.number().int() })),
      perSourceBasis: z.object({ heldOut: z.boolean(), leftOut: z.number().int().nonnegative() }),
      trainingCurve: TrainResult.shape.curve.nullable(),
    }),
  ),

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

  // --- precision check (issue 13 item 2) ---------------------------------------------------------------------
  precisionCheck: op(
    "Compare a reward model's features and decisions at a cheaper backbone precision against f32 on a dataset's pairs (cosine of pooled z, selected latents firing, Spearman of margins, filter flips). Runs as a job; its result is a PrecisionCheckReport.",
    z.object({
      rewardModelId: Id,
      datasetId: Id,
      precision: z.enum(['f16', 'int8', 'int4', 'f32']),
      /** Margin threshold τ of the keep/drop decision (default 0, the paper rule). */
      threshold: z.number().finite().optional(),
      /** Check only the dataset's first N pairs (each runs the backbone twice). */
      limit: z.number().int().min(1).max(100000).optional(),
    }),
    JobRef,
  ),
} as const;

export type Contract = typeof contract;
export type OpName = keyof Contract;
export type OpInput<K extends OpName> = z.input<Contract[K]['input']>;
export type OpParsedInput<K extends OpName> = z.output<Contract[K]['input']>;
export type OpOutput<K extends OpName> = z.output<Contract[K]['output']>;

/** The client interface the renderer uses, implemented over IPC (preload) and over HTTP (serve). */
export type ApiClient = { [K in OpName]: (input: OpInput<K>) => Promise<OpOutput<K>> };

/** Server-side implementation: receives validated input. */
export type ApiHandlers = { [K in OpName]: (input: OpParsedInput<K>) => Promise<OpOutput<K>> };

export const opNames = Object.keys(contract) as OpName[];

// Compile-time proof that op-names.ts (used by the preload) lists exactly the contract's operations.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatch: Same<OpName, OpNameList> = true;
void namesMatch;

export function isOpName(name: string): name is OpName {
  return Object.prototype.hasOwnProperty.call(contract, name);
}

/** Errors travel as data across IPC and HTTP; the kind lets the UI tell "fix your input" from "bug". */
export const ApiError = z.object({
  kind: z.enum(['input', 'exists', 'cancelled', 'internal', 'not-found', 'unauthorized', 'unavailable', 'unreachable']),
  message: z.string(),
  /** The input field the error concerns (InputError.details.field or the first zod path segment): the UI shows it there. */
  field: z.string().optional(),
});
export type ApiError = z.infer<typeof ApiError>;
export const ApiEnvelope = z.union([z.object({ ok: z.literal(true), value: z.unknown() }), z.object({ ok: z.literal(false), error: ApiError })]);
export type ApiEnvelope = z.infer<typeof ApiEnvelope>;

export class ApiCallError extends Error {
  constructor(
    readonly kind: ApiError['kind'],
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}
