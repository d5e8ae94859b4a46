import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';

import { CancelledError, InputError, throwIfAborted } from '../errors';
import { now, type ImportReport, type SkippedRow, type Store } from '../store';
import { detectFormat, FORMATS, normalizeRow, RowError, type FormatName, type FormatOptions } from './formats';
import { contentHash } from './hash';
import { copyStagedHere, copyStagedInWorker, type CopyArgs } from './copy-staged';
import { SourceReader, type RawRecord } from './source';
import { findUnrepresentable, unrepresentableReason } from './text';

export interface ImportOptions extends FormatOptions {
  /** Dataset name; created if it does not exist, appended to otherwise (duplicates across files are detected). */
  dataset: string;
  format?: FormatName | 'auto';
  /** Reject the whole file on the first bad row, leaving the database untouched. */
  strict?: boolean;
  /** Source label for rows without a "source" field (default: the file's name). */
  source?: string;
  /**
   * Largest line (JSONL) / element (JSON array) accepted, in bytes; default 64 MiB. A longer one refuses the file
   * with its line number as soon as the limit is passed (memory stays bounded by it).
   */
  maxLineBytes?: number;
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
 * Streams a preference file into a dataset. The rows land in ONE transaction (the dataset, or this file's rows, are
 * absent or complete, even after kill -9). Lenient by default: bad rows are skipped and reported {line, reason};
 * with `strict` the first bad row aborts before the store is touched. Parsing/validation (the slow part) goes to a
 * scratch database first, so the store is write-locked only for the final copy.
 */
export async function importFile(store: Store, file: string, opts: ImportOptions): Promise<ImportResult> {
  const abs = path.resolve(file);
  const reader = new SourceReader(abs, { maxLineBytes: opts.maxLineBytes });
  const datasetName = opts.dataset.trim();
  if (!datasetName) throw new InputError({ field: 'dataset', expected: 'a non-empty dataset name' });
  if (opts.format && opts.format !== 'auto' && !FORMATS.includes(opts.format)) {
    throw new InputError({ field: 'format', expected: `auto or one of ${FORMATS.join(', ')}`, got: String(opts.format) });
  }
  const startedAt = now();
  const skipped: SkippedRow[] = [];
  let skippedTotal = 0;
  const notes: { line: number; note: string }[] = [];
  const duplicateLines: ImportReport['duplicateLines'] = [];
  let staged = 0;
  let duplicates = 0;
  let rows = 0;
  let format: FormatName | null = opts.format && opts.format !== 'auto' ? opts.format : null;

  const skip = (line: number, reason: string) => {
    if (opts.strict) throw new InputError({ file: abs, line, expected: `a valid row in strict mode (nothing was imported): ${reason}` });
    skippedTotal++;
    if (skipped.length < MAX_REPORTED) skipped.push({ line, reason });
  };

  // Phase 1 parses and validates into a scratch database beside the store, without any lock on the store, so the
  // app keeps reading AND writing (decisions) meanwhile. Phase 2 copies it in ONE transaction.
  const stagingDir = store.path === ':memory:' ? os.tmpdir() : path.dirname(store.path);
  removeStaleStaging(stagingDir);
  const stagingFile = path.join(stagingDir, `.sparserm-import-${process.pid}-${randomBytes(4).toString('hex')}.staging.db`);
  const staging = new Database(stagingFile);
  let records: AsyncGenerator<RawRecord> | undefined;
  try {
    staging.pragma('journal_mode = OFF');
    staging.pragma('synchronous = OFF');
    staging.exec(`CREATE TABLE staged (line INTEGER PRIMARY KEY, source TEXT, external_id TEXT, prompt TEXT NOT NULL, chosen TEXT NOT NULL,
      rejected TEXT NOT NULL, prompt_messages TEXT, chosen_messages TEXT, rejected_messages TEXT, metadata_json TEXT, raw_json TEXT,
      content_hash TEXT NOT NULL UNIQUE)`);
    const stage = staging.prepare(
      `INSERT INTO staged VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(content_hash) DO NOTHING`,
    );
    const stagedLine = staging.prepare('SELECT line FROM staged WHERE content_hash = ?').pluck();
    const existing = store.datasets.byName(datasetName);
    const existingLine = existing ? store.db.prepare('SELECT line FROM pairs WHERE dataset_id = ? AND content_hash = ?') : null;

    records = reader.records();
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
    const defaultSource = opts.source ?? path.basename(abs);
    const js = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));

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
      // Lone surrogates (from \ud800-style escapes) cannot be stored as UTF-8: report the row, never store it.
      const bad = findUnrepresentable('text' in rec ? rec.text : null, value);
      if (bad) return skip(rec.line, unrepresentableReason(bad));
      const hash = contentHash(n.prompt, n.chosen, n.rejected);
      const dupOfExisting = existingLine ? (existingLine.get(existing!.id, hash) as { line: number | null } | undefined) : undefined;
      if (dupOfExisting) {
        duplicates++;
        if (duplicateLines.length < MAX_REPORTED) duplicateLines.push({ line: rec.line, duplicateOf: dupOfExisting.line });
        return;
      }
      const info = stage.run(
        rec.line,
        n.source ?? defaultSource,
        n.externalId ?? null,
        n.prompt,
        n.chosen,
        n.rejected,
        js(n.promptMessages),
        js(n.chosenMessages),
        js(n.rejectedMessages),
        js(n.metadata),
        'text' in rec ? rec.text : null,
        hash,
      );
      if (info.changes === 0) {
        duplicates++;
        if (duplicateLines.length < MAX_REPORTED) duplicateLines.push({ line: rec.line, duplicateOf: (stagedLine.get(hash) as number | undefined) ?? null });
      } else {
        staged++;
        if (n.note && notes.length < MAX_REPORTED) notes.push({ line: rec.line, note: n.note });
      }
    };

    staging.exec('BEGIN');
    for (const h of head) handle(h.rec, h.value, h.parseError);
    while (!next.done) {
      const p = parse(next.value);
      handle(next.value, p.value, p.parseError);
      if (rows % YIELD_EVERY === 0) {
        opts.onProgress?.({ bytesRead: reader.bytesRead, totalBytes: reader.info.bytes, rows, imported: staged });
        await new Promise<void>((r) => setImmediate(r));
        if (opts.signal?.aborted) throw new CancelledError();
      }
      next = await records.next();
    }
    staging.exec('COMMIT');
    if (staged === 0 && duplicates === 0) {
      throw new InputError({
        file: abs,
        expected: 'at least one valid preference pair',
        got: skippedTotal ? `${skippedTotal} invalid rows (first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : 'no rows',
      });
    }
    throwIfAborted(opts.signal);
    staging.close();

    // Phase 2: one transaction on the store, in a worker thread with its own connection (file stores) so this
    // thread stays responsive; on this thread for in-memory stores.
    const report: ImportReport = { skipped, duplicateLines, notes };
    const copyArgs: CopyArgs = {
      stagingFile,
      datasetName,
      file: abs,
      sha256: reader.sha256,
      bytes: reader.info.bytes,
      format: fmt,
      optionsJson: JSON.stringify({ format: opts.format ?? 'auto', strict: !!opts.strict, pkuPreference: opts.pkuPreference ?? 'safer' }),
      reportJson: JSON.stringify(report),
      skipped: skipped.length,
      duplicates,
      staged,
      startedAt,
      now: now(),
    };
    const copied = store.path === ':memory:' ? copyStagedHere(store.db, copyArgs) : await copyStagedInWorker(store.path, copyArgs);
    const imported = copied.imported;
    duplicates = copied.duplicates;
    const dataset = { id: copied.datasetId, name: copied.datasetName };
    const importId = copied.importId;
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
    // Stopping early (strict error, cancel) closes the source file now rather than at garbage collection.
    await records?.return(undefined).catch(() => undefined);
    if (staging.open) staging.close();
    fs.rmSync(stagingFile, { force: true });
    fs.rmSync(stagingFile + '-journal', { force: true });
  }
}

/** Staging files left by a killed import (their pid is gone) are deleted. */
function removeStaleStaging(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^\.sparserm-import-(\d+)-[0-9a-f]+\.staging\.db(-journal)?$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
    }
    if (!alive) fs.rmSync(path.join(dir, n), { force: true });
  }
}
