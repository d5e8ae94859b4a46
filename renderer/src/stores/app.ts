/** App-wide state: the API client, current screen, datasets, models, tracked jobs and notifications. */
import { defineStore } from 'pinia';
import { markRaw } from 'vue';
import type { ApiClient, DatasetSummary, Job, ModelInfo, OpOutput } from '@api/contract';
import { createConnection, tokenInHash, type FileTransfer } from '../api/client';

export type Screen = 'models' | 'datasets' | 'train' | 'review' | 'export' | 'charts' | 'generate' | 'compare';
/** `short` is the collapsed sidebar's label: unique, so two screens never look alike there. */
export const screens: { id: Screen; label: string; key: string; short: string }[] = [
  { id: 'models', label: 'Models', key: '1', short: 'M' },
  { id: 'datasets', label: 'Datasets', key: '2', short: 'D' },
  { id: 'train', label: 'Train', key: '3', short: 'T' },
  { id: 'review', label: 'Review', key: '4', short: 'R' },
  { id: 'export', label: 'Export', key: '5', short: 'E' },
  { id: 'charts', label: 'Charts', key: '6', short: 'Ch' },
  // Last so Alt+1…6 keep their screens.
  { id: 'generate', label: 'Generate', key: '7', short: 'G' },
  { id: 'compare', label: 'Compare', key: '8', short: 'Co' },
];

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

/**
 * Whether the API answers: 'none' = no token (open the URL serve printed), 'rejected' = the server does not accept
 * this tab's token (it was restarted: a new token), 'unreachable' = nothing answers (stopped, tunnel down).
 */
export type ConnectionState = 'connecting' | 'connected' | 'none' | 'rejected' | 'unreachable';

/** The kind and field an API error carries (ApiCallError over HTTP, the preload's Error under Electron). */
export function errorInfo(err: unknown): { kind: string | null; field: string | null; message: string } {
  const e = err as { kind?: unknown; field?: unknown; name?: unknown; message?: unknown };
  const kind = typeof e?.kind === 'string' ? e.kind : typeof e?.name === 'string' && e.name.startsWith('ApiError:') ? e.name.slice(9) : null;
  return { kind, field: typeof e?.field === 'string' ? e.field : null, message: err instanceof Error ? err.message : String(err) };
}

let toastSeq = 0;

