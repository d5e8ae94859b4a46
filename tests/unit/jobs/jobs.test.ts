import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

import { CancelledError, InputError } from '../../../main/engine/errors';
import { failedOnBadInput, jobResumable } from '../../../main/engine/store/jobs';
import { toJob } from '../../../main/api/store-mapping';
import { EtaEstimator, JobRunner, type JobSnapshot } from '../../../main/engine/jobs';
import { registerDataJobs } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { dataDir, tempDir } from '../../helpers/paths';

const Params = z.object({ batches: z.number().int().positive(), failAt: z.number().int().optional(), delayMs: z.number().optional() });

/** A job of N batches that records each finished batch in the same transaction as its checkpoint. */
function defineBatchJob(runner: JobRunner, log: number[]) {
  runner.store.db.exec('CREATE TABLE IF NOT EXISTS test_batches (job TEXT, batch INTEGER, PRIMARY KEY (job, batch))');
  runner.define<z.infer<typeof Params>, { batches: number }, { next: number }>(
    'batches',
    async (p, ctx) => {
      const start = ctx.checkpoint?.next ?? 0;
      for (let b = start; b < p.batches; b++) {
        if (p.failAt === b) throw new Error(`boom at ${b}`);
        ctx.store.transaction(() => {
          ctx.store.db.prepare('INSERT INTO test_batches(job, batch) VALUES (?, ?)').run(ctx.id, b);
          ctx.saveCheckpoint({ next: b + 1 });
        });
        log.push(b);
        ctx.progress(b + 1, p.batches, `batch ${b + 1}`);
        if (p.delayMs) await new Promise((r) => setTimeout(r, p.delayMs));
        await ctx.yield();
      }
      return { batches: p.batches };
    },
    Params,
  );
}

