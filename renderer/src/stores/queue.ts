/**
 * "Review next" (issue 14 item 2): walks the dataset's active review queue (reviewQueue op) with the Review keys.
 * Decided pairs leave the queue; after every N decisions (a setting, default 20) it offers to retrain from the
 * decisions and rescore in the background (the existing train + score jobs), then the queue re-ranks.
 */
import { defineStore } from 'pinia';
import type { Decision, ModelInfo, OpInput, OpOutput, PairDetail } from '@api/contract';
import { useAppStore } from './app';
import { useReviewStore } from './review';

type Queue = OpOutput<'reviewQueue'>;
const EVERY_KEY = 'sparserm.queue.retrainEvery';
function storedEvery(): number {
  try {
    const n = Number(window.localStorage.getItem(EVERY_KEY));
    return Number.isInteger(n) && n >= 1 ? n : 20;
  } catch {
    return 20;
  }
}

/**
 * The train input that retrains with exactly what the queue's reward model was trained with (its listModels details:
 * registered checkpoint / SAE ids, layer, K, loss, precision, max tokens, SAE encoding), from the curators' decisions;
 * or, when that is not possible, a message naming what is missing. Never picks another checkpoint or SAE.
 */
export function retrainInput(datasetId: string, rewardModelId: string | null | undefined, model: ModelInfo | undefined): { input: OpInput<'train'> } | { refused: string } {
  if (!rewardModelId) return { refused: 'Retrain needs a scored dataset: score it first (Train screen).' };
  const d = model?.details ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v ? v : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : null);
  const layer = num(d.layer);
  const k = num(d.k);
  const loss = d.loss === 'margin' || d.loss === 'bt' ? d.loss : null;
  if (!model || layer === null || k === null || !loss) return { refused: `Retrain refused: what reward model ${rewardModelId} was trained with is unknown (its folder is missing or unreadable).` };
  const missing = [
    ...(str(d.checkpointId) ? [] : [`the checkpoint it was trained with (${str(d.checkpointPath) ?? 'unknown path'})`]),
    ...(str(d.saeId) ? [] : [`the SAE it was trained with (${str(d.saePath) ?? 'unknown path'})`]),
  ];
  if (missing.length) return { refused: `Retrain refused: ${missing.join(' and ')} of reward model ${rewardModelId} ${missing.length > 1 ? 'are' : 'is'} not registered any more. Register ${missing.length > 1 ? 'them' : 'it'} on the Models screen.` };
  const precision = d.precision === 'f32' || d.precision === 'f16' || d.precision === 'int8' || d.precision === 'int4' ? d.precision : undefined;
  const maxTokens = num(d.maxTokens);
  const saeEncoding = d.saeEncoding === 'saelens' || d.saeEncoding === 'authors' ? d.saeEncoding : undefined;
  return {
    input: {
      datasetId,
      checkpointId: str(d.checkpointId)!,
      saeId: str(d.saeId)!,
      layer,
      k,
      loss,
      fromDecisions: true,
      ...(precision ? { precision } : {}),
      ...(maxTokens !== null ? { maxTokens } : {}),
      ...(saeEncoding ? { saeEncoding } : {}),
    },
  };
}