export const useAppStore = defineStore('app', {
  state: () => ({
    client: null as ApiClient | null,
    transport: null as 'ipc' | 'http' | null,
    transfer: null as FileTransfer | null,
    connection: 'connecting' as ConnectionState,
    sidebarCollapsed: false,
    screen: 'datasets' as Screen,
    datasets: [] as DatasetSummary[],
    models: [] as ModelInfo[],
    datasetId: null as string | null,
    jobs: {} as Record<string, Job>,
    toasts: [] as Toast[],
    doctor: null as OpOutput<'doctor'> | null,
    loaded: false,
  }),
  getters: {
    api(state): ApiClient {
      if (!state.client) throw new Error('not connected: open the URL printed by `sparserm serve` (it carries the token)');
      return state.client;
    },
    dataset(state): DatasetSummary | null {
      return state.datasets.find((d) => d.id === state.datasetId) ?? null;
    },
    /** The current dataset is the demo kit's, or is scored by a demo (random-weight) model. */
    usesDemo(state): boolean {
      const d = state.datasets.find((x) => x.id === state.datasetId);
      return !!d && (d.isDemo || d.rewardModelIsDemo);
    },
    checkpoints: (s) => s.models.filter((m) => m.kind === 'checkpoint'),
    saes: (s) => s.models.filter((m) => m.kind === 'sae'),
    rewardModels: (s) => s.models.filter((m) => m.kind === 'reward-model'),
    activeJobs: (s) => Object.values(s.jobs).filter((j) => j.state === 'running' || j.state === 'queued'),
    interruptedJobs: (s) => Object.values(s.jobs).filter((j) => j.state === 'interrupted'),
  },
  actions: {
    async init() {
      const c = createConnection();
      this.client = c ? markRaw(c.client) : null;
      this.transport = c?.transport ?? null;
      this.transfer = c?.transfer ? markRaw(c.transfer) : null;
      if (!c) {
        this.connection = 'none';
        return;
      }
      this.connection = 'connecting';
      try {
        await Promise.all([this.refreshDatasets(), this.refreshModels(), this.refreshJobs()]);
        this.connection = 'connected';
      } catch (err) {
        // A stale token or a stopped server is a connection state, shown as such — not "No dataset yet" and a toast.
        if (this.noteConnection(err)) return;
        this.notify(errorInfo(err).message, 'error');
      }
      if (!this.datasetId && this.datasets.length) this.datasetId = this.datasets[0].id;
      // The first load picks a starting screen; a reconnect keeps the one the curator was on.
      if (!this.loaded) {
        if (this.models.length === 0) this.screen = 'models';
        else if (this.datasets.some((d) => d.counts.scored > 0)) this.screen = 'review';
      }
      this.loaded = true;
    },
    /**
     * Opening the new URL serve printed (pasting it into this tab changes only the fragment): reconnect with its
     * token, without a reload. Returns whether the hash carried a token.
     */
    async reconnectFromHash(): Promise<boolean> {
      if (!tokenInHash(window.location.hash)) return false;
      this.toasts = [];
      await this.init();
      return true;
    },
    /** Marks the connection lost when `err` says so; true when it did. */
    noteConnection(err: unknown): boolean {
      const { kind } = errorInfo(err);
      if (kind === 'unauthorized') this.connection = 'rejected';
      else if (kind === 'unreachable') this.connection = 'unreachable';
      else return false;
      return true;
    },
    notify(text: string, kind: Toast['kind'] = 'info') {
      const t = { id: ++toastSeq, kind, text };
      this.toasts.push(t);
      setTimeout(() => this.dismiss(t.id), kind === 'error' ? 12000 : 4000);
    },
    dismiss(id: number) {
      this.toasts = this.toasts.filter((t) => t.id !== id);
    },
    /** Runs an API call and turns failures into a visible error instead of an unhandled rejection. */
    async guard<T>(fn: () => Promise<T>): Promise<T | undefined> {
      try {
        return await fn();
      } catch (err) {
        if (!this.noteConnection(err)) this.notify(errorInfo(err).message, 'error');
        return undefined;
      }
    },
    /**
     * Like guard, but an error about one of the form's fields goes beside that field instead of a toast.
     * `fields` maps the API's field names to the form's error keys ('*': input errors naming no field); `errors` is
     * cleared first; an error about a field the form does not show falls back to a toast.
     */
    async guardInline<T>(errors: Record<string, string>, fields: Record<string, string>, fn: () => Promise<T>): Promise<T | undefined> {
      for (const k of Object.keys(errors)) delete errors[k];
      try {
        return await fn();
      } catch (err) {
        if (this.noteConnection(err)) return undefined;
        const { field, message, kind } = errorInfo(err);
        // '*': where an input error naming no field (a file that does not exist, a wrong format) goes.
        const key = (field !== null ? fields[field] : undefined) ?? (kind === 'input' ? fields['*'] : undefined);
        if (key) errors[key] = message;
        else this.notify(message, 'error');
        return undefined;
      }
    },
    async refreshDatasets() {
      this.datasets = (await this.api.listDatasets({})).datasets;
      if (this.datasetId && !this.datasets.some((d) => d.id === this.datasetId)) this.datasetId = null;
    },
    async refreshModels() {
      this.models = (await this.api.listModels({})).models;
    },
    async refreshJobs() {
      for (const j of (await this.api.listJobs({})).jobs) this.jobs[j.id] = j;
    },
    /** Follows a job until it ends; resolves with the finished job (done, failed or cancelled). */
    async follow(jobId: string, intervalMs = 300): Promise<Job> {
      for (;;) {
        let job: Job;
        try {
          job = await this.api.getJob({ jobId });
        } catch (err) {
          // The server went away or was restarted: the connection panel says so; the job is left as last seen.
          const last = this.jobs[jobId];
          if (this.noteConnection(err) && last) return last;
          throw err;
        }
        this.jobs[job.id] = job;
        if (job.state !== 'running' && job.state !== 'queued') {
          if (job.state === 'failed') this.notify(`${job.title} failed: ${job.error ?? 'unknown error'}`, 'error');
          if (job.state === 'cancelled') this.notify(`${job.title} cancelled`);
          return job;
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    },
    async cancel(jobId: string) {
      await this.guard(async () => {
        this.jobs[jobId] = await this.api.cancelJob({ jobId });
      });
    },
    async resume(jobId: string) {
      return this.guard(async () => {
        const { jobId: id } = await this.api.resumeJob({ jobId });
        return this.follow(id);
      });
    },
  },
});
