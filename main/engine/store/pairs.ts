import { z } from 'zod';

import { InputError } from '../errors';
import type { Db } from './db';
import { AutoVerdict, EffectiveDecision, ExportPairSchema, HumanDecision, PairRowSchema, type ExportPair, type Message, type Pair } from './rows';

/** A pair ready to insert (what the importers produce). */
export interface NewPair {
  line: number | null;
  source: string | null;
  externalId: string | null;
  prompt: string;
  chosen: string;
  rejected: string;
  promptMessages?: Message[] | null;
  chosenMessages?: Message[] | null;
  rejectedMessages?: Message[] | null;
  metadata?: Record<string, unknown> | null;
  raw?: string | null;
  contentHash: string;
}

export const PairSort = z.enum(['id', '-id', 'margin', '-margin', 'doubt', 'line', 'decision', '-decision', 'source', '-source']);
export type PairSort = z.infer<typeof PairSort>;

/** Filters of the review list; also what bulk decisions and export select with. */
export const PairFilterSchema = z.object({
  datasetId: z.number().int(),
  effective: z.array(EffectiveDecision).optional(),
  /** Automatic verdict; 'none' = not scored / no filter applied. */
  verdict: z.array(z.union([AutoVerdict, z.literal('none')])).optional(),
  human: z.array(z.union([HumanDecision, z.literal('none')])).optional(),
  marginMin: z.number().optional(),
  marginMax: z.number().optional(),
  source: z.array(z.string()).optional(),
  /** true = only pairs with a human decision; false = only pairs without one. */
  hasOverride: z.boolean().optional(),
  /** true = only pairs where the human decision contradicts the automatic verdict. */
  disagrees: z.boolean().optional(),
  hasNote: z.boolean().optional(),
  /** Pairs where this SAE latent fired (in `latentRunId`, default: the run of each pair's current verdicts). */
  latent: z.number().int().nonnegative().optional(),
  latentRunId: z.number().int().optional(),
  /** Full-text query over prompt / chosen / rejected (words are ANDed; `word*` = prefix; "quoted phrase"). */
  text: z.string().optional(),
  ids: z.array(z.number().int()).optional(),
  /** Pairs of one near-duplicate prompt group (its id: the group's smallest pair id; store/prompt-groups.ts). */
  promptGroup: z.number().int().optional(),
});
export type PairFilter = z.infer<typeof PairFilterSchema>;

export const PairQuerySchema = PairFilterSchema.extend({
  sort: PairSort.default('id'),
  offset: z.number().int().nonnegative().default(0),
  limit: z.number().int().positive().max(5000).default(50),
});
export type PairQuery = z.input<typeof PairQuerySchema>;

export interface PairPage {
  total: number;
  offset: number;
  limit: number;
  items: Pair[];
}

export interface HistogramBin {
  lo: number;
  hi: number;
  counts: Record<EffectiveDecision, number>;
}

/**
 * Turns what a curator types into a safe FTS5 query: bare words become quoted terms (so punctuation and FTS
 * operators in the text cannot cause a syntax error), `word*` stays a prefix query, "…" stays a phrase.
 */
