import { InputError } from '../errors';
import type { Db } from './db';
import { DatasetRowSchema, EffectiveDecision, ImportRowSchema, now, type Dataset, type ImportRecord, type ImportReport } from './rows';

export type DecisionCounts = Record<EffectiveDecision, number>;

export interface DatasetSummary extends Dataset {
  pairs: number;
  /** Effective decision counts (human decision, else automatic verdict, else undecided). */
  counts: DecisionCounts;
  /** Pairs with a human decision (an override or a confirmation of the verdict). */
  humanDecided: number;
  imports: number;
}

export function emptyCounts(): DecisionCounts {
  return { keep: 0, drop: 0, swap: 0, uncertain: 0, undecided: 0 };
}

export class DatasetsRepo {
  constructor(private readonly db: Db) {}

  create(name: string, opts: { description?: string; demo?: boolean } = {}): Dataset {
    const clean = name.trim();
    if (!clean) throw new InputError({ field: 'dataset', expected: 'a non-empty dataset name' });
    if (this.byName(clean)) throw new InputError({ field: 'dataset', expected: `a dataset name not in use`, got: `"${clean}" (already exists)` });
    const info = this.db
      .prepare('INSERT INTO datasets(name, description, demo, created_at) VALUES (?, ?, ?, ?)')
      .run(clean, opts.description ?? null, opts.demo ? 1 : 0, now());
    return this.get(Number(info.lastInsertRowid));
  }

  get(id: number): Dataset {
    const row = this.db.prepare('SELECT * FROM datasets WHERE id = ?').get(id);
    if (!row) throw new InputError({ field: 'dataset', expected: 'an existing dataset id', got: String(id) });
    return DatasetRowSchema.parse(row);
  }

  byName(name: string): Dataset | undefined {
    const row = this.db.prepare('SELECT * FROM datasets WHERE name = ?').get(name.trim());
    return row ? DatasetRowSchema.parse(row) : undefined;
  }

  /** By name, or by numeric id; a clear error naming the known datasets otherwise. */
  resolve(nameOrId: string | number): Dataset {
    if (typeof nameOrId === 'number') return this.get(nameOrId);
    const found = this.byName(nameOrId) ?? (/^\d+$/.test(nameOrId) ? this.tryGet(Number(nameOrId)) : undefined);
    if (found) return found;
    const names = this.list().map((d) => d.name);
    throw new InputError({
      field: 'dataset',
      expected: names.length ? `one of the datasets: ${names.slice(0, 20).join(', ')}` : 'an imported dataset (none yet: run `sparserm import`)',
      got: `"${nameOrId}"`,
    });
  }

  private tryGet(id: number): Dataset | undefined {
    const row = this.db.prepare('SELECT * FROM datasets WHERE id = ?').get(id);
    return row ? DatasetRowSchema.parse(row) : undefined;
  }

  list(): Dataset[] {
    return this.db.prepare('SELECT * FROM datasets ORDER BY id').all().map((r) => DatasetRowSchema.parse(r));
  }

  countsByDecision(datasetId: number): DecisionCounts {
    const counts = emptyCounts();
    const rows = this.db
      .prepare('SELECT effective, count(*) AS n FROM pairs WHERE dataset_id = ? GROUP BY effective')
      .all(datasetId) as { effective: EffectiveDecision; n: number }[];
    for (const r of rows) counts[r.effective] = r.n;
    return counts;
  }

  summary(datasetId: number): DatasetSummary {
    const d = this.get(datasetId);
    const counts = this.countsByDecision(datasetId);
    const pairs = Object.values(counts).reduce((a, b) => a + b, 0);
    const humanDecided = (
      this.db.prepare('SELECT count(*) AS n FROM pairs WHERE dataset_id = ? AND human_decision IS NOT NULL').get(datasetId) as { n: number }
    ).n;
    const imports = (this.db.prepare('SELECT count(*) AS n FROM imports WHERE dataset_id = ?').get(datasetId) as { n: number }).n;
    return { ...d, pairs, counts, humanDecided, imports };
  }

  summaries(): DatasetSummary[] {
    return this.list().map((d) => this.summary(d.id));
  }

  /** Deletes a dataset with its pairs, runs, scores and history (one transaction). */
  delete(datasetId: number): void {
    this.get(datasetId);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM datasets WHERE id = ?').run(datasetId);
    })();
  }

  rename(datasetId: number, name: string): Dataset {
    const clean = name.trim();
    if (!clean) throw new InputError({ field: 'dataset', expected: 'a non-empty dataset name' });
    const other = this.byName(clean);
    if (other && other.id !== datasetId) throw new InputError({ field: 'dataset', expected: 'a dataset name not in use', got: `"${clean}"` });
    this.db.prepare('UPDATE datasets SET name = ? WHERE id = ?').run(clean, datasetId);
    return this.get(datasetId);
  }

  // ---- imports (the report of each file imported into a dataset) ----

  recordImport(r: {
    datasetId: number;
    file: string;
    fileSha256: string;
    fileBytes: number;
    format: string;
    options: Record<string, unknown>;
    imported: number;
    duplicates: number;
    report: ImportReport;
    startedAt: string;
  }): number {
    const info = this.db
      .prepare(
        `INSERT INTO imports(dataset_id, file, file_sha256, file_bytes, format, options_json, imported, duplicates, skipped, report_json, started_at, finished_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
      )
      .run(
        r.datasetId,
        r.file,
        r.fileSha256,
        r.fileBytes,
        r.format,
        JSON.stringify(r.options),
        r.imported,
        r.duplicates,
        r.report.skipped.length,
        JSON.stringify(r.report),
        r.startedAt,
        now(),
      );
    return Number(info.lastInsertRowid);
  }

  /** Updates the counts of an import record once its rows are in (same transaction as the rows). */
  finishImport(importId: number, imported: number, duplicates: number, report: ImportReport): void {
    this.db
      .prepare('UPDATE imports SET imported = ?, duplicates = ?, skipped = ?, report_json = ?, finished_at = ? WHERE id = ?')
      .run(imported, duplicates, report.skipped.length, JSON.stringify(report), now(), importId);
  }

  imports(datasetId: number): ImportRecord[] {
    return this.db.prepare('SELECT * FROM imports WHERE dataset_id = ? ORDER BY id').all(datasetId).map((r) => ImportRowSchema.parse(r));
  }
}
