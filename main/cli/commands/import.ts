import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { registerDataJobs, FORMATS, type ImportResult } from '../../engine/data';
import { JobRunner } from '../../engine/jobs';
import { openStore } from '../../engine/store';
import { action, printJson, progress } from '../output';
import { formatBytes, MAX_MAX_LINE_BYTES, parseByteSize } from '../../engine/data/source';

/** Runs a registered store job in this process: Ctrl-C cancels it cleanly (the transaction rolls back). */
export async function runCliJob<R>(runner: JobRunner, kind: string, params: unknown, label: string, quiet: boolean): Promise<R> {
  const handle = runner.start<R>(kind, params);
  const onSigint = () => {
    progress(`${label}: cancelling…`);
    handle.cancel();
  };
  process.once('SIGINT', onSigint);
  let lastPct = -1;
  const unsubscribe = runner.subscribe((s) => {
    if (quiet || s.status !== 'running' || !s.total) return;
    const pct = Math.floor((100 * s.done) / s.total);
    if (pct >= lastPct + 10) {
      lastPct = pct;
      const eta = s.etaSeconds !== null ? `, ~${Math.ceil(s.etaSeconds)} s left` : '';
      progress(`${label}: ${pct}%${s.message ? ` (${s.message})` : ''}${eta}`);
    }
  }, handle.id);
  try {
    return await handle.result;
  } finally {
    unsubscribe();
    process.off('SIGINT', onSigint);
  }
}

export function register(program: Command): void {
  program
    .command('import')
    .description('import preference pairs from a JSONL / JSON array file (optionally gzip) into a dataset')
    .argument('<file>', 'TRL standard or conversational, Anthropic HH, PKU-SafeRLHF or UltraFeedback-binarized rows')
    .requiredOption('--dataset <name>', 'dataset to create (or append to: duplicates are detected)')
    .option('--format <format>', `auto | ${FORMATS.join(' | ')}`, 'auto')
    .option('--strict', 'reject the whole file on any bad row (the database is left untouched)', false)
    .option('--pku-preference <label>', 'PKU-SafeRLHF: which label picks "chosen": safer | better', 'safer')
    .option('--source <label>', 'source label for rows without a "source" field (default: the file name)')
    .option('--max-line-bytes <size>', 'largest line / JSON-array element accepted, e.g. 64MiB, 200M, 1048576 (a longer one refuses the file)', '64MiB')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--json', 'print the import report as JSON on stdout', false)
    .action(
      action(async (file: string, o: { dataset: string; format: string; strict: boolean; pkuPreference: string; source?: string; maxLineBytes: string; db?: string; json: boolean }) => {
        if (o.format !== 'auto' && !(FORMATS as readonly string[]).includes(o.format)) {
          throw new InputError({ field: '--format', expected: `auto or one of ${FORMATS.join(', ')}`, got: o.format });
        }
        if (o.pkuPreference !== 'safer' && o.pkuPreference !== 'better') throw new InputError({ field: '--pku-preference', expected: 'safer or better', got: o.pkuPreference });
        const maxLineBytes = parseByteSize(o.maxLineBytes);
        if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1 || maxLineBytes > MAX_MAX_LINE_BYTES) {
          throw new InputError({ field: '--max-line-bytes', expected: `a size from 1 byte to ${formatBytes(MAX_MAX_LINE_BYTES)} (e.g. 64MiB, 200M, 1048576)`, got: o.maxLineBytes });
        }
        const store = openStore(o.db);
        try {
          const runner = registerDataJobs(new JobRunner(store));
          const r = await runCliJob<ImportResult>(
            runner,
            'import',
            { file, dataset: o.dataset, format: o.format, strict: o.strict, pkuPreference: o.pkuPreference, source: o.source, maxLineBytes },
            'import',
            o.json,
          );
          const report = {
            dataset: r.dataset,
            imported: r.imported,
            duplicates: r.duplicates,
            skipped: r.skipped,
            skippedTotal: r.skippedTotal,
            notes: r.notes,
            format: r.format,
            container: r.container,
            gzip: r.gzip,
            file: r.file,
            sha256: r.sha256,
            datasetId: r.datasetId,
            importId: r.importId,
          };
          if (o.json) printJson(report);
          else {
            process.stdout.write(`imported ${r.imported} pairs into "${r.dataset}" (format ${r.format}${r.gzip ? ', gzip' : ''}); ${r.duplicates} duplicates, ${r.skippedTotal} rows skipped\n`);
            for (const s of r.skipped.slice(0, 20)) process.stdout.write(`  line ${s.line}: ${s.reason}\n`);
            if (r.skippedTotal > 20) process.stdout.write(`  … ${r.skippedTotal - 20} more (use --json for all)\n`);
            if (r.notes.length) process.stdout.write(`  ${r.notes.length} rows with notes (e.g. line ${r.notes[0]!.line}: ${r.notes[0]!.note})\n`);
          }
        } finally {
          store.close();
        }
      }),
    );
}
