/**
 * Review state: the filter and sort, a page cache over the (possibly 100,000-row) result set fetched on demand as
 * the virtual list scrolls, the selected pair with its detail, and decide / undo / redo / bulk.
 */
import { defineStore } from 'pinia';
import { shallowReactive } from 'vue';
import type { Decision, PairDetail, PairFilter, PairRow, PairSortKey } from '@api/contract';
import { useAppStore } from './app';

/**
 * Decisions, undo and redo run strictly one after another, in the order the curator pressed the keys: a fast
 * "s u r" must apply swap, then undo, then redo — never drop a key or reorder them.
 */
let chain: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => undefined);
  return next;
}

export const PAGE = 200;
export type SortBy = PairSortKey;

export const useReviewStore = defineStore('review', {
  state: () => ({
    filter: { decision: 'any', verdict: 'any' } as PairFilter,
    sort: { by: 'index' as SortBy, dir: 'asc' as 'asc' | 'desc' },
    total: 0,
    /** page index → rows; shallow so 100k rows are not made deeply reactive. */
    pages: shallowReactive(new Map<number, PairRow[]>()),
    loading: new Set<number>(),
    generation: 0,
    selected: -1,
    detail: null as PairDetail | null,
    canUndo: false,
    canRedo: false,
    busy: false,
  }),
  getters: {
    row: (s) => (i: number): PairRow | undefined => s.pages.get(Math.floor(i / PAGE))?.[i % PAGE],
    selectedRow(): PairRow | undefined {
      return this.row(this.selected);
    },
  },
  actions: {
    async reload() {
      const app = useAppStore();
      this.generation++;
      this.pages.clear();
      this.loading.clear();
      if (!app.datasetId) {
        this.total = 0;
        return;
      }
      await this.loadPage(0);
      if (this.total > 0 && (this.selected < 0 || this.selected >= this.total)) await this.select(0);
      else if (this.selected >= 0) await this.select(this.selected);
    },
    async loadPage(p: number) {
      const app = useAppStore();
      if (!app.datasetId || this.pages.has(p) || this.loading.has(p)) return;
      const gen = this.generation;
      this.loading.add(p);
      try {
        const res = await app.api.queryPairs({ datasetId: app.datasetId, filter: this.filter, sort: this.sort, offset: p * PAGE, limit: PAGE });
        if (gen !== this.generation) return;
        this.total = res.total;
        this.pages.set(p, res.rows);
      } catch (err) {
        app.notify(err instanceof Error ? err.message : String(err), 'error');
      } finally {
        this.loading.delete(p);
      }
    },
    ensureRange(start: number, end: number) {
      for (let p = Math.floor(start / PAGE); p <= Math.floor(Math.max(start, end) / PAGE); p++) void this.loadPage(p);
    },
    async select(i: number) {
      if (i < 0 || i >= this.total) return;
      this.selected = i;
      await this.loadPage(Math.floor(i / PAGE));
      const row = this.row(i);
      if (!row) return;
      const app = useAppStore();
      const detail = await app.guard(() => app.api.getPair({ pairId: row.id }));
      if (detail && this.selected === i) this.detail = detail;
    },
    move(delta: number) {
      return this.select(Math.min(this.total - 1, Math.max(0, this.selected + delta)));
    },
    patchRow(updated: PairRow) {
      for (const [p, rows] of this.pages) {
        const k = rows.findIndex((r) => r.id === updated.id);
        if (k >= 0) {
          const copy = rows.slice();
          copy[k] = updated;
          this.pages.set(p, copy);
        }
      }
    },
    async refreshDetail() {
      const app = useAppStore();
      if (!this.detail) return;
      const d = await app.guard(() => app.api.getPair({ pairId: this.detail!.id }));
      if (d) {
        this.detail = d;
        this.patchRow(d);
      }
    },
    decide(decision: Decision | null, note?: string | null) {
      const row = this.selectedRow;
      if (!row) return Promise.resolve();
      return serial(() => this.decideRow(row.id, decision, note));
    },
    async decideRow(pairId: string, decision: Decision | null, note?: string | null) {
      const app = useAppStore();
      this.busy = true;
      try {
        const updated = await app.guard(() => app.api.decide({ pairId, decision, ...(note !== undefined ? { note } : {}) }));
        if (updated) {
          this.patchRow(updated);
          this.canUndo = true;
          this.canRedo = false;
          await this.refreshDetail();
          void app.refreshDatasets();
        }
      } finally {
        this.busy = false;
      }
    },
    async note(text: string) {
      const app = useAppStore();
      const row = this.selectedRow;
      if (!row) return;
      const updated = await app.guard(() => app.api.decide({ pairId: row.id, note: text }));
      if (updated) {
        this.patchRow(updated);
        this.canUndo = true;
        await this.refreshDetail();
      }
    },
    undoRedo(which: 'undo' | 'redo') {
      return serial(() => this.undoRedoNow(which));
    },
    async undoRedoNow(which: 'undo' | 'redo') {
      const app = useAppStore();
      if (!app.datasetId) return;
      this.busy = true;
      try {
        const res = await app.guard(() => app.api[which]({ datasetId: app.datasetId! }));
        if (!res) return;
        this.canUndo = res.canUndo;
        this.canRedo = res.canRedo;
        if (res.pairIds.length === 0) app.notify(`nothing to ${which}`);
        else if (res.pairIds.length > 1) {
          app.notify(`${which === 'undo' ? 'undid' : 'redid'} a bulk action on ${res.pairIds.length} pairs`);
          await this.reload();
        } else {
          const d = await app.guard(() => app.api.getPair({ pairId: res.pairIds[0] }));
          if (d) {
            this.patchRow(d);
            if (this.detail?.id === d.id) this.detail = d;
          }
        }
        void app.refreshDatasets();
      } finally {
        this.busy = false;
      }
    },
    async bulk(decision: Decision | null) {
      const app = useAppStore();
      if (!app.datasetId) return 0;
      const res = await app.guard(() => app.api.bulkDecide({ datasetId: app.datasetId!, filter: this.filter, decision, expectedCount: this.total }));
      if (res) {
        this.canUndo = true;
        this.canRedo = false;
        app.notify(`${decision ?? 'cleared'}: ${res.changed} pairs`);
        await this.reload();
        void app.refreshDatasets();
      }
      return res?.changed ?? 0;
    },
  },
});
