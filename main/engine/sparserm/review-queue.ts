/**
 * The active review queue (issue 14 item 2): the undecided pairs whose decision would teach the model most, first.
 * Order: smallest |margin| under the current reward model first (the model is least sure), in bands of 5 % of the
 * scored undecided pairs; within a band, pairs the current and the previous reward model disagree on (opposite
 * margin signs) come first, then by |margin|. Decided pairs leave the queue; a retrain + rescore re-ranks it.
 */
import { InputError } from '../errors';
import type { Store } from '../store';

/** Bands of this share of the queue: the coarse "smallest |margin| first" key disagreement refines. */
export const QUEUE_BAND = 0.05;

export interface QueueItem {
  pairId: number;
  /** Margin under the current run's reward model. */
  margin: number;
  /** Margin under the previous reward model (null: no previous run, or it did not score this pair). */
  previousMargin: number | null;
  /** The two models order the pair oppositely. */
  disagree: boolean;
  /** 0-based band of |margin| (band 0 = the 5 % least certain pairs). */
  band: number;
  reasons: string[];
}

export interface ReviewQueue {
  runId: number | null;
  rewardModelId: string | null;
  previousRunId: number | null;
  previousRewardModelId: string | null;
  /** Undecided scored pairs in the queue (items holds the first `limit`). */
  total: number;
  items: QueueItem[];
}

interface Scored {
  pairId: number;
  margin: number;
  previousMargin: number | null;
}

/** Pure ranking (tested directly): the order described above; ties go to the lower pair id. */
export function rankQueue(rows: Scored[], band = QUEUE_BAND): QueueItem[] {
  const byAbs = [...rows].sort((a, b) => Math.abs(a.margin) - Math.abs(b.margin) || a.pairId - b.pairId);
  const n = byAbs.length;
  const items = byAbs.map((r, rank): QueueItem => {
    const b = Math.floor(rank / Math.max(1, Math.ceil(n * band)));
    const disagree = r.previousMargin !== null && Math.sign(r.previousMargin) !== Math.sign(r.margin);
    const reasons = [`|margin| ${Math.abs(r.margin).toPrecision(3)}: among the ${Math.round(100 * band * (b + 1))} % least certain`];
    if (disagree) reasons.push(`the previous model ordered it the other way (margin ${r.previousMargin!.toPrecision(3)} → ${r.margin.toPrecision(3)})`);
    return { pairId: r.pairId, margin: r.margin, previousMargin: r.previousMargin, disagree, band: b, reasons };
  });
  return items.sort((a, b) => a.band - b.band || Number(b.disagree) - Number(a.disagree) || Math.abs(a.margin) - Math.abs(b.margin) || a.pairId - b.pairId);
}

/** The dataset's queue under its latest finished scoring run (and the latest one of a different model before it). */
export function reviewQueue(store: Store, datasetId: number, opts: { limit?: number } = {}): ReviewQueue {
  const limit = opts.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1) throw new InputError({ field: 'limit', expected: 'an integer ≥ 1', got: String(opts.limit) });
  store.datasets.get(datasetId);
  const current = store.runs.latestDone(datasetId);
  if (!current) return { runId: null, rewardModelId: null, previousRunId: null, previousRewardModelId: null, total: 0, items: [] };
  const previous = store.db
    .prepare("SELECT id, reward_model_id AS rm FROM scoring_runs WHERE dataset_id = ? AND status = 'done' AND id < ? AND reward_model_id <> ? ORDER BY id DESC LIMIT 1")
    .get(datasetId, current.id, current.rewardModelId) as { id: number; rm: string } | undefined;
  const rows = store.db
    .prepare(
      `SELECT s.pair_id AS pairId, s.margin AS margin, ps.margin AS previousMargin
       FROM scores s JOIN pairs p ON p.id = s.pair_id LEFT JOIN scores ps ON ps.run_id = ? AND ps.pair_id = s.pair_id
       WHERE s.run_id = ? AND p.dataset_id = ? AND p.human_decision IS NULL`,
    )
    .all(previous?.id ?? -1, current.id, datasetId) as Scored[];
  const ranked = rankQueue(rows);
  return {
    runId: current.id,
    rewardModelId: current.rewardModelId,
    previousRunId: previous?.id ?? null,
    previousRewardModelId: previous?.rm ?? null,
    total: ranked.length,
    items: ranked.slice(0, limit),
  };
}
