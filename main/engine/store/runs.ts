import { InputError } from '../errors';
import type { Db } from './db';
import { FilterRowSchema, ScoreRowSchema, ScoringRunRowSchema, now, type FilterApplication, type FilterRule, type RunStatus, type Score, type ScoringRun, type VerdictCounts } from './rows';

export interface NewScore {
  pairId: number;
  scoreChosen: number;
  scoreRejected: number;
  /** Defaults to scoreChosen − scoreRejected. */
  margin?: number;
  pChosen?: number | null;
  /** Free-form explanation (top latents, token spans…), stored as JSON. */
  explanation?: unknown;
  /** What the length policy cut from this pair (engine PairTruncation), stored as JSON; omit when nothing was cut. */
  truncation?: unknown;
  /** Latents that fired, for the "latent" filter of the review list. */
  latents?: { latent: number; side: 'chosen' | 'rejected' | 'diff'; activation?: number | null; contribution?: number | null }[];
}

export interface VerdictHistoryEntry {
  filterId: number;
  runId: number;
  rewardModelId: string;
  rule: FilterRule;
  threshold: number;
  band: number;
  verdict: 'keep' | 'drop' | 'uncertain';
  margin: number;
  createdAt: string;
}

/** Scoring runs, their scores, and the filter applications (automatic verdicts) computed from them. */
export class RunsRepo {
  constructor(private readonly db: Db) {}

  create(r: { datasetId: number; rewardModelId: string; params?: Record<string, unknown>; jobId?: string | null }): ScoringRun {
    const info = this.db
      .prepare(`INSERT INTO scoring_runs(dataset_id, reward_model_id, status, params_json, job_id, created_at) VALUES (?,?,?,?,?,?)`)
      .run(r.datasetId, r.rewardModelId, 'running', JSON.stringify(r.params ?? {}), r.jobId ?? null, now());
    return this.get(Number(info.lastInsertRowid));
  }

  finish(runId: number, status: Exclude<RunStatus, 'running'> = 'done'): ScoringRun {
    this.db.prepare('UPDATE scoring_runs SET status = ?, finished_at = ? WHERE id = ?').run(status, now(), runId);
    return this.get(runId);
  }

  get(runId: number): ScoringRun {
    const r = this.db.prepare('SELECT * FROM scoring_runs WHERE id = ?').get(runId);
    if (!r) throw new InputError({ field: 'run', expected: 'an existing scoring run id', got: String(runId) });
    return ScoringRunRowSchema.parse(r);
  }

  list(datasetId?: number): ScoringRun[] {
    const rows = datasetId === undefined
      ? this.db.prepare('SELECT * FROM scoring_runs ORDER BY id').all()
      : this.db.prepare('SELECT * FROM scoring_runs WHERE dataset_id = ? ORDER BY id').all(datasetId);
    return rows.map((r) => ScoringRunRowSchema.parse(r));
  }

  /** The most recent finished run of a dataset (what `sparserm filter` uses by default). */
  latestDone(datasetId: number): ScoringRun | undefined {
    const r = this.db.prepare("SELECT * FROM scoring_runs WHERE dataset_id = ? AND status = 'done' ORDER BY id DESC LIMIT 1").get(datasetId);
    return r ? ScoringRunRowSchema.parse(r) : undefined;
  }

  /** Adds scores in one transaction (idempotent per (run, pair): a re-scored batch replaces its rows). */
  addScores(runId: number, scores: readonly NewScore[]): void {
    const ins = this.db.prepare(
      `INSERT OR REPLACE INTO scores(run_id, pair_id, score_chosen, score_rejected, margin, p_chosen, explanation_json, truncation_json) VALUES (?,?,?,?,?,?,?,?)`,
    );
    const delLat = this.db.prepare('DELETE FROM score_latents WHERE run_id = ? AND pair_id = ?');
    const insLat = this.db.prepare('INSERT OR REPLACE INTO score_latents(run_id, pair_id, latent, side, activation, contribution) VALUES (?,?,?,?,?,?)');
    this.db.transaction(() => {
      for (const s of scores) {
        if (!Number.isFinite(s.scoreChosen) || !Number.isFinite(s.scoreRejected)) {
          throw new InputError({ field: 'score', expected: 'finite scores', got: `${s.scoreChosen}, ${s.scoreRejected} for pair ${s.pairId}` });
        }
        const margin = s.margin ?? s.scoreChosen - s.scoreRejected;
        ins.run(runId, s.pairId, s.scoreChosen, s.scoreRejected, margin, s.pChosen ?? null, s.explanation === undefined ? null : JSON.stringify(s.explanation), s.truncation === undefined ? null : JSON.stringify(s.truncation));
        if (s.latents) {
          delLat.run(runId, s.pairId);
          for (const l of s.latents) insLat.run(runId, s.pairId, l.latent, l.side, l.activation ?? null, l.contribution ?? null);
        }
      }
    })();
  }

  score(runId: number, pairId: number): Score | undefined {
    const r = this.db.prepare('SELECT * FROM scores WHERE run_id = ? AND pair_id = ?').get(runId, pairId);
    return r ? ScoreRowSchema.parse(r) : undefined;
  }

  scoresForPair(pairId: number): Score[] {
    return this.db.prepare('SELECT * FROM scores WHERE pair_id = ? ORDER BY run_id').all(pairId).map((r) => ScoreRowSchema.parse(r));
  }

  /** Pair ids already scored in a run (resume: skip them). */
  scoredPairIds(runId: number): Set<number> {
    return new Set(this.db.prepare('SELECT pair_id FROM scores WHERE run_id = ?').pluck().all(runId) as number[]);
  }

