/**
 * Review state: the filter and sort, a page cache over the (possibly 100,000-row) result set fetched on demand as
 * the virtual list scrolls, the selected pair with its detail, and decide / undo / redo / bulk.
 */
import { defineStore } from 'pinia';
import { markRaw, shallowReactive } from 'vue';
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

/**
 * Pages being fetched. Outside the store's state on purpose: it changes on every page request while scrolling and
 * nothing renders from it, so making it reactive only cost frames.
 */
const loading = new Set<number>();
export function pagesInFlight(): number {
  return loading.size;
}

export const PAGE = 200;
export type SortBy = PairSortKey;

const ADVANCE_KEY = 'sparserm.review.advance';
const CURATOR_KEY = 'sparserm.curator';
function stored(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}
function store(key: string, value: string | null) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch {
    // Storage disabled (private window): the setting lasts for this session only.
  }
}

const VERB: Record<string, string> = { keep: 'keep', drop: 'drop', swap: 'swap', clear: 'clear', note: 'note' };

/** The filter in words, for the bulk dialog and the empty state ("decision: undecided · search “tax”"). */
export function describeFilter(f: PairFilter): string {
  const parts: string[] = [];
  if (f.decision && f.decision !== 'any') parts.push(`decision: ${f.decision}`);
  if (f.verdict && f.verdict !== 'any') parts.push(`model: ${f.verdict}`);
  if (f.curated === 'overrides') parts.push('curator overrides');
  if (f.curated === 'decided-uncertain') parts.push('decided, model uncertain');
  if (f.source) parts.push(`source: ${f.source}`);
  if (f.marginMin !== undefined) parts.push(`margin ≥ ${f.marginMin}`);
  if (f.marginMax !== undefined) parts.push(`margin ≤ ${f.marginMax}`);
  if (f.latent !== undefined) parts.push(`latent ${f.latent}`);
  if (f.search) parts.push(`search “${f.search}”`);
  if (f.promptGroup !== undefined) parts.push(`prompt group ${f.promptGroup}`);
  if (f.pairIds !== undefined) parts.push(`${f.pairIds.length} chosen pairs`);
  return parts.length ? parts.join(' · ') : 'no filter (every pair of the dataset)';
}

