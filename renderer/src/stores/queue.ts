/**
 * "Review next" (issue 14 item 2): walks the dataset's active review queue (reviewQueue op) with the Review keys.
 * Decided pairs leave the queue; after every N decisions (a setting, default 20) it offers to retrain from the
 * decisions and rescore in the background (the existing train + score jobs), then the queue re-ranks.
 */
import { defineStore } from 'pinia';
import type { Decision, OpOutput, PairDetail } from '@api/contract';
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
    /** Retrain from the decisions with the current model's settings, rescore, re-rank: in the background. */
    async retrain() {
      const app = useAppStore();
      this.offer = false;
      if (!app.datasetId || this.retrainStatus) return;
      const datasetId = app.datasetId;
      const runs = await app.guard(() => app.api.listRuns({ datasetId }));
      const last = runs?.runs[0];
      const sae = app.saes.find((s) => s.details.layer === last?.layer) ?? app.saes[0];
      const ckpt = app.checkpoints[0];
      if (!ckpt || !sae) {
        app.notify('Retrain needs a backbone and an SAE (Models screen).', 'error');
        return;
      }
      this.sinceRetrain = 0;
      try {
        this.retrainStatus = 'retraining from your decisions…';
        const t = await app.guard(() => app.api.train({ datasetId, checkpointId: ckpt.id, saeId: sae.id, layer: last?.layer ?? Number(sae.details.layer ?? 0), k: last?.k ?? 128, loss: last?.loss ?? 'margin', fromDecisions: true }));
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
