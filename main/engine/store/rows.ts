import { z } from 'zod';

/**
 * Row types of the store. Every row read from SQLite goes through one of these zod schemas (snake_case columns in,
 * camelCase objects out), so a hand-edited or foreign database fails loudly at the boundary instead of deep in the UI.
 */

const json = <T extends z.ZodType>(inner: T) =>
  z
    .string()
    .nullable()
    .transform((s, ctx) => {
      if (s === null) return null;
      try {
        return inner.parse(JSON.parse(s)) as z.output<T>;
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: `invalid JSON column: ${(e as Error).message}` });
        return z.NEVER;
      }
    });

export const MessageSchema = z.object({ role: z.string(), content: z.string() });
export type Message = z.infer<typeof MessageSchema>;

export const HumanDecision = z.enum(['keep', 'drop', 'swap']);
export type HumanDecision = z.infer<typeof HumanDecision>;
export const AutoVerdict = z.enum(['keep', 'drop', 'uncertain']);
export type AutoVerdict = z.infer<typeof AutoVerdict>;
export const EffectiveDecision = z.enum(['keep', 'drop', 'swap', 'uncertain', 'undecided']);
export type EffectiveDecision = z.infer<typeof EffectiveDecision>;
export const DecisionAction = z.enum(['keep', 'drop', 'swap', 'note', 'clear']);
export type DecisionAction = z.infer<typeof DecisionAction>;

const bool = z.union([z.number(), z.bigint()]).transform((n) => Number(n) !== 0);

export const DatasetRowSchema = z
  .object({ id: z.number(), name: z.string(), description: z.string().nullable(), demo: bool, created_at: z.string() })
  .transform((r) => ({ id: r.id, name: r.name, description: r.description, demo: r.demo, createdAt: r.created_at }));
export type Dataset = z.output<typeof DatasetRowSchema>;

export const SkippedRowSchema = z.object({ line: z.number(), reason: z.string() });
export type SkippedRow = z.infer<typeof SkippedRowSchema>;
export const ImportReportSchema = z.object({
  skipped: z.array(SkippedRowSchema),
  duplicateLines: z.array(z.object({ line: z.number(), duplicateOf: z.number().nullable() })),
  notes: z.array(z.object({ line: z.number(), note: z.string() })).default([]),
});
export type ImportReport = z.infer<typeof ImportReportSchema>;

export const ImportRowSchema = z
  .object({
    id: z.number(),
    dataset_id: z.number(),
    file: z.string(),
    file_sha256: z.string(),
    file_bytes: z.number(),
    format: z.string(),
    options_json: json(z.record(z.string(), z.unknown())),
    imported: z.number(),
    duplicates: z.number(),
    skipped: z.number(),
    report_json: json(ImportReportSchema),
    started_at: z.string(),
    finished_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    datasetId: r.dataset_id,
    file: r.file,
    fileSha256: r.file_sha256,
    fileBytes: r.file_bytes,
    format: r.format,
    options: r.options_json ?? {},
    imported: r.imported,
    duplicates: r.duplicates,
    skipped: r.skipped,
    report: r.report_json ?? { skipped: [], duplicateLines: [], notes: [] },
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  }));
export type ImportRecord = z.output<typeof ImportRowSchema>;

export const PairRowSchema = z
  .object({
    id: z.number(),
    dataset_id: z.number(),
    import_id: z.number().nullable(),
    line: z.number().nullable(),
    source: z.string().nullable(),
    external_id: z.string().nullable(),
    prompt: z.string(),
    chosen: z.string(),
    rejected: z.string(),
    prompt_messages: json(z.array(MessageSchema)),
    chosen_messages: json(z.array(MessageSchema)),
    rejected_messages: json(z.array(MessageSchema)),
    metadata_json: json(z.record(z.string(), z.unknown())),
    raw_json: z.string().nullable(),
    content_hash: z.string(),
    filter_id: z.number().nullable(),
    auto_verdict: AutoVerdict.nullable(),
    margin: z.number().nullable(),
    doubt: z.number().nullable(),
    human_decision: HumanDecision.nullable(),
    note: z.string().nullable(),
    effective: EffectiveDecision,
  })
  .transform((r) => ({
    id: r.id,
    datasetId: r.dataset_id,
    importId: r.import_id,
    line: r.line,
    source: r.source,
    externalId: r.external_id,
    prompt: r.prompt,
    chosen: r.chosen,
    rejected: r.rejected,
    promptMessages: r.prompt_messages,
    chosenMessages: r.chosen_messages,
    rejectedMessages: r.rejected_messages,
    metadata: r.metadata_json,
    /** The original row exactly as read (JSON text), for audit. */
    raw: r.raw_json,
    contentHash: r.content_hash,
    filterId: r.filter_id,
    autoVerdict: r.auto_verdict,
    margin: r.margin,
    /** |margin − τ| of the filter that produced the verdict: small = doubtful. */
    doubt: r.doubt,
    humanDecision: r.human_decision,
    note: r.note,
    effective: r.effective,
  }));
