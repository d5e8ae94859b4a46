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

/** A JSON column whose NULL reads as `fallback()` (older rows, optional metadata). */
const jsonOr = <T extends z.ZodType>(inner: T, fallback: () => z.output<T>) => json(inner).transform((v) => v ?? fallback());

/** A JSON column that must be present. */
const jsonRequired = <T extends z.ZodType>(inner: T) =>
  json(inner).transform((v, ctx) => {
    if (v === null) {
      ctx.addIssue({ code: 'custom', message: 'missing JSON column' });
      return z.NEVER;
    }
    return v;
  });

type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
/** Column → field: snake_case → camelCase, and a `_json` suffix dropped (the column's value is parsed JSON). */
type FieldName<S extends string> = S extends `${infer B}_json` ? CamelCase<B> : CamelCase<S>;
type CamelRow<T> = { [K in keyof T & string as FieldName<K>]: T[K] };

function fieldName(column: string): string {
  return column.replace(/_json$/, '').replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A row schema: validates the snake_case columns, returns the camelCase object the rest of the app uses. */
function row<S extends Record<string, z.ZodType>>(columns: S) {
  // Names are mapped once per schema, not per row: exports read 100k+ rows through these.
  const names = Object.keys(columns).map((k) => [k, fieldName(k)] as const);
  return z.object(columns).transform((r) => {
    const src = r as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [column, field] of names) out[field] = src[column];
    return out as CamelRow<z.output<z.ZodObject<S>>>;
  });
}

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

export const DatasetRowSchema = row({ id: z.number(), name: z.string(), description: z.string().nullable(), demo: bool, created_at: z.string() });
export type Dataset = z.output<typeof DatasetRowSchema>;

export const SkippedRowSchema = z.object({ line: z.number(), reason: z.string() });
export type SkippedRow = z.infer<typeof SkippedRowSchema>;
export const ImportReportSchema = z.object({
  skipped: z.array(SkippedRowSchema),
  duplicateLines: z.array(z.object({ line: z.number(), duplicateOf: z.number().nullable() })),
  notes: z.array(z.object({ line: z.number(), note: z.string() })).default([]),
});
export type ImportReport = z.infer<typeof ImportReportSchema>;

export const ImportRowSchema = row({
    id: z.number(),
    dataset_id: z.number(),
    file: z.string(),
    file_sha256: z.string(),
    file_bytes: z.number(),
    format: z.string(),
    options_json: jsonOr(z.record(z.string(), z.unknown()), () => ({})),
    imported: z.number(),
    duplicates: z.number(),
    skipped: z.number(),
    report_json: jsonOr(ImportReportSchema, () => ({ skipped: [], duplicateLines: [], notes: [] })),
    started_at: z.string(),
    finished_at: z.string(),
  });
export type ImportRecord = z.output<typeof ImportRowSchema>;

export const PairRowSchema = row({
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
    /** The original row exactly as read (JSON text, kept unparsed), for audit. */
    raw_json: z.string().nullable(),
    content_hash: z.string(),
    filter_id: z.number().nullable(),
    auto_verdict: AutoVerdict.nullable(),
    margin: z.number().nullable(),
    /** |margin − τ| of the filter that produced the verdict: small = doubtful. */
    doubt: z.number().nullable(),
    human_decision: HumanDecision.nullable(),
    note: z.string().nullable(),
    effective: EffectiveDecision,
  });
export type Pair = z.output<typeof PairRowSchema>;

/** The subset of a pair an export reads (see PairsRepo.iterateForExport). */
export const ExportPairSchema = row({
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
  });
export type ExportPair = z.output<typeof ExportPairSchema>;

export const BackboneRowSchema = row({
    id: z.string(),
    name: z.string(),
    path: z.string().nullable(),
    config_hash: z.string().nullable(),
    architecture: z.string().nullable(),
    metadata_json: jsonOr(z.record(z.string(), z.unknown()), () => ({})),
    created_at: z.string(),
  });
export type Backbone = z.output<typeof BackboneRowSchema>;

