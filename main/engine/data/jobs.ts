import { z } from 'zod';

import type { JobRunner } from '../jobs';
import { FORMATS } from './formats';
import { exportDataset, type ExportResult } from './export';
import { importFile, type ImportResult } from './import';
import { MAX_MAX_LINE_BYTES } from './source';

export const ImportJobParams = z.object({
  file: z.string().min(1),
  dataset: z.string().min(1),
  format: z.enum(['auto', ...FORMATS]).default('auto'),
  strict: z.boolean().default(false),
  pkuPreference: z.enum(['safer', 'better']).default('safer'),
  source: z.string().optional(),
  maxLineBytes: z.number().int().min(1).max(MAX_MAX_LINE_BYTES).optional(),
});
export type ImportJobParams = z.input<typeof ImportJobParams>;

export const ExportJobParams = z.object({
  dataset: z.union([z.string().min(1), z.number().int()]),
  out: z.string().min(1),
  format: z.enum(['standard', 'conversational']).default('standard'),
  dropped: z.string().optional(),
  includeUndecided: z.boolean().default(false),
  includeUncertain: z.boolean().default(false),
  overwrite: z.boolean().default(false),
  /** Keep one pair per near-duplicate prompt group (sparserm/dedupe.ts). */
  onePerGroup: z.boolean().default(false),
});
export type ExportJobParams = z.input<typeof ExportJobParams>;

/**
 * Registers the 'import' and 'export' job kinds. Both are all-or-nothing (one transaction / atomic rename), so
 * resuming an interrupted one simply runs it again: there is no partial state to skip.
 */
export function registerDataJobs(runner: JobRunner): JobRunner {
  runner.define<z.output<typeof ImportJobParams>, ImportResult>(
    'import',
    async (p, ctx) =>
      importFile(ctx.store, p.file, {
        dataset: p.dataset,
        format: p.format,
        strict: p.strict,
        pkuPreference: p.pkuPreference,
        source: p.source,
        maxLineBytes: p.maxLineBytes,
        signal: ctx.signal,
        onProgress: (x) => ctx.progress(x.bytesRead, x.totalBytes, `${x.imported} pairs imported (${x.rows} rows read)`),
      }),
    ImportJobParams as never,
  );
  runner.define<z.output<typeof ExportJobParams>, ExportResult>(
    'export',
    async (p, ctx) =>
      exportDataset(ctx.store, {
        ...p,
        signal: ctx.signal,
        onProgress: (x) => ctx.progress(x.done, x.total, `${x.done}/${x.total} pairs`),
      }),
    ExportJobParams as never,
  );
  return runner;
}