export type Pair = z.output<typeof PairRowSchema>;

/** The subset of a pair an export reads (see PairsRepo.iterateForExport). */
export const ExportPairSchema = z
  .object({
    id: z.number(),
    external_id: z.string().nullable(),
    prompt: z.string(),
    chosen: z.string(),
    rejected: z.string(),
    prompt_messages: json(z.array(MessageSchema)),
    chosen_messages: json(z.array(MessageSchema)),
    rejected_messages: json(z.array(MessageSchema)),
    effective: EffectiveDecision,
    human_decision: HumanDecision.nullable(),
    auto_verdict: AutoVerdict.nullable(),
    margin: z.number().nullable(),
    note: z.string().nullable(),
  })
  .transform((r) => ({
    id: r.id,
    externalId: r.external_id,
    prompt: r.prompt,
    chosen: r.chosen,
    rejected: r.rejected,
    promptMessages: r.prompt_messages,
    chosenMessages: r.chosen_messages,
    rejectedMessages: r.rejected_messages,
    effective: r.effective,
    humanDecision: r.human_decision,
    autoVerdict: r.auto_verdict,
    margin: r.margin,
    note: r.note,
  }));
export type ExportPair = z.output<typeof ExportPairSchema>;

export const BackboneRowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    path: z.string().nullable(),
    config_hash: z.string().nullable(),
    architecture: z.string().nullable(),
    metadata_json: json(z.record(z.string(), z.unknown())),
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    name: r.name,
    path: r.path,
    configHash: r.config_hash,
    architecture: r.architecture,
    metadata: r.metadata_json ?? {},
    createdAt: r.created_at,
  }));
export type Backbone = z.output<typeof BackboneRowSchema>;

export const SaeRowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    path: z.string().nullable(),
    hash: z.string().nullable(),
    backbone_id: z.string().nullable(),
    layer: z.number().nullable(),
    d_sae: z.number().nullable(),
    metadata_json: json(z.record(z.string(), z.unknown())),
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    name: r.name,
    path: r.path,
    hash: r.hash,
    backboneId: r.backbone_id,
    layer: r.layer,
    dSae: r.d_sae,
    metadata: r.metadata_json ?? {},
    createdAt: r.created_at,
  }));
export type Sae = z.output<typeof SaeRowSchema>;

export const RewardModelRowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    folder: z.string(),
    manifest_hash: z.string(),
    backbone_id: z.string().nullable(),
    sae_id: z.string().nullable(),
    layer: z.number().nullable(),
    metrics_json: json(z.record(z.string(), z.unknown())),
    demo: bool,
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    name: r.name,
    folder: r.folder,
    manifestHash: r.manifest_hash,
    backboneId: r.backbone_id,
    saeId: r.sae_id,
    layer: r.layer,
    metrics: r.metrics_json ?? {},
    demo: r.demo,
    createdAt: r.created_at,
  }));
export type RewardModel = z.output<typeof RewardModelRowSchema>;

