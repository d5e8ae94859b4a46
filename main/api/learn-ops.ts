/** API operations of issue 14 (learning from the curators) that read only the store: the review queue and the
 *  curator agreement per model generation. Retraining and rescoring reuse the train / score jobs. */
import type { Store } from '../engine/store';
import { curatorAgreement } from '../engine/sparserm/curator-agreement';
import { reviewQueue } from '../engine/sparserm/review-queue';
import type { ApiHandlers } from './contract';
import { intId } from './store-mapping';

const finite = (x: number) => (Number.isFinite(x) ? x : null);

export function createLearnOps(store: Store): Pick<ApiHandlers, 'reviewQueue' | 'curatorAgreement'> {
  const datasetOf = (id: string) => {
    const n = intId(id, 'datasetId');
    store.datasets.get(n); // InputError naming the dataset when unknown
    return n;
  };
  return {
    reviewQueue: async ({ datasetId, limit }) => {
      const id = datasetOf(datasetId);
      const q = reviewQueue(store, id, { limit });
      const rule = store.runs.currentFilter(id);
      return {
        runId: q.runId === null ? null : String(q.runId),
        rewardModelId: q.rewardModelId,
        previousRunId: q.previousRunId === null ? null : String(q.previousRunId),
        previousRewardModelId: q.previousRewardModelId,
        total: q.total,
        items: q.items.map((x) => ({ ...x, pairId: String(x.pairId) })),
        rule: rule ? { threshold: rule.threshold, band: rule.band } : null,
      };
    },
    curatorAgreement: async ({ datasetId }) => {
      const a = curatorAgreement(store, datasetOf(datasetId));
      return {
        holdOutFraction: a.holdOutFraction,
        heldOut: a.heldOut,
        generations: a.generations.map((g) => ({
          generation: g.generation,
          rewardModelId: g.rewardModelId,
          runId: String(g.runId),
          created: g.created,
          n: g.n,
          correct: g.correct,
          ties: g.ties,
          accuracy: finite(g.accuracy),
          ci95: g.n > 0 ? g.ci95 : null,
          decisions: g.decisions ? { groupId: g.decisions.groupId, asLabelled: g.decisions.asLabelled, swapped: g.decisions.swapped, excluded: g.decisions.excluded } : null,
          sawHoldout: g.sawHoldout,
        })),
      };
    },
  };
}
