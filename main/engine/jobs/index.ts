import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { z } from 'zod';

import { CancelledError, InputError } from '../errors';
import type { JobRecord, Store } from '../store';
import { badInputError, failedOnBadInput } from '../store/jobs';
import { EtaEstimator } from './eta';
import { zodIssueDetails } from '../zod-issue';

export { EtaEstimator } from './eta';

/** What a job handler gets: its signal, resume point, and ways to report progress and save checkpoints. */
export interface JobContext<C = unknown> {
  readonly id: string;
  readonly kind: string;
  readonly signal: AbortSignal;
  /** The last checkpoint saved by a previous (interrupted) attempt, or null on a fresh start. */
  readonly checkpoint: C | null;
  readonly store: Store;
  /** Reports progress (units done, optional total and message). Cheap: persisted and emitted at most every ~200 ms. */
  progress(done: number, total?: number | null, message?: string): void;
  /**
   * Saves the resume point. Call it inside the same `store.transaction` as the batch it describes, so that after a
   * crash the checkpoint and the finished work agree.
   */
  saveCheckpoint(checkpoint: C): void;
  /** Yields to the event loop (HTTP/IPC stay responsive) and throws CancelledError if the job was cancelled. */
  yield(): Promise<void>;
}

export type JobHandler<P = unknown, R = unknown, C = unknown> = (params: P, ctx: JobContext<C>) => Promise<R>;

export interface JobSnapshot extends JobRecord {
  /** Smoothed throughput in units/second (this attempt), null until known. */
  unitsPerSecond: number | null;
  /** Seconds left, null when unknown. */
  etaSeconds: number | null;
  elapsedSeconds: number | null;
}

export interface JobHandle<R = unknown> {
  id: string;
  /** Settles with the handler's result; rejects with its error (CancelledError when cancelled). */
  result: Promise<R>;
  cancel(): void;
}

interface Definition {
  handler: JobHandler<any, any, any>;
  schema?: z.ZodType;
}

interface Live {
  controller: AbortController;
  eta: EtaEstimator;
  lastPersist: number;
  startedMs: number;
}

const PERSIST_EVERY_MS = 200;

/** Jobs executing in this process, across every JobRunner instance (the app may open several over its life). */
const runningInProcess = new Set<string>();

/**
 * Runs long jobs in this process, persisting each one in the `jobs` table: status, progress, checkpoint, result.
 * Events: 'progress' and 'status' with a JobSnapshot (subscribe() for one job or all).
 *
 * Crash model: a job found 'running' or 'queued' at startup (recoverInterrupted) belonged to a dead process; it is
 * marked 'interrupted' and `resume(id)` runs it again with its last checkpoint, so finished batches are not redone.
 */
export class JobRunner extends EventEmitter {
  private readonly defs = new Map<string, Definition>();
  private readonly live = new Map<string, Live>();

  constructor(readonly store: Store) {
    super();
  }

  /** Registers a job kind. `schema` validates params (on start and on resume from the database). */
  define<P, R, C = unknown>(kind: string, handler: JobHandler<P, R, C>, schema?: z.ZodType<P>): this {
    this.defs.set(kind, { handler, schema });
    return this;
  }

  kinds(): string[] {
    return [...this.defs.keys()];
  }

  /** Marks jobs left running by a dead process as interrupted. Call once at startup. */
  recoverInterrupted(): string[] {
    const ids = this.store.jobs.markInterrupted(undefined, (id) => runningInProcess.has(id));
    for (const id of ids) this.emit('status', this.snapshot(id));
    return ids;
  }

  start<R = unknown>(kind: string, params: unknown, opts: { id?: string; signal?: AbortSignal; total?: number } = {}): JobHandle<R> {
    const def = this.definition(kind);
    const parsed = def.schema ? parseParams(def.schema, params, kind) : params;
    const id = opts.id ?? randomUUID();
    this.store.jobs.create({ id, kind, params: parsed, total: opts.total ?? null });
    return this.run<R>(id, kind, parsed, null, opts.signal);
  }

  /** Re-runs an interrupted, failed or cancelled job from its last checkpoint. */
  resume<R = unknown>(id: string, opts: { signal?: AbortSignal } = {}): JobHandle<R> {
    const rec = this.store.jobs.get(id);
    if (this.live.has(id) || rec.status === 'running') throw new InputError({ field: 'job', expected: 'a job that is not running', got: `${id} (${rec.status})` });
    if (rec.status === 'done') throw new InputError({ field: 'job', expected: 'an unfinished job', got: `${id} (done)` });
    if (failedOnBadInput(rec)) {
      throw new InputError({
        field: 'job',
        expected: `a job that can be resumed (interrupted, cancelled, or failed for another reason than its input); fix the input and start a new ${rec.kind} instead`,
        got: `${id}, which failed on ${rec.error!}`,
      });
    }
    const def = this.definition(rec.kind);
    const params = def.schema ? parseParams(def.schema, rec.params, rec.kind) : rec.params;
    return this.run<R>(id, rec.kind, params, rec.checkpoint ?? null, opts.signal);
  }