export const SaeRowSchema = row({
    id: z.string(),
    name: z.string(),
    path: z.string().nullable(),
    hash: z.string().nullable(),
    backbone_id: z.string().nullable(),
    layer: z.number().nullable(),
    d_sae: z.number().nullable(),
    metadata_json: jsonOr(z.record(z.string(), z.unknown()), () => ({})),
    created_at: z.string(),
  });
export type Sae = z.output<typeof SaeRowSchema>;

export const RewardModelRowSchema = row({
    id: z.string(),
    name: z.string(),
    folder: z.string(),
    manifest_hash: z.string(),
    backbone_id: z.string().nullable(),
    sae_id: z.string().nullable(),
    layer: z.number().nullable(),
    metrics_json: jsonOr(z.record(z.string(), z.unknown()), () => ({})),
    demo: bool,
    created_at: z.string(),
  });
export type RewardModel = z.output<typeof RewardModelRowSchema>;

export const RunStatus = z.enum(['running', 'done', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof RunStatus>;
export const ScoringRunRowSchema = row({
    id: z.number(),
    dataset_id: z.number(),
    reward_model_id: z.string(),
    status: RunStatus,
    rule: z.string().nullable(),
    threshold: z.number().nullable(),
    params_json: jsonOr(z.record(z.string(), z.unknown()), () => ({})),
    job_id: z.string().nullable(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  });
export type ScoringRun = z.output<typeof ScoringRunRowSchema>;

const SideTruncation = z.object({ prompt: z.number().int().nonnegative(), response: z.number().int().nonnegative(), original: z.number().int().positive() });
export const TruncationSchema = z.object({ chosen: SideTruncation.optional(), rejected: SideTruncation.optional() });
export type ScoreTruncation = z.infer<typeof TruncationSchema>;

export const ScoreRowSchema = row({
    run_id: z.number(),
    pair_id: z.number(),
    score_chosen: z.number(),
    score_rejected: z.number(),
    margin: z.number(),
    p_chosen: z.number().nullable(),
    explanation_json: json(z.unknown()),
    /** Length policy: {chosen?, rejected?: {prompt, response, original}} tokens cut; null when nothing was cut. */
    truncation_json: json(TruncationSchema),
  });
export type Score = z.output<typeof ScoreRowSchema>;

export const FilterRule = z.enum(['paper', 'margin']);
export type FilterRule = z.infer<typeof FilterRule>;
export const VerdictCountsSchema = z.object({ keep: z.number(), drop: z.number(), uncertain: z.number(), unscored: z.number() });
export type VerdictCounts = z.infer<typeof VerdictCountsSchema>;
export const FilterRowSchema = row({
    id: z.number(),
    dataset_id: z.number(),
    run_id: z.number(),
    rule: FilterRule,
    threshold: z.number(),
    band: z.number(),
    counts_json: jsonRequired(VerdictCountsSchema),
    created_at: z.string(),
  });
export type FilterApplication = z.output<typeof FilterRowSchema>;

export const DecisionGroupRowSchema = row({
    id: z.number(),
    dataset_id: z.number(),
    kind: z.enum(['do', 'undo', 'redo']),
    target_group: z.number().nullable(),
    action: z.string(),
    actor: z.string(),
    description: z.string().nullable(),
    count: z.number(),
    created_at: z.string(),
  });
export type DecisionGroup = z.output<typeof DecisionGroupRowSchema>;

export const DecisionRowSchema = row({
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
  });
export type Decision = z.output<typeof DecisionRowSchema>;

export const LatentLabelRowSchema = row({
    model_id: z.string(),
    sae_id: z.string(),
    latent_index: z.number(),
    description: z.string(),
    explanation_model: z.string().nullable(),
    score: z.number().nullable(),
    source_file: z.string().nullable(),
    imported_at: z.string(),
  });
export type LatentLabel = z.output<typeof LatentLabelRowSchema>;

export const JobStatus = z.enum(['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted']);
export type JobStatus = z.infer<typeof JobStatus>;
export const JobRowSchema = row({
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
  });
export type JobRecord = z.output<typeof JobRowSchema>;

export const now = (): string => new Date().toISOString();
