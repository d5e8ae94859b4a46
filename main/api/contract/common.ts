/** Shapes every workflow shares (ids, decisions, verdicts, jobs), and the app-wide operations: files and jobs. */
import { z } from 'zod';
import { empty, op, type OpTable } from './op';

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

export const fileOps = {
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
} as const satisfies OpTable;

export const jobOps = {
  // --- jobs -------------------------------------------------------------------------------------------------
  listJobs: op('Recent jobs, including interrupted ones that can be resumed.', empty, z.object({ jobs: z.array(Job) })),
  getJob: op('One job with its progress.', z.object({ jobId: Id }), Job),
  cancelJob: op('Ask a running job to stop.', z.object({ jobId: Id }), Job),
  resumeJob: op('Resume an interrupted job without redoing finished batches.', z.object({ jobId: Id }), JobRef),
} as const satisfies OpTable;
