/**
 * Models: the environment, checkpoints / SAEs / reward models, the demo kit, training, scoring, latent labels and the
 * precision check; with the accuracy and training-result shapes the other screens show.
 */
import { z } from 'zod';
import { Id, JobRef } from './common';
import { empty, op, type OpTable } from './op';

export const ModelInfo = z.object({
  id: Id,
  kind: z.enum(['checkpoint', 'sae', 'reward-model']),
  name: z.string(),
  path: z.string(),
  isDemo: z.boolean(),
  /**
   * Reward models also say what they were trained with (engine-ops/reward-model-views.ts trainedWith): checkpointId /
   * saeId (the registered rows holding the manifest's checkpoint / SAE, null when none is registered any more),
   * checkpointPath, saePath, layer, k, loss, precision, maxTokens, saeEncoding.
   */
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

export const modelOps = {
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
} as const satisfies OpTable;

export const demoOps = {
  // --- demo kit ---------------------------------------------------------------------------------------------
  demoStatus: op('Whether the demo kit exists and what it contains.', empty, z.object({ installed: z.boolean(), path: z.string(), datasetPath: z.string().nullable() })),
  installDemo: op('Create the demo kit (random-weight model + SAE) and register it; also imports the demo pairs.', empty, JobRef),
} as const satisfies OpTable;

export const trainingOps = {
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
} as const satisfies OpTable;

export const labelOps = {
  // --- labels -----------------------------------------------------------------------------------------------
  importLabels: op(
    'Import latent labels (Neuronpedia explanation export: JSON / JSONL / .gz).',
    z.object({ path: z.string().min(1).max(4096), saeId: Id.optional() }),
    z.object({ imported: z.number().int().nonnegative() }),
  ),
} as const satisfies OpTable;

export const precisionOps = {
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
} as const satisfies OpTable;