  cancel(id: string): boolean {
    const l = this.live.get(id);
    if (!l) return false;
    l.controller.abort(new CancelledError());
    return true;
  }

  isRunning(id: string): boolean {
    return this.live.has(id);
  }

  snapshot(id: string): JobSnapshot {
    const rec = this.store.jobs.get(id);
    const l = this.live.get(id);
    const rate = l?.eta.unitsPerSecond ?? null;
    return {
      ...rec,
      unitsPerSecond: rate,
      etaSeconds: l ? l.eta.etaSeconds(rec.done, rec.total) : rec.status === 'done' ? 0 : null,
      elapsedSeconds: l ? (Date.now() - l.startedMs) / 1000 : rec.startedAt && rec.finishedAt ? (Date.parse(rec.finishedAt) - Date.parse(rec.startedAt)) / 1000 : null,
    };
  }

  list(opts: Parameters<Store['jobs']['list']>[0] = {}): JobSnapshot[] {
    return this.store.jobs.list(opts).map((r) => this.snapshot(r.id));
  }

  /** Calls `listener` on every progress/status change (of job `id` only, if given). Returns the unsubscribe. */
  subscribe(listener: (s: JobSnapshot) => void, id?: string): () => void {
    const fn = (s: JobSnapshot) => {
      if (id === undefined || s.id === id) listener(s);
    };
    this.on('progress', fn);
    this.on('status', fn);
    return () => {
      this.off('progress', fn);
      this.off('status', fn);
    };
  }

  private definition(kind: string): Definition {
    const def = this.defs.get(kind);
    if (!def) throw new InputError({ field: 'job kind', expected: `one of: ${this.kinds().join(', ') || '(none registered)'}`, got: `"${kind}"` });
    return def;
  }

  private run<R>(id: string, kind: string, params: unknown, checkpoint: unknown, outer?: AbortSignal): JobHandle<R> {
    const controller = new AbortController();
    if (outer) {
      if (outer.aborted) controller.abort(new CancelledError());
      else outer.addEventListener('abort', () => controller.abort(new CancelledError()), { once: true });
    }
    const l: Live = { controller, eta: new EtaEstimator(), lastPersist: 0, startedMs: Date.now() };
    this.live.set(id, l);
    runningInProcess.add(id);
    const jobs = this.store.jobs;
    jobs.setStatus(id, 'running');
    this.emit('status', this.snapshot(id));
    const current = this.store.jobs.get(id);
    let done = current.done;
    let total = current.total;
    let message: string | null = current.message;
    const ctx: JobContext<unknown> = {
      id,
      kind,
      signal: controller.signal,
      checkpoint,
      store: this.store,
      progress: (d, t, m) => {
        done = d;
        if (t !== undefined) total = t;
        if (m !== undefined) message = m;
        const nowMs = Date.now();
        l.eta.update(d, nowMs);
        if (nowMs - l.lastPersist >= PERSIST_EVERY_MS || (total !== null && d >= total)) {
          l.lastPersist = nowMs;
          jobs.tryProgress(id, { done, total, message });
          this.emit('progress', { ...this.snapshot(id), done, total, message });
        }
      },
      saveCheckpoint: (c) => jobs.checkpoint(id, c),
      yield: async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (controller.signal.aborted) throw new CancelledError();
      },
    };
    const handler = this.definition(kind).handler;
    const result = (async () => {
      try {
        await ctx.yield();
        const r = (await handler(params, ctx)) as R;
        jobs.progress(id, { done, total, message });
        jobs.setStatus(id, 'done', { result: r ?? null });
        return r;
      } catch (err) {
        jobs.progress(id, { done, total, message });
        if (err instanceof CancelledError || controller.signal.aborted) {
          jobs.setStatus(id, 'cancelled', { error: 'cancelled' });
          throw err instanceof CancelledError ? err : new CancelledError();
        }
        // Bad input fails the same way on every attempt: stored as not resumable, with what to fix.
        const badInput = err instanceof InputError || (err instanceof Error && /InputError/.test(err.name));
        const text = err instanceof Error ? err.message : String(err);
        jobs.setStatus(id, 'failed', { error: badInput ? badInputError(kind, text) : text });
        throw err;
      } finally {
        this.live.delete(id);
        runningInProcess.delete(id);
        this.emit('status', this.snapshot(id));
      }
    })();
    // Callers that only watch events must not get an unhandled rejection.
    result.catch(() => undefined);
    return { id, result, cancel: () => this.cancel(id) };
  }
}

function parseParams(schema: z.ZodType, params: unknown, kind: string): unknown {
  const r = schema.safeParse(params);
  if (!r.success) {
    const d = zodIssueDetails(r.error, params);
    throw new InputError({ ...d, field: `${kind} params${d.field ? ` ${d.field}` : ''}` });
  }
  return r.data;
}