export function toFtsQuery(text: string): string | null {
  const parts: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] !== undefined) {
      const phrase = m[1].replace(/"/g, '').trim();
      if (phrase) parts.push(`"${phrase}"`);
    } else {
      let word = m[2]!;
      const prefix = word.endsWith('*');
      word = word.replace(/["*]/g, '');
      // Tokens with no letter/digit would match nothing useful (and unicode61 drops them anyway).
      if (!/[\p{L}\p{N}]/u.test(word)) continue;
      parts.push(`"${word}"${prefix ? '*' : ''}`);
    }
  }
  return parts.length ? parts.join(' AND ') : null;
}

/** The WHERE clause (alias `p` for pairs) for a filter; shared by list, counts, bulk decisions and export. */
export function buildPairWhere(f: PairFilter): { sql: string; params: unknown[] } {
  const where: string[] = ['p.dataset_id = ?'];
  const params: unknown[] = [f.datasetId];
  const inList = (col: string, values: readonly string[], noneValue?: string) => {
    const real = values.filter((v) => v !== noneValue);
    const parts: string[] = [];
    if (real.length) {
      parts.push(`${col} IN (${real.map(() => '?').join(',')})`);
      params.push(...real);
    }
    if (noneValue && values.includes(noneValue)) parts.push(`${col} IS NULL`);
    where.push(parts.length ? `(${parts.join(' OR ')})` : '0');
  };
  if (f.effective) inList('p.effective', f.effective);
  if (f.verdict) inList('p.auto_verdict', f.verdict, 'none');
  if (f.human) inList('p.human_decision', f.human, 'none');
  if (f.source) inList('p.source', f.source);
  if (f.marginMin !== undefined) {
    where.push('p.margin >= ?');
    params.push(f.marginMin);
  }
  if (f.marginMax !== undefined) {
    where.push('p.margin <= ?');
    params.push(f.marginMax);
  }
  if (f.hasOverride !== undefined) where.push(f.hasOverride ? 'p.human_decision IS NOT NULL' : 'p.human_decision IS NULL');
  if (f.hasNote !== undefined) where.push(f.hasNote ? "coalesce(p.note, '') <> ''" : "coalesce(p.note, '') = ''");
  if (f.disagrees !== undefined) {
    // swap means "the pair as labelled is wrong", which agrees with a drop verdict.
    const dis = `(p.human_decision IS NOT NULL AND p.auto_verdict IN ('keep','drop') AND
      (CASE p.human_decision WHEN 'keep' THEN 'keep' ELSE 'drop' END) <> p.auto_verdict)`;
    where.push(f.disagrees ? dis : `NOT ${dis}`);
  }
  if (f.latent !== undefined) {
    if (f.latentRunId !== undefined) {
      where.push('EXISTS (SELECT 1 FROM score_latents sl WHERE sl.run_id = ? AND sl.latent = ? AND sl.pair_id = p.id)');
      params.push(f.latentRunId, f.latent);
    } else {
      where.push(`EXISTS (SELECT 1 FROM score_latents sl JOIN filters fl ON fl.run_id = sl.run_id
                  WHERE fl.id = p.filter_id AND sl.latent = ? AND sl.pair_id = p.id)`);
      params.push(f.latent);
    }
  }
  if (f.text !== undefined && f.text.trim() !== '') {
    const q = toFtsQuery(f.text);
    if (q === null) where.push('0');
    else {
      where.push('p.id IN (SELECT rowid FROM pairs_fts WHERE pairs_fts MATCH ?)');
      params.push(q);
    }
  }
  if (f.ids) {
    where.push('p.id IN (SELECT value FROM json_each(?))');
    params.push(JSON.stringify(f.ids));
  }
  if (f.promptGroup !== undefined) {
    where.push('p.id IN (SELECT pair_id FROM prompt_groups WHERE group_id = ?)');
    params.push(f.promptGroup);
  }
  return { sql: where.join(' AND '), params };
}

/**
 * Review order of effective decisions for the 'decision' sort: what a curator checks first comes first — drops
 * (data about to be removed), swaps, uncertain, keeps, then undecided (nothing to review yet).
 */
export const DECISION_SORT_ORDER = ['drop', 'swap', 'uncertain', 'keep', 'undecided'] as const satisfies readonly EffectiveDecision[];
// Must stay textually the expression of the pairs_dataset_decision_* indexes (migration 5), or SQLite sorts instead.
const DECISION_RANK = "(CASE p.effective WHEN 'drop' THEN 0 WHEN 'swap' THEN 1 WHEN 'uncertain' THEN 2 WHEN 'keep' THEN 3 ELSE 4 END)";

const ORDER: Record<PairSort, string> = {
  id: 'p.id ASC',
  '-id': 'p.id DESC',
  margin: 'p.margin IS NULL, p.margin ASC, p.id ASC',
  '-margin': 'p.margin IS NULL, p.margin DESC, p.id ASC',
  doubt: 'p.doubt IS NULL, p.doubt ASC, p.id ASC',
  line: 'p.import_id ASC, p.line ASC, p.id ASC',
  // Descending keeps id ASC as the tie-breaker (file order inside a group), like '-margin'.
  decision: `${DECISION_RANK} ASC, p.id ASC`,
  '-decision': `${DECISION_RANK} DESC, p.id ASC`,
  // Code-point (BINARY) order; pairs without a source last in both directions.
  source: 'p.source IS NULL, p.source ASC, p.id ASC',
  '-source': 'p.source IS NULL, p.source DESC, p.id ASC',
};

/** The ORDER BY clause (alias `p`) of a sort; exported so tests can check its query plan. */
export function pairOrderBy(sort: PairSort): string {
  return ORDER[sort];
}

export class PairsRepo {
  private readonly insertStmt;
  constructor(private readonly db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO pairs(dataset_id, import_id, line, source, external_id, prompt, chosen, rejected,
         prompt_messages, chosen_messages, rejected_messages, metadata_json, raw_json, content_hash)
       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
       ON CONFLICT(dataset_id, content_hash) DO NOTHING`,
    );
  }

  /**
   * Inserts one pair; returns its id, or null when a pair with the same content already is in the dataset
   * (a duplicate). Call inside a transaction for speed and atomicity.
   */
  insert(datasetId: number, importId: number | null, p: NewPair): number | null {
    const js = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));
    const info = this.insertStmt.run(
      datasetId,
      importId,
      p.line,
      p.source,
      p.externalId,
      p.prompt,
      p.chosen,
      p.rejected,
      js(p.promptMessages),
      js(p.chosenMessages),
      js(p.rejectedMessages),
      js(p.metadata),
      p.raw ?? null,
      p.contentHash,
    );
    return info.changes === 1 ? Number(info.lastInsertRowid) : null;
  }

  /** Line of the pair already holding this content hash (for "duplicate of line N" reports). */
  lineOfHash(datasetId: number, contentHash: string): number | null {
    const r = this.db.prepare('SELECT line FROM pairs WHERE dataset_id = ? AND content_hash = ?').get(datasetId, contentHash) as
      | { line: number | null }
      | undefined;
    return r ? r.line : null;
  }

  get(id: number): Pair {
    const row = this.db.prepare('SELECT p.*, p.effective AS effective FROM pairs p WHERE p.id = ?').get(id);
    if (!row) throw new InputError({ field: 'pair', expected: 'an existing pair id', got: String(id) });
    return PairRowSchema.parse(row);
  }

  /** The review list: filters + sort + offset/limit, with the total count of matches. */
  list(query: PairQuery): PairPage {
    const q = PairQuerySchema.parse(query);
    const { sql, params } = buildPairWhere(q);
    try {
      const total = (this.db.prepare(`SELECT count(*) AS n FROM pairs p WHERE ${sql}`).get(...params) as { n: number }).n;
      // Deferred join: page through ids on the indexes only, then read the few full rows (raw rows are large).
      const rows = this.db
        .prepare(
          `SELECT p.*, p.effective AS effective FROM pairs p
           WHERE p.id IN (SELECT p.id FROM pairs p WHERE ${sql} ORDER BY ${ORDER[q.sort]} LIMIT ? OFFSET ?)
           ORDER BY ${ORDER[q.sort]}`,
        )
        .all(...params, q.limit, q.offset);
      return { total, offset: q.offset, limit: q.limit, items: rows.map((r) => PairRowSchema.parse(r)) };
    } catch (err) {
      if (err instanceof Error && /fts5/i.test(err.message)) {
        throw new InputError({ field: 'text', expected: 'a valid search query', got: err.message }, err);
      }
      throw err;
    }
  }

  /**
   * 0-based position of pair `id` in the list of `query` (filter + sort), or null when it does not match. The UI
   * keeps the curator's pair selected across filter and sort changes with it.
   */
  position(query: Omit<PairQuery, 'offset' | 'limit'>, id: number): number | null {
    const q = PairQuerySchema.parse(query);
    const { sql, params } = buildPairWhere(q);
    const r = this.db
      .prepare(`SELECT rn FROM (SELECT p.id AS id, row_number() OVER (ORDER BY ${ORDER[q.sort]}) - 1 AS rn FROM pairs p WHERE ${sql}) WHERE id = ?`)
      .get(...params, id) as { rn: number } | undefined;
    return r ? r.rn : null;
  }

  count(filter: PairFilter): number {
    const { sql, params } = buildPairWhere(PairFilterSchema.parse(filter));
    return (this.db.prepare(`SELECT count(*) AS n FROM pairs p WHERE ${sql}`).get(...params) as { n: number }).n;
  }

  /** Ids matching a filter, in id order. */
  ids(filter: PairFilter): number[] {
    const { sql, params } = buildPairWhere(PairFilterSchema.parse(filter));
    return (this.db.prepare(`SELECT p.id FROM pairs p WHERE ${sql} ORDER BY p.id`).pluck().all(...params) as number[]);
  }

  /** Streams matching pairs in id order without loading them all (export, feature extraction). */
  *iterate(filter: PairFilter, opts: { batch?: number; afterId?: number } = {}): Generator<Pair> {
    const f = PairFilterSchema.parse(filter);
    const { sql, params } = buildPairWhere(f);
    const batch = opts.batch ?? 1000;
    const stmt = this.db.prepare(`SELECT p.*, p.effective AS effective FROM pairs p WHERE ${sql} AND p.id > ? ORDER BY p.id LIMIT ?`);
    let after = opts.afterId ?? 0;
    for (;;) {
      const rows = stmt.all(...params, after, batch);
      if (rows.length === 0) return;
      for (const r of rows) {
        const p = PairRowSchema.parse(r);
        after = p.id;
        yield p;
      }
      if (rows.length < batch) return;
    }
  }

  /**
   * Streams the columns an export needs (no raw row, no metadata: half the bytes), in id order, validated with a
   * narrower schema.
   */
  *iterateForExport(datasetId: number, opts: { batch?: number } = {}): Generator<ExportPair> {
    const stmt = this.db.prepare(
      `SELECT id, external_id, prompt, chosen, rejected, prompt_messages, chosen_messages, rejected_messages, effective,
              human_decision, auto_verdict, margin, note
       FROM pairs WHERE dataset_id = ? AND id > ? ORDER BY id LIMIT ?`,
    );
    const batch = opts.batch ?? 2000;
    let after = 0;
    for (;;) {
      const rows = stmt.all(datasetId, after, batch);
      for (const r of rows) {
        const p = ExportPairSchema.parse(r);
        after = p.id;
        yield p;
      }
      if (rows.length < batch) return;
    }
  }

  sources(datasetId: number): { source: string | null; pairs: number }[] {
    return this.db
      .prepare('SELECT source, count(*) AS pairs FROM pairs WHERE dataset_id = ? GROUP BY source ORDER BY pairs DESC')
      .all(datasetId) as { source: string | null; pairs: number }[];
  }

  /**
   * Margin histogram of the current verdicts, split by effective decision (for the coloured histogram).
   * Bins span [min, max] of the matching margins unless given.
   */
  marginHistogram(filter: PairFilter, opts: { bins?: number; lo?: number; hi?: number } = {}): HistogramBin[] {
    const { sql, params } = buildPairWhere(PairFilterSchema.parse(filter));
    const bins = Math.max(1, Math.min(500, opts.bins ?? 40));
    const range = this.db.prepare(`SELECT min(p.margin) AS lo, max(p.margin) AS hi FROM pairs p WHERE ${sql} AND p.margin IS NOT NULL`).get(...params) as {
      lo: number | null;
      hi: number | null;
    };
    const lo = opts.lo ?? range.lo;
    const hi = opts.hi ?? range.hi;
    if (lo === null || hi === null || lo === undefined || hi === undefined) return [];
    const width = hi > lo ? (hi - lo) / bins : 1;
    const out: HistogramBin[] = Array.from({ length: bins }, (_, i) => ({
      lo: lo + i * width,
      hi: lo + (i + 1) * width,
      counts: { keep: 0, drop: 0, swap: 0, uncertain: 0, undecided: 0 },
    }));
    const rows = this.db
      .prepare(
        `SELECT min(?, max(0, CAST((p.margin - ?) / ? AS INTEGER))) AS b, p.effective AS e, count(*) AS n
         FROM pairs p WHERE ${sql} AND p.margin IS NOT NULL AND p.margin >= ? AND p.margin <= ? GROUP BY b, e`,
      )
      .all(bins - 1, lo, width, ...params, lo, hi) as { b: number; e: EffectiveDecision; n: number }[];
    for (const r of rows) out[r.b]!.counts[r.e] += r.n;
    return out;
  }
}