export const RunStatus = z.enum(['running', 'done', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof RunStatus>;
export const ScoringRunRowSchema = z
  .object({
    id: z.number(),
    dataset_id: z.number(),
    reward_model_id: z.string(),
    status: RunStatus,
    rule: z.string().nullable(),
    threshold: z.number().nullable(),
    params_json: json(z.record(z.string(), z.unknown())),
    job_id: z.string().nullable(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .transform((r) => ({
    id: r.id,
    datasetId: r.dataset_id,
    rewardModelId: r.reward_model_id,
    status: r.status,
    rule: r.rule,
    threshold: r.threshold,
    params: r.params_json ?? {},
    jobId: r.job_id,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  }));
export type ScoringRun = z.output<typeof ScoringRunRowSchema>;

export const ScoreRowSchema = z
  .object({
    run_id: z.number(),
    pair_id: z.number(),
    score_chosen: z.number(),
    score_rejected: z.number(),
    margin: z.number(),
    p_chosen: z.number().nullable(),
    explanation_json: json(z.unknown()),
  })
  .transform((r) => ({
    runId: r.run_id,
    pairId: r.pair_id,
    scoreChosen: r.score_chosen,
    scoreRejected: r.score_rejected,
    margin: r.margin,
    pChosen: r.p_chosen,
    explanation: r.explanation_json,
  }));
export type Score = z.output<typeof ScoreRowSchema>;

export const FilterRule = z.enum(['paper', 'margin']);
export type FilterRule = z.infer<typeof FilterRule>;
export const VerdictCountsSchema = z.object({ keep: z.number(), drop: z.number(), uncertain: z.number(), unscored: z.number() });
export type VerdictCounts = z.infer<typeof VerdictCountsSchema>;
export const FilterRowSchema = z
  .object({
    id: z.number(),
    dataset_id: z.number(),
    run_id: z.number(),
    rule: FilterRule,
    threshold: z.number(),
    band: z.number(),
    counts_json: json(VerdictCountsSchema),
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    datasetId: r.dataset_id,
    runId: r.run_id,
    rule: r.rule,
    threshold: r.threshold,
    band: r.band,
    counts: r.counts_json!,
    createdAt: r.created_at,
  }));
export type FilterApplication = z.output<typeof FilterRowSchema>;

export const DecisionGroupRowSchema = z
  .object({
    id: z.number(),
    dataset_id: z.number(),
    kind: z.enum(['do', 'undo', 'redo']),
    target_group: z.number().nullable(),
    action: z.string(),
    actor: z.string(),
    description: z.string().nullable(),
    count: z.number(),
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    datasetId: r.dataset_id,
    kind: r.kind,
    targetGroup: r.target_group,
    action: r.action,
    actor: r.actor,
    description: r.description,
    count: r.count,
    createdAt: r.created_at,
  }));
export type DecisionGroup = z.output<typeof DecisionGroupRowSchema>;

export const DecisionRowSchema = z
  .object({
    id: z.number(),
    group_id: z.number(),
    pair_id: z.number(),
    action: z.enum(['keep', 'drop', 'swap', 'note', 'clear', 'revert']),
    old_decision: HumanDecision.nullable(),
    new_decision: HumanDecision.nullable(),
    old_note: z.string().nullable(),
    new_note: z.string().nullable(),
    auto_verdict: AutoVerdict.nullable(),
    filter_id: z.number().nullable(),
    run_id: z.number().nullable(),
    reward_model_id: z.string().nullable(),
    threshold: z.number().nullable(),
    reverts: z.number().nullable(),
    actor: z.string(),
    created_at: z.string(),
  })
  .transform((r) => ({
    id: r.id,
    groupId: r.group_id,
    pairId: r.pair_id,
    action: r.action,
    oldDecision: r.old_decision,
    newDecision: r.new_decision,
    oldNote: r.old_note,
    newNote: r.new_note,
    autoVerdict: r.auto_verdict,
    filterId: r.filter_id,
    runId: r.run_id,
    rewardModelId: r.reward_model_id,
    threshold: r.threshold,
    reverts: r.reverts,
    actor: r.actor,
    createdAt: r.created_at,
  }));
export type Decision = z.output<typeof DecisionRowSchema>;

export const LatentLabelRowSchema = z
  .object({
    model_id: z.string(),
    sae_id: z.string(),
    latent_index: z.number(),
    description: z.string(),
    explanation_model: z.string().nullable(),
    score: z.number().nullable(),
    source_file: z.string().nullable(),
    imported_at: z.string(),
  })
  .transform((r) => ({
    modelId: r.model_id,
    saeId: r.sae_id,
    latentIndex: r.latent_index,
    description: r.description,
    explanationModel: r.explanation_model,
    score: r.score,
    sourceFile: r.source_file,
    importedAt: r.imported_at,
  }));
export type LatentLabel = z.output<typeof LatentLabelRowSchema>;

export const JobStatus = z.enum(['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted']);
export type JobStatus = z.infer<typeof JobStatus>;
export const JobRowSchema = z
  .object({
    id: z.string(),
    kind: z.string(),
    params_json: json(z.unknown()),
    status: JobStatus,
    done: z.number(),
    total: z.number().nullable(),
    message: z.string().nullable(),
    checkpoint_json: json(z.unknown()),
    result_json: json(z.unknown()),
    error: z.string().nullable(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    updated_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .transform((r) => ({
    id: r.id,
    kind: r.kind,
    params: r.params_json,
    status: r.status,
    done: r.done,
    total: r.total,
    message: r.message,
    checkpoint: r.checkpoint_json,
    result: r.result_json,
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  }));
export type JobRecord = z.output<typeof JobRowSchema>;

export const now = (): string => new Date().toISOString();
