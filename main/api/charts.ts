/** Data for the Charts screen, computed from the store (margins, verdicts and decisions of the current filter). */
import { accuracyStats } from '../engine/sparserm/metrics';
import { promptHash, seenPromptSet } from '../engine/sparserm/seen-prompts';
import type { Store } from '../engine/store';
import type { OpOutput, TrainResult } from './contract';

type Charts = OpOutput<'chartData'>;

/**
 * Ground truth of a pair for accuracy: the curator's decision when there is one (keep → chosen is better,
 * swap → rejected is better, drop → unusable, left out), else the dataset's own label (chosen is better).
 */
function truth(human: string | null): 1 | -1 | 0 {
  if (human === 'swap') return -1;
  if (human === 'drop') return 0;
  return 1;
}

export function chartData(store: Store, datasetId: number, bins: number, curveOf: (datasetId: number) => TrainResult['curve'] | null): Charts {
  const hist = store.pairs.marginHistogram({ datasetId }, { bins });
  const order = ['keep', 'swap', 'drop', 'uncertain', 'undecided'] as const;
  const marginHistogram = hist.length
    ? {
        edges: [...hist.map((b) => b.lo), hist[hist.length - 1].hi],
        series: order.map((d) => ({ decision: d, counts: hist.map((b) => b.counts[d]) })).filter((s) => s.counts.some((c) => c > 0)),
      }
    : null;

  // Margins of scored pairs: read directly (documented columns of `pairs`), 100k rows is a few ms. The folder of
  // the reward model whose scores the margins are tells which prompts it trained on (per-source: held out only).
  const rows = store.db
    .prepare(
      `SELECT p.margin AS m, p.human_decision AS h, p.source AS s, p.prompt AS q, rm.folder AS folder
       FROM pairs p LEFT JOIN filters f ON f.id = p.filter_id LEFT JOIN scoring_runs r ON r.id = f.run_id
       LEFT JOIN reward_models rm ON rm.id = r.reward_model_id
       WHERE p.dataset_id = ? AND p.margin IS NOT NULL`,
    )
    .all(datasetId) as { m: number; h: string | null; s: string | null; q: string; folder: string | null }[];
  const labelled = rows.filter((r) => truth(r.h) !== 0);

  const accuracyVsThreshold: Charts['accuracyVsThreshold'] = [];
  if (labelled.length) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of labelled) {
      lo = Math.min(lo, r.m);
      hi = Math.max(hi, r.m);
    }
    const steps = 40;
    for (let i = 0; i <= steps; i++) {
      const t = lo === hi ? lo : lo + ((hi - lo) * i) / steps;
      let correct = 0;
      let kept = 0;
      for (const r of labelled) {
        const predicted = r.m >= t ? 1 : -1;
        if (predicted === truth(r.h)) correct++;
        if (r.m >= t) kept++;
      }
      accuracyVsThreshold.push({ threshold: t, accuracy: correct / labelled.length, kept });
    }
  }

  // Per source: only pairs whose prompt the scoring model never trained or validated on (a model is not judged on
  // its training data); an exact tie (margin 0) is counted apart, not as right. Unknown for older model folders.
  const seenOf = new Map<string, Set<string> | null>();
  let heldOut = true;
  let leftOut = 0;
  const bySource = new Map<string, { n: number; correct: number; ties: number }>();
  for (const r of labelled) {
    if (r.folder !== null && !seenOf.has(r.folder)) seenOf.set(r.folder, seenPromptSet(r.folder));
    const seen = r.folder === null ? null : seenOf.get(r.folder)!;
    if (seen === null) heldOut = false;
    else if (seen.has(promptHash(r.q))) {
      leftOut++;
      continue;
    }
    const k = r.s ?? '';
    const e = bySource.get(k) ?? { n: 0, correct: 0, ties: 0 };
    e.n++;
    if (r.m === 0) e.ties++;
    else if ((r.m > 0 ? 1 : -1) === truth(r.h)) e.correct++;
    bySource.set(k, e);
  }
  const perSource = [...bySource.entries()].map(([source, e]) => {
    const a = accuracyStats(e.correct, e.ties, e.n);
    return { source: source || '(none)', accuracy: e.n ? a.accuracy : null, n: e.n, ties: e.ties, ci95: e.n ? a.ci95 : null };
  });

  const ag = store.decisions.agreement(datasetId);
  return {
    marginHistogram,
    accuracyVsThreshold,
    agreement: { value: ag.agreementRate, decided: ag.compared },
    perSource,
    perSourceBasis: { heldOut, leftOut },
    trainingCurve: curveOf(datasetId),
  };
}
