import os from 'node:os';

import { InputError } from '../errors';
import type { Db } from './db';
import { JobRowSchema, now, type JobRecord, type JobStatus } from './rows';

/**
 * A job that failed because of its input (InputError) is stored with this prefix on its error. Resuming it would fail
 * the same way, so it is not resumable: the curator fixes the input and starts a new job.
 */
export const BAD_INPUT_PREFIX = 'bad input: ';

/** The stored error of a job failed by bad input: what is wrong (file, line, field, expected) and what to do. */
export function badInputError(kind: string, message: string): string {
  return `${BAD_INPUT_PREFIX}${message}. Fix that and start a new ${kind}; resuming this job would fail the same way`;
}

/** Failed on its input (see BAD_INPUT_PREFIX). */
export function failedOnBadInput(j: Pick<JobRecord, 'status' | 'error'>): boolean {
  return j.status === 'failed' && (j.error ?? '').startsWith(BAD_INPUT_PREFIX);
}

/** Whether resume() can run the job again: interrupted, cancelled, or failed for a reason other than its input. */
export function jobResumable(j: Pick<JobRecord, 'status' | 'error'>): boolean {
  return j.status === 'interrupted' || j.status === 'cancelled' || (j.status === 'failed' && !failedOnBadInput(j));
}

/** Persistence of long jobs (see engine/jobs for the runner that drives them). */
export class JobsRepo {
  constructor(private readonly db: Db) {}

  create(j: { id: string; kind: string; params: unknown; total?: number | null }): JobRecord {
    const ts = now();
    this.db
      .prepare('INSERT INTO jobs(id, kind, params_json, status, done, total, created_at, updated_at, owner_pid, owner_host) VALUES (?,?,?,?,0,?,?,?,?,?)')
      .run(j.id, j.kind, JSON.stringify(j.params ?? null), 'queued', j.total ?? null, ts, ts, process.pid, os.hostname());
    return this.get(j.id);
  }

  get(id: string): JobRecord {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id);
    if (!r) throw new InputError({ field: 'job', expected: 'an existing job id', got: `"${id}"` });
    return JobRowSchema.parse(r);
  }

  find(id: string): JobRecord | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id);
    return r ? JobRowSchema.parse(r) : undefined;
  }

  list(opts: { status?: JobStatus[]; kind?: string; limit?: number } = {}): JobRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (opts.status?.length) {
      where.push(`status IN (${opts.status.map(() => '?').join(',')})`);
      params.push(...opts.status);
    }
    if (opts.kind) {
      where.push('kind = ?');
      params.push(opts.kind);
    }
    return this.db
      .prepare(`SELECT * FROM jobs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id LIMIT ?`)
      .all(...params, opts.limit ?? 100)
      .map((r) => JobRowSchema.parse(r));
  }

  setStatus(id: string, status: JobStatus, extra: { error?: string | null; result?: unknown } = {}): void {
    const ts = now();
    // Whoever runs (or resumes) the job owns it from now on.
    if (status === 'running') this.db.prepare('UPDATE jobs SET owner_pid = ?, owner_host = ? WHERE id = ?').run(process.pid, os.hostname(), id);
    const terminal = status === 'done' || status === 'failed' || status === 'cancelled' || status === 'interrupted';
    this.db
      .prepare(
        `UPDATE jobs SET status = ?, updated_at = ?, started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,
           finished_at = CASE WHEN ? THEN ? ELSE NULL END, error = coalesce(?, CASE WHEN ? = 'running' THEN NULL ELSE error END),
           result_json = coalesce(?, result_json) WHERE id = ?`,
      )
      .run(status, ts, status, ts, terminal ? 1 : 0, ts, extra.error ?? null, status, extra.result === undefined ? null : JSON.stringify(extra.result), id);
  }

  progress(id: string, p: { done: number; total?: number | null; message?: string | null }): void {
    this.db
      .prepare('UPDATE jobs SET done = ?, total = coalesce(?, total), message = coalesce(?, message), updated_at = ? WHERE id = ?')
      .run(p.done, p.total ?? null, p.message ?? null, now(), id);
  }

  /**
   * Progress without waiting: while another connection holds the write lock (an import's single transaction),
   * waiting would block this thread, the very one the import runs on. Skipped progress is only a stale counter.
   */
  tryProgress(id: string, p: { done: number; total?: number | null; message?: string | null }): boolean {
    const prev = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma('busy_timeout = 0');
    try {
      this.progress(id, p);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return false;
      throw err;
    } finally {
      this.db.pragma(`busy_timeout = ${prev}`);
    }
  }

  /** Saves the job's resume point. Call in the same transaction as the work it describes. */
  checkpoint(id: string, checkpoint: unknown): void {
    this.db.prepare('UPDATE jobs SET checkpoint_json = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(checkpoint), now(), id);
  }

  /**
   * At startup: jobs still marked running or queued belong to a process that died (crash, kill -9, power loss);
   * mark them interrupted so they can be resumed. Returns their ids.
   */
  markInterrupted(isAlive: (pid: number) => boolean = pidAlive, runningHere: (jobId: string) => boolean = () => false): string[] {
    return this.db.transaction(() => {
      const rows = this.db.prepare("SELECT id, owner_pid, owner_host FROM jobs WHERE status IN ('running','queued')").all() as {
        id: string;
        owner_pid: number | null;
        owner_host: string | null;
      }[];
      const host = os.hostname();
      // Another live process (the CLI beside the app, on this machine) may be running a job: leave those alone.
      // Jobs owned by another host cannot be checked; a shared database across hosts is not supported.
      // Jobs of this very process are alive only if a runner here is executing them (a runner that was closed, or a
      // row left by an earlier process that had the same pid, is not).
      const dead = rows.filter(
        (r) =>
          r.owner_pid === null ||
          r.owner_host !== host ||
          (r.owner_pid === process.pid ? !runningHere(r.id) : !isAlive(r.owner_pid)),
      );
      const stmt = this.db.prepare(
        "UPDATE jobs SET status = 'interrupted', updated_at = ?, finished_at = ?, error = 'the process running it stopped (crash or kill)' WHERE id = ?",
      );
      for (const r of dead) stmt.run(now(), now(), r.id);
      return dead.map((r) => r.id);
    }).immediate();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
