/** Datasets: listing, import (with lineage of generated datasets) and export. */
import { z } from 'zod';
import { Id, JobRef } from './common';
import { empty, op, type OpTable } from './op';

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

export const datasetOps = {
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
} as const satisfies OpTable;

export const exportOps = {
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
} as const satisfies OpTable;
