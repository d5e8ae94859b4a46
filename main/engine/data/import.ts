import path from 'node:path';

import { CancelledError, InputError, throwIfAborted } from '../errors';
import { openDatabase } from '../store/db';
import { DatasetsRepo } from '../store/datasets';
import { PairsRepo } from '../store/pairs';
import { now, type ImportReport, type SkippedRow, type Store } from '../store';
import { detectFormat, FORMATS, normalizeRow, RowError, type FormatName, type FormatOptions } from './formats';
import { contentHash } from './hash';
import { SourceReader, type RawRecord } from './source';

export interface ImportOptions extends FormatOptions {
  /** Dataset name; created if it does not exist, appended to otherwise (duplicates across files are detected). */
  dataset: string;
  format?: FormatName | 'auto';
  /** Reject the whole file on the first bad row, leaving the database untouched. */
  strict?: boolean;
  /** Source label for rows without a "source" field (default: the file's name). */
  source?: string;
  signal?: AbortSignal;
  onProgress?: (p: { bytesRead: number; totalBytes: number; rows: number; imported: number }) => void;
}

export interface ImportResult {
  dataset: string;
  datasetId: number;
  importId: number;
  file: string;
  sha256: string;
  format: FormatName;
  container: 'jsonl' | 'json-array';
  gzip: boolean;
  imported: number;
  duplicates: number;
  /** Every skipped row (capped at MAX_REPORTED; skippedTotal has the true count). */
  skipped: SkippedRow[];
  skippedTotal: number;
  /** Rows imported with something to know (PKU rows where neither/both responses are safe…). */
  notes: { line: number; note: string }[];
}

const MAX_REPORTED = 10_000;
const DETECT_ROWS = 50;
const YIELD_EVERY = 1000;

/**
 * Streams a preference file into a dataset in ONE transaction (the dataset, or this file's rows, are absent or
 * complete, even after kill -9). Lenient by default: bad rows are skipped and reported {line, reason}; with `strict`
 * the first bad row aborts and rolls everything back. Uses its own connection so that a long import never mixes
 * with other writes made on the store's connection meanwhile.
 */
