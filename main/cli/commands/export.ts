import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { checkExportTargets, registerDataJobs, type ExportResult } from '../../engine/data';
import { JobRunner } from '../../engine/jobs';
import { openStore } from '../../engine/store';
import { action, printJson } from '../output';
import { runCliJob } from './import';

export function register(program: Command): void {
  program
    .command('export')
    .description('write the curated pairs (kept, swaps applied) as TRL JSONL, atomically, with <out>.provenance.json')
    .requiredOption('--dataset <name>', 'dataset')
    .requiredOption('--out <file>', 'output JSONL (written to a temp file in the same folder, then renamed)')
    .option('--format <format>', 'standard (prompt/chosen/rejected strings) | conversational ({role, content} lists)', 'standard')
    .option('--dropped <file>', 'also write the pairs left out, with their decisions, for audit')
    .option('--include-undecided', 'also export pairs with no verdict and no decision', false)
    .option('--include-uncertain', 'also export pairs the rule left uncertain and nobody reviewed', false)
    .option('--one-per-group', 'keep one pair per near-duplicate prompt group (the first in id order; groups from `sparserm dedupe`, computed when missing)', false)
    .option('--force', 'replace output files that already exist (their permissions are kept); without it an existing file is an error', false)
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'JSON on stdout', false)
    .action(
      action(async (o: { dataset: string; out: string; format: string; dropped?: string; includeUndecided: boolean; includeUncertain: boolean; onePerGroup: boolean; force: boolean; db?: string; json: boolean }) => {
        if (o.format !== 'standard' && o.format !== 'conversational') throw new InputError({ field: '--format', expected: 'standard or conversational', got: o.format });
        const store = openStore(o.db);
        try {
          store.datasets.resolve(o.dataset);
          // Refuse a bad output path (the database itself, the same file twice, an existing file without --force)
          // before a job is recorded; the export job checks again when it writes.
          checkExportTargets(store, { out: o.out, dropped: o.dropped, overwrite: o.force });
          const runner = registerDataJobs(new JobRunner(store));
          const r = await runCliJob<ExportResult>(
            runner,
            'export',
            { dataset: o.dataset, out: o.out, format: o.format, dropped: o.dropped, includeUndecided: o.includeUndecided, includeUncertain: o.includeUncertain, onePerGroup: o.onePerGroup, overwrite: o.force },
            'export',
            o.json,
          );
          if (o.json) printJson(r);
          else {
            const c = r.counts;
            process.stdout.write(`wrote ${c.exported} of ${c.total} pairs to ${r.out} (${c.total - c.exported} left out)\n`);
            process.stdout.write(`decisions: ${c.kept} keep, ${c.swapped} swap, ${c.dropped} drop, ${c.uncertain} uncertain, ${c.undecided} undecided; ${c.overridden} curator overrides of the rule\n`);
            if (c.groupDuplicates !== undefined) process.stdout.write(`one pair per near-duplicate prompt group: ${c.groupDuplicates} near-duplicate pairs left out\n`);
            process.stdout.write(`provenance: ${r.provenance}\n`);
            if (r.dropped) process.stdout.write(`left-out pairs: ${r.dropped}\n`);
          }
        } finally {
          store.close();
        }
      }),
    );
}