describe('long jobs', () => {
  it('runs a job to done with persisted progress and result, and emits progress events', async () => {
    const s = openStore(':memory:');
    const runner = new JobRunner(s);
    const log: number[] = [];
    defineBatchJob(runner, log);
    const events: JobSnapshot[] = [];
    const h = runner.start('batches', { batches: 5 });
    const unsub = runner.subscribe((e) => events.push(e), h.id);
    await expect(h.result).resolves.toEqual({ batches: 5 });
    unsub();
    const rec = runner.snapshot(h.id);
    expect(rec).toMatchObject({ status: 'done', done: 5, total: 5, result: { batches: 5 }, checkpoint: { next: 5 }, etaSeconds: 0 });
    expect(rec.startedAt).not.toBeNull();
    expect(rec.finishedAt).not.toBeNull();
    expect(events.at(-1)!.status).toBe('done');
    expect(log).toEqual([0, 1, 2, 3, 4]);
  });

  it('validates params with the kind schema and refuses unknown kinds', () => {
    const runner = new JobRunner(openStore(':memory:'));
    defineBatchJob(runner, []);
    expect(() => runner.start('batches', { batches: -1 })).toThrow(/batches/);
    expect(() => runner.start('nope', {})).toThrow(/one of: batches/);
  });

  it('cancel via AbortSignal stops between batches; status cancelled; resume continues from the checkpoint', async () => {
    const s = openStore(':memory:');
    const runner = new JobRunner(s);
    const log: number[] = [];
    defineBatchJob(runner, log);
    const h = runner.start('batches', { batches: 50, delayMs: 5 });
    setTimeout(() => runner.cancel(h.id), 60);
    await expect(h.result).rejects.toBeInstanceOf(CancelledError);
    const after = runner.snapshot(h.id);
    expect(after.status).toBe('cancelled');
    const doneBatches = log.length;
    expect(doneBatches).toBeGreaterThanOrEqual(3);
    expect(doneBatches).toBeLessThan(50);
    s.db.prepare('UPDATE jobs SET params_json = ? WHERE id = ?').run(JSON.stringify({ batches: 50 }), h.id);
    const r = runner.resume(h.id);
    await r.result;
    // every batch exactly once: nothing redone, nothing skipped
    expect(log).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(s.db.prepare('SELECT count(*) FROM test_batches WHERE job = ?').pluck().get(h.id)).toBe(50);
    expect(runner.snapshot(h.id).status).toBe('done');
    expect(() => runner.resume(h.id)).toThrow(/unfinished job/);
  });

  it('a failed job keeps its error and checkpoint and can be resumed', async () => {
    const s = openStore(':memory:');
    const runner = new JobRunner(s);
    const log: number[] = [];
    defineBatchJob(runner, log);
    const h = runner.start('batches', { batches: 6, failAt: 4 });
    await expect(h.result).rejects.toThrow('boom at 4');
    expect(runner.snapshot(h.id)).toMatchObject({ status: 'failed', error: 'boom at 4', checkpoint: { next: 4 } });
    // fix the cause (params are stored; here the handler reads failAt, so update the stored params like a retry with new input would)
    s.db.prepare('UPDATE jobs SET params_json = ? WHERE id = ?').run(JSON.stringify({ batches: 6 }), h.id);
    await runner.resume(h.id).result;
    expect(log).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a job failed by bad input (InputError) is not resumable; its error says what to fix', async () => {
    const dir = tempDir();
    const s = openStore(path.join(dir, 'db.sqlite'));
    const runner = registerDataJobs(new JobRunner(s));
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, '{"prompt": "p", "chosen": 1, "rejected": "r"}\n');
    const h = runner.start('import', { file: bad, dataset: 'x', format: 'standard', strict: true });
    await expect(h.result).rejects.toThrow(InputError);
    const snap = runner.snapshot(h.id);
    expect(snap.status).toBe('failed');
    expect(snap.error).toBe(
      `bad input: ${bad}, line 1: expected a valid row in strict mode (nothing was imported): field "chosen": expected a string, got number 1. ` +
        'Fix that and start a new import; resuming this job would fail the same way',
    );
    expect(failedOnBadInput(snap)).toBe(true);
    expect(jobResumable(snap)).toBe(false);
    expect(toJob(snap).resumable).toBe(false);
    expect(() => runner.resume(h.id)).toThrow(/field "job": expected a job that can be resumed .*fix the input and start a new import instead, got .*failed on bad input: .*line 1/);
    // other failures stay resumable
    const log: number[] = [];
    defineBatchJob(runner, log);
    const f = runner.start('batches', { batches: 3, failAt: 1 });
    await expect(f.result).rejects.toThrow('boom at 1');
    expect(runner.snapshot(f.id).error).toBe('boom at 1');
    expect(jobResumable(runner.snapshot(f.id))).toBe(true);
    expect(toJob(runner.snapshot(f.id)).resumable).toBe(true);
    s.close();
  });

  it('after a crash: jobs of dead processes become interrupted at startup and resume without redoing batches; live ones are left alone', async () => {
    const file = path.join(tempDir(), 'jobs.db');
    const s = openStore(file);
    const runner = new JobRunner(s);
    const log: number[] = [];
    defineBatchJob(runner, log);
    // Simulate a process that died after 2 of 5 batches: its row says running, owned by a pid that no longer exists.
    s.jobs.create({ id: 'crashed', kind: 'batches', params: { batches: 5 } });
    s.jobs.setStatus('crashed', 'running');
    s.db.exec('CREATE TABLE IF NOT EXISTS test_batches (job TEXT, batch INTEGER, PRIMARY KEY (job, batch))');
    s.transaction(() => {
      s.db.prepare("INSERT INTO test_batches VALUES ('crashed', 0), ('crashed', 1)").run();
      s.jobs.checkpoint('crashed', { next: 2 });
    });
    s.db.prepare("UPDATE jobs SET owner_pid = 999999999 WHERE id = 'crashed'").run();
    // A job owned by a live process (this one's parent) must not be touched.
    s.jobs.create({ id: 'live', kind: 'batches', params: { batches: 1 } });
    s.jobs.setStatus('live', 'running');
    s.db.prepare("UPDATE jobs SET owner_pid = ? WHERE id = 'live'").run(process.ppid);
    expect(runner.recoverInterrupted()).toEqual(['crashed']);
    expect(runner.snapshot('crashed').status).toBe('interrupted');
    expect(runner.snapshot('live').status).toBe('running');
    await runner.resume('crashed').result;
    expect(log).toEqual([2, 3, 4]);
    expect(s.db.prepare("SELECT count(*) FROM test_batches WHERE job = 'crashed'").pluck().get()).toBe(5);
  });

  it('in one process: a job running in another runner is left alone, a stale row owned by this pid is interrupted', async () => {
    const s = openStore(path.join(tempDir(), 'jobs2.db'));
    const a = new JobRunner(s);
    const log: number[] = [];
    defineBatchJob(a, log);
    const h = a.start('batches', { batches: 30, delayMs: 5 });
    s.jobs.create({ id: 'stale', kind: 'batches', params: { batches: 1 } });
    s.jobs.setStatus('stale', 'running'); // owned by this pid, but nobody runs it
    const b = new JobRunner(s);
    defineBatchJob(b, log);
    expect(b.recoverInterrupted()).toEqual(['stale']);
    expect(s.jobs.get(h.id).status).toBe('running');
    a.cancel(h.id);
    await expect(h.result).rejects.toBeInstanceOf(CancelledError);
  });

  it('yields to the event loop between batches (other callbacks and timers run while a job works)', async () => {
    const runner = new JobRunner(openStore(':memory:'));
    let interleaved = 0;
    let timerFiredAtBatch = -1;
    let batch = 0;
    runner.define('spin', async (_p, ctx) => {
      for (batch = 0; batch < 20; batch++) {
        const t = Date.now();
        while (Date.now() - t < 3); // a 3 ms batch of synchronous work
        await ctx.yield();
      }
      return batch;
    });
    let running = true;
    const tick = () => {
      if (!running) return;
      interleaved++;
      setImmediate(tick);
    };
    setImmediate(tick);
    setTimeout(() => (timerFiredAtBatch = batch), 1);
    await runner.start('spin', {}).result;
    running = false;
    expect(interleaved).toBeGreaterThanOrEqual(10);
    expect(timerFiredAtBatch).toBeGreaterThanOrEqual(0);
    expect(timerFiredAtBatch).toBeLessThan(19);
  });

  it('ETA from smoothed throughput', () => {
    const e = new EtaEstimator(1000);
    expect(e.update(0, 0)).toBeNull();
    expect(e.update(100, 1000)).toBeCloseTo(100, 9); // 100 units/s
    expect(e.etaSeconds(100, 1100)).toBeCloseTo(10, 9);
    e.update(300, 2000); // 200 units/s now: the estimate moves halfway (half-life 1 s)
    expect(e.unitsPerSecond).toBeCloseTo(150, 9);
    expect(e.etaSeconds(300, null)).toBeNull();
  });

  it('import and export run as jobs with byte progress', async () => {
    const dir = tempDir();
    const s = openStore(path.join(dir, 'db.sqlite'));
    const runner = registerDataJobs(new JobRunner(s));
    const imp = runner.start<{ imported: number }>('import', { file: path.join(dataDir, 'truthfulqa/pairs_all.jsonl'), dataset: 'tqa-all' });
    const r = await imp.result;
    expect(r.imported).toBe(11714);
    const snap = runner.snapshot(imp.id);
    expect(snap.status).toBe('done');
    expect(snap.total).toBeGreaterThan(0);
    expect(snap.done).toBe(snap.total); // all bytes read
    const exp = runner.start<{ counts: { exported: number } }>('export', { dataset: 'tqa-all', out: path.join(dir, 'o.jsonl'), includeUndecided: true });
    expect((await exp.result).counts.exported).toBe(11714);
  });
});