export async function importFile(store: Store, file: string, opts: ImportOptions): Promise<ImportResult> {
  const abs = path.resolve(file);
  const reader = new SourceReader(abs);
  const datasetName = opts.dataset.trim();
  if (!datasetName) throw new InputError({ field: 'dataset', expected: 'a non-empty dataset name' });
  if (opts.format && opts.format !== 'auto' && !FORMATS.includes(opts.format)) {
    throw new InputError({ field: 'format', expected: `auto or one of ${FORMATS.join(', ')}`, got: String(opts.format) });
  }
  const ownDb = store.path !== ':memory:';
  const db = ownDb ? openDatabase(store.path) : store.db;
  const datasets = new DatasetsRepo(db);
  const pairs = new PairsRepo(db);
  const startedAt = now();
  const skipped: SkippedRow[] = [];
  let skippedTotal = 0;
  const notes: { line: number; note: string }[] = [];
  const duplicateLines: ImportReport['duplicateLines'] = [];
  let imported = 0;
  let duplicates = 0;
  let rows = 0;
  let format: FormatName | null = opts.format && opts.format !== 'auto' ? opts.format : null;

  const skip = (line: number, reason: string) => {
    if (opts.strict) throw new InputError({ file: abs, line, expected: `a valid row in strict mode (nothing was imported): ${reason}` });
    skippedTotal++;
    if (skipped.length < MAX_REPORTED) skipped.push({ line, reason });
  };

  let began = false;
  try {
    const records = reader.records();
    // Buffer the first rows to detect the format (memory: DETECT_ROWS rows).
    const head: { rec: RawRecord; value?: unknown; parseError?: string }[] = [];
    const parse = (rec: RawRecord): { value?: unknown; parseError?: string } => {
      if ('error' in rec) return { parseError: rec.error };
      try {
        return { value: JSON.parse(rec.text) };
      } catch (e) {
        return { parseError: `broken JSON: ${(e as Error).message}` };
      }
    };
    let next = await records.next();
    while (!next.done && head.length < DETECT_ROWS) {
      head.push({ rec: next.value, ...parse(next.value) });
      next = await records.next();
    }
    if (format === null) {
      format = detectFormat(head.filter((h) => h.value !== undefined).map((h) => h.value));
      if (format === null) {
        const firstLine = head[0]?.rec.line;
        throw new InputError({
          file: abs,
          line: firstLine,
          expected:
            'preference pairs: objects with "chosen"/"rejected" (TRL standard or conversational, Anthropic HH, UltraFeedback) or "response_0"/"response_1" (PKU-SafeRLHF); pass --format to force one',
          got: head.length === 0 ? 'no rows' : head[0]!.parseError ? head[0]!.parseError : 'none of these fields',
        });
      }
    }
    const fmt = format;

    db.exec('BEGIN IMMEDIATE');
    began = true;
    // Rows are indexed for search in one statement at the end (see migration 2), not row by row.
    db.exec('UPDATE fts_control SET bulk_fts = 1');
    const firstId = ((db.prepare('SELECT max(id) AS m FROM pairs').get() as { m: number | null }).m ?? 0) + 1;
    let dataset = datasets.byName(datasetName);
    if (!dataset) dataset = datasets.create(datasetName);
    const importId = datasets.recordImport({
      datasetId: dataset.id,
      file: abs,
      fileSha256: '',
      fileBytes: reader.info.bytes,
      format: fmt,
      options: { format: opts.format ?? 'auto', strict: !!opts.strict, pkuPreference: opts.pkuPreference ?? 'safer' },
      imported: 0,
      duplicates: 0,
      report: { skipped: [], duplicateLines: [], notes: [] },
      startedAt,
    });
    const defaultSource = opts.source ?? path.basename(abs);

    const handle = (rec: RawRecord, value: unknown, parseError: string | undefined) => {
      rows++;
      if (parseError !== undefined) return skip(rec.line, parseError);
      let n;
      try {
        n = normalizeRow(fmt, value, opts);
      } catch (e) {
        if (e instanceof RowError) return skip(rec.line, e.message);
        throw e;
      }
      const hash = contentHash(n.prompt, n.chosen, n.rejected);
      const id = pairs.insert(dataset.id, importId, {
        line: rec.line,
        source: n.source ?? defaultSource,
        externalId: n.externalId ?? null,
        prompt: n.prompt,
        chosen: n.chosen,
        rejected: n.rejected,
        promptMessages: n.promptMessages ?? null,
        chosenMessages: n.chosenMessages ?? null,
        rejectedMessages: n.rejectedMessages ?? null,
        metadata: n.metadata ?? null,
        raw: 'text' in rec ? rec.text : null,
        contentHash: hash,
      });
      if (id === null) {
        duplicates++;
        if (duplicateLines.length < MAX_REPORTED) duplicateLines.push({ line: rec.line, duplicateOf: pairs.lineOfHash(dataset.id, hash) });
      } else {
        imported++;
        if (n.note && notes.length < MAX_REPORTED) notes.push({ line: rec.line, note: n.note });
      }
    };

    for (const h of head) handle(h.rec, h.value, h.parseError);
    while (!next.done) {
      const p = parse(next.value);
      handle(next.value, p.value, p.parseError);
      if (rows % YIELD_EVERY === 0) {
        opts.onProgress?.({ bytesRead: reader.bytesRead, totalBytes: reader.info.bytes, rows, imported });
        await new Promise<void>((r) => setImmediate(r));
        if (opts.signal?.aborted) throw new CancelledError();
      }
      next = await records.next();
    }
    if (imported === 0 && duplicates === 0) {
      throw new InputError({
        file: abs,
        expected: 'at least one valid preference pair',
        got: skippedTotal ? `${skippedTotal} invalid rows (first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : 'no rows',
      });
    }
    throwIfAborted(opts.signal);
    db.prepare('INSERT INTO pairs_fts(rowid, prompt, chosen, rejected) SELECT id, prompt, chosen, rejected FROM pairs WHERE id >= ? AND import_id = ?').run(firstId, importId);
    db.exec('UPDATE fts_control SET bulk_fts = 0');
    const report: ImportReport = { skipped, duplicateLines, notes };
    datasets.finishImport(importId, imported, duplicates, report);
    db.prepare('UPDATE imports SET file_sha256 = ? WHERE id = ?').run(reader.sha256, importId);
    db.exec('COMMIT');
    began = false;
    opts.onProgress?.({ bytesRead: reader.bytesRead, totalBytes: reader.info.bytes, rows, imported });
    return {
      dataset: dataset.name,
      datasetId: dataset.id,
      importId,
      file: abs,
      sha256: reader.sha256,
      format: fmt,
      container: reader.container ?? 'jsonl',
      gzip: reader.info.gzip,
      imported,
      duplicates,
      skipped,
      skippedTotal,
      notes,
    };
  } finally {
    if (began && db.inTransaction) db.exec('ROLLBACK');
    if (ownDb) db.close();
  }
}