export const useReviewStore = defineStore('review', {
  state: () => ({
    filter: { decision: 'any', verdict: 'any' } as PairFilter,
    sort: { by: 'index' as SortBy, dir: 'asc' as 'asc' | 'desc' },
    total: 0,
    /** Of the matching pairs, how many a curator decided ("reviewed X of N"). */
    reviewed: 0,
    /** page index → rows; shallow, and each page raw, so 100k rows are never made deeply reactive. */
    pages: shallowReactive(new Map<number, PairRow[]>()),
    generation: 0,
    selected: -1,
    detail: null as PairDetail | null,
    /** The dataset the list was last loaded for: a selection never carries over to another dataset. */
    listDataset: null as string | null,
    canUndo: false,
    canRedo: false,
    busy: false,
    /** A reload (filter, sort or dataset change) has not settled yet: the listbox says aria-busy meanwhile. */
    listing: false,
    /** A typed search waits out its debounce: the list does not reflect the search box yet (aria-busy too). */
    searchPending: false,
    /** After keep / drop / swap, go to the next pair (a setting, on by default). */
    advance: stored(ADVANCE_KEY) !== 'off',
    /** Name decisions are recorded under; null = the OS user of the engine (`osCurator`). */
    curator: stored(CURATOR_KEY),
    osCurator: '',
    /** Last undo / redo outcome, announced to screen readers and shown beside the buttons. */
    status: '',
  }),
  getters: {
    row: (s) => (i: number): PairRow | undefined => s.pages.get(Math.floor(i / PAGE))?.[i % PAGE],
    selectedRow(): PairRow | undefined {
      return this.row(this.selected);
    },
    /** A pair is on screen that the decision keys and buttons act on (not an empty list, not a pair the filter hides). */
    actionable(): boolean {
      const r = this.selectedRow;
      return !!r && !!this.detail && this.detail.id === r.id;
    },
    who(): string {
      return this.curator || this.osCurator || 'OS user';
    },
  },
  actions: {
    setAdvance(on: boolean) {
      this.advance = on;
      store(ADVANCE_KEY, on ? 'on' : 'off');
    },
    setCurator(name: string) {
      const n = name.trim().slice(0, 100);
      this.curator = n || null;
      store(CURATOR_KEY, this.curator);
    },
    async loadCurator() {
      const app = useAppStore();
      const r = await app.guard(() => app.api.curator({}));
      if (r) this.osCurator = r.name;
    },
    curatorInput(): { curator?: string } {
      return this.curator ? { curator: this.curator } : {};
    },
    /**
     * Re-runs the query (filter, sort or dataset changed). The selected pair stays selected when the new list
     * still holds it — at its new position — and the selection clears when it does not.
     */
    async reload() {
      const app = useAppStore();
      // The selected row, not the detail: the detail lags a click by one request.
      const keepId = this.listDataset === app.datasetId ? (this.selectedRow?.id ?? this.detail?.id) : undefined;
      // Another dataset: drop the old pair now, or it stays on screen (actions disabled) until the new one loads.
      if (this.listDataset !== app.datasetId) this.clearSelection();
      this.listDataset = app.datasetId;
      const gen = ++this.generation;
      this.pages.clear();
      loading.clear();
      if (!app.datasetId) {
        this.total = 0;
        this.reviewed = 0;
        this.clearSelection();
        this.listing = false;
        return;
      }
      this.listing = true;
      try {
        const located = await this.loadPage(0, keepId);
        if (gen !== this.generation) return; // a newer reload owns the list (and the busy flag) now
        if (this.total === 0) this.clearSelection();
        else if (keepId === undefined) await this.select(0);
        else if (located === null || located === undefined) this.clearSelection();
        else await this.select(located);
      } finally {
        if (gen === this.generation) this.listing = false;
      }
    },
    clearSelection() {
      this.selected = -1;
      this.detail = null;
    },
    /** Loads one page; with `locate`, also returns that pair's position in the list (null: not listed). */
    async loadPage(p: number, locate?: string): Promise<number | null | undefined> {
      const app = useAppStore();
      if (!app.datasetId || (locate === undefined && (this.pages.has(p) || loading.has(p)))) return undefined;
      const gen = this.generation;
      loading.add(p);
      try {
        const res = await app.api.queryPairs({
          datasetId: app.datasetId,
          filter: this.filter,
          sort: this.sort,
          offset: p * PAGE,
          limit: PAGE,
          ...(locate !== undefined ? { locate } : {}),
        });
        if (gen !== this.generation) return undefined;
        this.total = res.total;
        if (res.reviewed !== null) this.reviewed = res.reviewed;
        this.pages.set(p, markRaw(res.rows));
        return res.located;
      } catch (err) {
        app.notify(err instanceof Error ? err.message : String(err), 'error');
        return undefined;
      } finally {
        loading.delete(p);
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
      if (this.total === 0) return Promise.resolve();
      return this.select(Math.min(this.total - 1, Math.max(0, this.selected + delta)));
    },
    patchRow(updated: PairRow) {
      for (const [p, rows] of this.pages) {
        const k = rows.findIndex((r) => r.id === updated.id);
        if (k >= 0) {
          const copy = rows.slice();
          copy[k] = updated;
          this.pages.set(p, markRaw(copy));
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
      // No actionable pair (nothing selected, or the list is empty): the keys do nothing.
      if (!row || !this.actionable) return Promise.resolve();
      const at = this.selected;
      return serial(async () => {
        const ok = await this.decideRow(row.id, decision, note);
        // Advance only if the curator is still on that pair (a click elsewhere meanwhile wins).
        if (ok && decision !== null && this.advance && this.selected === at && at < this.total - 1) await this.select(at + 1);
      });
    },
    async decideRow(pairId: string, decision: Decision | null, note?: string | null): Promise<boolean> {
      const app = useAppStore();
      this.busy = true;
      try {
        const updated = await app.guard(() => app.api.decide({ pairId, decision, ...(note !== undefined ? { note } : {}), ...this.curatorInput() }));
        if (!updated) return false;
        this.patchRow(updated);
        this.canUndo = true;
        this.canRedo = false;
        await this.refreshDetail();
        void this.refreshReviewed();
        void app.refreshDatasets();
        return true;
      } finally {
        this.busy = false;
      }
    },
    /** Re-counts "reviewed X of N" after a change (one cheap count on the server). */
    async refreshReviewed() {
      const app = useAppStore();
      if (!app.datasetId) return;
      const gen = this.generation;
      const res = await app.api.queryPairs({ datasetId: app.datasetId, filter: this.filter, sort: this.sort, offset: 0, limit: 1 }).catch(() => null);
      if (res && gen === this.generation && res.reviewed !== null) this.reviewed = res.reviewed;
    },
    async note(text: string) {
      const app = useAppStore();
      const row = this.selectedRow;
      if (!row) return;
      const updated = await app.guard(() => app.api.decide({ pairId: row.id, note: text, ...this.curatorInput() }));
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
        const res = await app.guard(() => app.api[which]({ datasetId: app.datasetId!, ...this.curatorInput() }));
        if (!res) return;
        this.canUndo = res.canUndo;
        this.canRedo = res.canRedo;
        const done = which === 'undo' ? 'Undid' : 'Redid';
        const what = VERB[res.action ?? ''] ?? res.action ?? 'step';
        if (res.pairIds.length === 0 && !res.action) this.say(`Nothing to ${which} for ${this.who}.`);
        else if (res.pairIds.length === 0) this.say(`${done} ${what}: no pair changed (another curator changed them since).`);
        else if (res.stepCount > 1) {
          this.say(`${done} ${what} on ${res.pairIds.length} pairs (a bulk action).`);
          await this.reload();
        } else {
          const d = await app.guard(() => app.api.getPair({ pairId: res.pairIds[0]! }));
          if (d) {
            this.patchRow(d);
            const listed = await this.showPair(d);
            this.say(`${done} ${what} on pair #${d.index}${listed ? '' : ' (not in the current filter)'}.`);
          }
        }
        void this.refreshReviewed();
        void app.refreshDatasets();
      } finally {
        this.busy = false;
      }
    },
    /** Selects a pair wherever it is in the list; when the filter hides it, shows it anyway. Returns whether it is listed. */
    async showPair(d: PairDetail): Promise<boolean> {
      const app = useAppStore();
      if (!app.datasetId) return false;
      const gen = this.generation;
      const res = await app.guard(() => app.api.queryPairs({ datasetId: app.datasetId!, filter: this.filter, sort: this.sort, offset: 0, limit: 1, locate: d.id }));
      if (!res || gen !== this.generation) return false;
      if (res.reviewed !== null) this.reviewed = res.reviewed;
      if (res.located === null) {
        this.selected = -1;
        this.detail = d;
        return false;
      }
      this.selected = res.located;
      this.detail = d;
      await this.loadPage(Math.floor(res.located / PAGE));
      return true;
    },
    say(text: string) {
      this.status = text;
      useAppStore().notify(text);
    },
    async bulk(decision: Decision | null) {
      const app = useAppStore();
      if (!app.datasetId) return 0;
      const res = await app.guard(() =>
        app.api.bulkDecide({ datasetId: app.datasetId!, filter: this.filter, decision, expectedCount: this.total, ...this.curatorInput() }),
      );
      if (res) {
        this.canUndo = true;
        this.canRedo = false;
        this.say(`${decision ?? 'cleared'}: ${res.changed} pairs`);
        await this.reload();
        void app.refreshDatasets();
      }
      return res?.changed ?? 0;
    },
  },
});
