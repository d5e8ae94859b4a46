/** API operations of issue 14 items 4 and 5: compare two reward models, near-duplicate prompt groups. */
import type { JobRunner } from '../engine/jobs';
import { compareModels, disagreementIds, latentLabels, latestRunOf } from '../engine/sparserm/compare-models';
import { dedupeDataset, ensurePromptGroups } from '../engine/sparserm/dedupe';
import { DEFAULT_NEAR_DUP_THRESHOLD, NEAR_DUP_SCHEME } from '../engine/sparserm/near-duplicates';
import type { Store } from '../engine/store';
import type { ApiHandlers } from './contract';
import { intId } from './store-mapping';

const finite = (x: number) => (Number.isFinite(x) ? x : null);
/** Above this many pairs, promptGroup does not group a dataset inline (dedupeDataset does, on request). */
const INLINE_GROUPING_MAX_PAIRS = 20_000;

export function createCompareOps(ctx: {
  store: Store;
  runner: JobRunner;
  startScore: (i: { datasetId: number; rewardModelId: string }) => string;
}): Pick<ApiHandlers, 'compareModels' | 'dedupeDataset' | 'promptGroup'> {
  const { store, runner } = ctx;
  /** Score jobs this process started for a comparison, so asking again waits for them instead of starting more. */
  const scoring = new Map<string, string>();
  const datasetOf = (id: string) => {
    const n = intId(id, 'datasetId');
    store.datasets.get(n);
    return n;
  };
  return {
    compareModels: async ({ datasetId, modelA, modelB }) => {
      const ds = datasetOf(datasetId);
      const jobIds: string[] = [];
      for (const m of [modelA, modelB]) {
        store.models.requireRewardModel(m);
        const key = `${ds}\u0000${m}`;
        const pending = scoring.get(key);
        const state = pending ? runner.snapshot(pending).status : undefined;
        if (state === 'queued' || state === 'running') jobIds.push(pending!);
        else if (latestRunOf(store, ds, m) === undefined) {
          const id = ctx.startScore({ datasetId: ds, rewardModelId: m });
          scoring.set(key, id);
          jobIds.push(id);
        }
      }
      if (jobIds.length) return { status: 'scoring' as const, jobIds, comparison: null };
      const c = compareModels({ store, datasetId: ds, modelA, modelB });
      const prompts = new Map(c.disagreements.items.map((d) => [d.pairId, store.pairs.get(d.pairId).prompt.slice(0, 300)]));
      const labA = latentLabels(store, modelA, [...c.latents.map((l) => l.latent), ...c.perModel.a.map((l) => l.latent)]);
      const labB = latentLabels(store, modelB, [...c.latents.map((l) => l.latent), ...c.perModel.b.map((l) => l.latent)]);
      return {
        status: 'ready' as const,
        jobIds: [],
        comparison: {
          runA: String(c.runA),
          runB: String(c.runB),
          n: c.n,
          agree: c.agree,
          agreement: finite(c.agreement),
          ci95: c.n > 0 ? c.ci95 : null,
          pearson: finite(c.pearson),
          spearman: finite(c.spearman),
          table: c.table,
          disagreements: {
            total: c.disagreements.total,
            pairIds: disagreementIds(store, c.runA, c.runB).slice(0, 20000).map(String),
            items: c.disagreements.items.map((d) => ({ pairId: String(d.pairId), marginA: d.marginA, marginB: d.marginB, prompt: prompts.get(d.pairId) ?? '' })),
          },
          sameSae: c.sameSae,
          latents: c.latents.map((l) => ({ ...l, label: labA.get(l.latent) ?? labB.get(l.latent) ?? null })),
          perModel: {
            a: c.perModel.a.map((l) => ({ ...l, label: labA.get(l.latent) ?? null })),
            b: c.perModel.b.map((l) => ({ ...l, label: labB.get(l.latent) ?? null })),
          },
          latentSource: c.latentSource,
          scatter: c.scatter.map((s) => ({ pairId: String(s.pairId), a: s.a, b: s.b })),
        },
      };
    },
    dedupeDataset: async ({ datasetId, threshold }) => {
      const r = dedupeDataset(store, datasetOf(datasetId), { threshold });
      return { ...r, largest: r.largest.map((l) => ({ ...l, groupId: String(l.groupId) })) };
    },
    promptGroup: async ({ pairId }) => {
      const p = store.pairs.get(intId(pairId, 'pairId'));
      // Grouping a large dataset takes seconds to minutes and would hold up the API here: only on request there.
      const set = store.promptGroups.set(p.datasetId);
      const fresh = !!set && set.scheme === NEAR_DUP_SCHEME && store.promptGroups.groupOf(p.id) !== undefined;
      if (!fresh && store.pairs.count({ datasetId: p.datasetId }) > INLINE_GROUPING_MAX_PAIRS) {
        return { groupId: null, count: 0, threshold: set?.threshold ?? DEFAULT_NEAR_DUP_THRESHOLD, members: [] };
      }
      const g = fresh ? set! : ensurePromptGroups(store, p.datasetId);
      const groupId = store.promptGroups.groupOf(p.id)!;
      const { count, members } = store.promptGroups.members(groupId, 50);
      return { groupId: String(groupId), count, threshold: g.threshold, members: members.map((m) => ({ id: String(m.id), prompt: m.prompt.slice(0, 500), effective: m.effective })) };
    },
  };
}