export const useQueueStore = defineStore('reviewQueue', {
  state: () => ({
    active: false,
    queue: null as Queue | null,
    index: 0,
    detail: null as PairDetail | null,
    /** Decisions made in this mode since the last retrain (or since it was opened). */
    sinceRetrain: 0,
    retrainEvery: storedEvery(),
    /** The retrain offer is showing (dismissed with "Later" until N more decisions). */
    offer: false,
    /** What the background retrain is doing, for the status line ('' when idle). */
    retrainStatus: '',
    busy: false,
  }),
  getters: {
    current: (s) => s.queue?.items[s.index] ?? null,
  },
  actions: {
    async toggle(on?: boolean) {
      this.active = on ?? !this.active;
      if (this.active) await this.load();
    },
    setEvery(n: number) {
      if (!Number.isInteger(n) || n < 1) return;
      this.retrainEvery = n;
      try {
        window.localStorage.setItem(EVERY_KEY, String(n));
      } catch {
        // storage disabled: the setting lasts for this session
      }
    },
    /** Re-reads the queue (after a decision, an undo, or a rescore) and shows the pair at the same position. */
    async load() {
      const app = useAppStore();
      if (!app.datasetId) {
        this.queue = null;
        this.detail = null;
        return;
      }
      const q = await app.guard(() => app.api.reviewQueue({ datasetId: app.datasetId!, limit: 200 }));
      if (!q) return;
      this.queue = q;
      this.index = Math.min(this.index, Math.max(0, q.items.length - 1));
      await this.show();
    },
    async show() {
      const app = useAppStore();
      const it = this.current;
      if (!it) {
        this.detail = null;
        return;
      }
      const d = await app.guard(() => app.api.getPair({ pairId: it.pairId }));
      if (d && this.current?.pairId === it.pairId) this.detail = d;
    },
    async move(delta: number) {
      const n = this.queue?.items.length ?? 0;
      if (!n) return;
      this.index = Math.min(n - 1, Math.max(0, this.index + delta));
      await this.show();
    },
    async decide(decision: Decision | null) {
      const app = useAppStore();
      const review = useReviewStore();
      const it = this.current;
      if (!it || this.busy) return;
      this.busy = true;
      try {
        const r = await app.guard(() => app.api.decide({ pairId: it.pairId, decision, ...review.curatorInput() }));
        if (!r) return;
        review.canUndo = true;
        if (decision !== null) this.sinceRetrain++;
        if (this.sinceRetrain >= this.retrainEvery && !this.retrainStatus) this.offer = true;
        await this.load(); // the decided pair leaves the queue; the next one takes its place
        void app.refreshDatasets();
      } finally {
        this.busy = false;
      }
    },
    async undoRedo(which: 'undo' | 'redo') {
      await useReviewStore().undoRedo(which);
      await this.load();
    },
    later() {
      this.offer = false;
      this.sinceRetrain = 0;
    },
    /** Retrain from the decisions with what the queue's model was trained with, rescore, re-rank: in the background. */
    async retrain() {
      const app = useAppStore();
      this.offer = false;
      if (!app.datasetId || this.retrainStatus) return;
      const datasetId = app.datasetId;
      try {
        // The queue's model, as listed now (a checkpoint or SAE may have been registered or moved since); the status
        // is set first so a second click meanwhile starts nothing.
        this.retrainStatus = 'checking what the model was trained with…';
        const rewardModelId = this.queue?.rewardModelId;
        if (!(await app.guard(async () => (await app.refreshModels(), true)))) return;
        const plan = retrainInput(datasetId, rewardModelId, app.rewardModels.find((m) => m.id === rewardModelId));
        if ('refused' in plan) {
          app.notify(plan.refused, 'error');
          return;
        }
        this.sinceRetrain = 0;
        this.retrainStatus = 'retraining from your decisions…';
        const t = await app.guard(() => app.api.train(plan.input));
        if (!t) return;
        const trained = await app.follow(t.jobId);
        const rm = (trained.result as { rewardModelId?: string } | null)?.rewardModelId;
        if (trained.state !== 'done' || !rm) return;
        this.retrainStatus = 'rescoring with the retrained model…';
        const s = await app.guard(() => app.api.score({ datasetId, rewardModelId: rm }));
        if (!s) return;
        const scored = await app.follow(s.jobId);
        if (scored.state !== 'done') return;
        // The model's suggestions follow the new run under the same rule (the paper rule τ = 0 when none was set).
        const rule = this.queue?.rule ?? { threshold: 0, band: 0 };
        await app.guard(() => app.api.applyFilter({ datasetId, threshold: rule.threshold, band: rule.band }));
        await app.refreshModels();
        this.index = 0;
        if (app.datasetId === datasetId) await this.load();
        app.notify(`Retrained (${rm}) and rescored: the queue is re-ranked.`);
      } finally {
        this.retrainStatus = '';
      }
    },
  },
});
