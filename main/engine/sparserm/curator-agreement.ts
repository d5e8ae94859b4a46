/**
 * "Does it get better?" (issue 14 item 3): per model generation, how often the reward model orders the curator
 * hold-out the way the curators decided. A generation is a reward model that scored the dataset (each retrain
 * adds one), in the order of its first finished scoring run; its latest finished run is measured.
 * Truth per held-out pair: keep → chosen ≻ rejected (margin > 0 is right), swap → rejected ≻ chosen (margin < 0).
 * Dropped pairs carry no orientation and are not counted. Exact ties (margin 0) are wrong and reported apart.
 * The hold-out is decision-labels.ts's deterministic share of decided pairs, left out of --from-decisions training.
 */
import fs from 'node:fs';
import path from 'node:path';

import type { Store } from '../store';
import { CURATOR_HOLDOUT_FRACTION, inCuratorHoldout, type DecisionPoint } from './decision-labels';
import { RewardModelManifest } from './manifest';
import { accuracyStats, type AccuracyStats } from './metrics';

export interface Generation extends AccuracyStats {
  generation: number;
  rewardModelId: string;
  runId: number;
  /** When the model was trained (manifest), or registered when its folder is gone. */
  created: string;
  /** The history point it learned from (null: trained on the original labels, or its folder cannot be read). */
  decisions: DecisionPoint | null;
  /** The hold-out was in its training data (original labels, or --include-held-out): its accuracy is optimistic. */
  sawHoldout: boolean;
}

export interface CuratorAgreement {
  holdOutFraction: number;
  /** Curator-decided (keep / swap) pairs in the hold-out now. */
  heldOut: number;
  generations: Generation[];
}

function manifestOf(folder: string): RewardModelManifest | null {
  try {
    const r = RewardModelManifest.safeParse(JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8')));
    return r.success ? r.data : null;
  } catch {
    return null; // folder moved or deleted: the scores in the store still measure the model
  }
}

export function curatorAgreement(store: Store, datasetId: number, opts: { holdOutFraction?: number } = {}): CuratorAgreement {
  const fraction = opts.holdOutFraction ?? CURATOR_HOLDOUT_FRACTION;
  store.datasets.get(datasetId);
  const truth = new Map<number, 'keep' | 'swap'>();
  for (const r of store.db.prepare("SELECT id, human_decision AS d FROM pairs WHERE dataset_id = ? AND human_decision IN ('keep', 'swap')").iterate(datasetId) as Iterable<{ id: number; d: 'keep' | 'swap' }>) {
    if (inCuratorHoldout(r.id, fraction)) truth.set(r.id, r.d);
  }
  const runs = store.db
    .prepare("SELECT reward_model_id AS rm, min(id) AS first, max(id) AS last FROM scoring_runs WHERE dataset_id = ? AND status = 'done' GROUP BY reward_model_id ORDER BY first")
    .all(datasetId) as { rm: string; first: number; last: number }[];
  const margins = store.db.prepare('SELECT pair_id AS pairId, margin FROM scores WHERE run_id = ?');
  const generations = runs.map((r, i): Generation => {
    let n = 0;
    let correct = 0;
    let ties = 0;
    for (const s of margins.iterate(r.last) as Iterable<{ pairId: number; margin: number }>) {
      const want = truth.get(s.pairId);
      if (!want) continue;
      n++;
      if (s.margin === 0) ties++;
      else if ((s.margin > 0) === (want === 'keep')) correct++;
    }
    const rm = store.models.rewardModel(r.rm);
    const m = rm ? manifestOf(rm.folder) : null;
    const decisions = m?.training.decisions ?? null;
    return {
      generation: i + 1,
      rewardModelId: r.rm,
      runId: r.last,
      created: m?.created ?? rm?.createdAt ?? '',
      decisions,
      sawHoldout: !decisions || !decisions.holdOut,
      ...accuracyStats(correct, ties, n),
    };
  });
  return { holdOutFraction: fraction, heldOut: truth.size, generations };
}