  scoreCount(runId: number): number {
    return (this.db.prepare('SELECT count(*) AS n FROM scores WHERE run_id = ?').get(runId) as { n: number }).n;
  }

  latentsForPair(runId: number, pairId: number): { latent: number; side: string; activation: number | null; contribution: number | null }[] {
    return this.db
      .prepare('SELECT latent, side, activation, contribution FROM score_latents WHERE run_id = ? AND pair_id = ? ORDER BY abs(coalesce(contribution, activation, 0)) DESC')
      .all(runId, pairId) as { latent: number; side: string; activation: number | null; contribution: number | null }[];
  }

  // ---- automatic verdicts ----

  /**
   * Applies the rule to a run's scores: verdict = uncertain if |margin − τ| < band, else keep if margin ≥ τ, else drop.
   * `paper` is the paper's rule (drop where s_chosen < s_rejected), i.e. τ = 0. Records a filter application with
   * one verdict per scored pair, and points every pair of the dataset at it (unscored pairs get no verdict).
   * Human decisions are untouched: they keep overriding the verdicts.
   */
  applyFilter(a: { datasetId: number; runId: number; rule: FilterRule; threshold?: number; band?: number }): FilterApplication {
    const run = this.get(a.runId);
    if (run.datasetId !== a.datasetId) throw new InputError({ field: 'run', expected: `a scoring run of dataset ${a.datasetId}`, got: `run ${a.runId} of dataset ${run.datasetId}` });
    const tau = a.rule === 'paper' ? 0 : (a.threshold ?? 0);
    const band = a.band ?? 0;
    if (!Number.isFinite(tau)) throw new InputError({ field: 'threshold', expected: 'a finite number', got: String(a.threshold) });
    if (!Number.isFinite(band) || band < 0) throw new InputError({ field: 'band', expected: 'a number ≥ 0', got: String(a.band) });
    return this.db.transaction(() => {
      const info = this.db
        .prepare('INSERT INTO filters(dataset_id, run_id, rule, threshold, band, counts_json, created_at) VALUES (?,?,?,?,?,?,?)')
        .run(a.datasetId, a.runId, a.rule, tau, band, '{"keep":0,"drop":0,"uncertain":0,"unscored":0}', now());
      const filterId = Number(info.lastInsertRowid);
      this.db
        .prepare(
          `INSERT INTO verdicts(filter_id, pair_id, verdict, margin)
           SELECT ?, s.pair_id, CASE WHEN abs(s.margin - ?) < ? THEN 'uncertain' WHEN s.margin >= ? THEN 'keep' ELSE 'drop' END, s.margin
           FROM scores s JOIN pairs p ON p.id = s.pair_id WHERE s.run_id = ? AND p.dataset_id = ?`,
        )
        .run(filterId, tau, band, tau, a.runId, a.datasetId);
      this.db
        .prepare('UPDATE pairs SET filter_id = ?, auto_verdict = NULL, margin = NULL, doubt = NULL WHERE dataset_id = ?')
        .run(filterId, a.datasetId);
      this.db
        .prepare(
          `UPDATE pairs SET auto_verdict = v.verdict, margin = v.margin, doubt = abs(v.margin - ?)
           FROM verdicts v WHERE v.filter_id = ? AND v.pair_id = pairs.id`,
        )
        .run(tau, filterId);
      const counts: VerdictCounts = { keep: 0, drop: 0, uncertain: 0, unscored: 0 };
      for (const r of this.db.prepare('SELECT verdict, count(*) AS n FROM verdicts WHERE filter_id = ? GROUP BY verdict').all(filterId) as { verdict: 'keep' | 'drop' | 'uncertain'; n: number }[]) {
        counts[r.verdict] = r.n;
      }
      const total = (this.db.prepare('SELECT count(*) AS n FROM pairs WHERE dataset_id = ?').get(a.datasetId) as { n: number }).n;
      counts.unscored = total - counts.keep - counts.drop - counts.uncertain;
      this.db.prepare('UPDATE filters SET counts_json = ? WHERE id = ?').run(JSON.stringify(counts), filterId);
      this.db.prepare('UPDATE scoring_runs SET rule = ?, threshold = ? WHERE id = ?').run(a.rule, tau, a.runId);
      return this.filter(filterId);
    }).immediate();
  }

  filter(filterId: number): FilterApplication {
    const r = this.db.prepare('SELECT * FROM filters WHERE id = ?').get(filterId);
    if (!r) throw new InputError({ field: 'filter', expected: 'an existing filter application id', got: String(filterId) });
    return FilterRowSchema.parse(r);
  }

  /** The filter whose verdicts are current for the dataset (the latest applied). */
  currentFilter(datasetId: number): FilterApplication | undefined {
    const r = this.db.prepare('SELECT * FROM filters WHERE dataset_id = ? ORDER BY id DESC LIMIT 1').get(datasetId);
    return r ? FilterRowSchema.parse(r) : undefined;
  }

  filters(datasetId: number): FilterApplication[] {
    return this.db.prepare('SELECT * FROM filters WHERE dataset_id = ? ORDER BY id').all(datasetId).map((r) => FilterRowSchema.parse(r));
  }

  /** Automatic verdicts a pair received over time (one per filter application that scored it). */
  verdictHistory(pairId: number): VerdictHistoryEntry[] {
    return this.db
      .prepare(
        `SELECT f.id AS filterId, f.run_id AS runId, r.reward_model_id AS rewardModelId, f.rule, f.threshold, f.band, v.verdict, v.margin, f.created_at AS createdAt
         FROM verdicts v JOIN filters f ON f.id = v.filter_id JOIN scoring_runs r ON r.id = f.run_id WHERE v.pair_id = ? ORDER BY f.id`,
      )
      .all(pairId) as VerdictHistoryEntry[];
  }
}
