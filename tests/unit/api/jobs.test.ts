import path from 'node:path';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { ImportReport } from '../../../main/api/contract';
import { dataDir, tempDir } from '../../helpers/paths';
import { followJob } from '../../helpers/jobs';

const follow = followJob;

describe('long jobs through the API (real engine: import, export)', () => {
  const open: Handlers[] = [];
  const make = (dbPath: string) => {
    const h = createHandlers({ dbPath, actor: 'tester' });
    open.push(h);
    return h;
  };
  afterEach(() => open.splice(0).forEach((h) => h.close()));

  it('imports with progress and returns the import report; a bad path is refused before any job starts', async () => {
    const h = make(path.join(tempDir(), 'a.db'));
    const { jobId } = await h.importDataset({ path: path.join(dataDir, 'pku-saferlhf-sample', 'pairs.jsonl'), name: 'pku' });
    const job = await follow(h, jobId);
    expect(job.state).toBe('done');
    expect(job.progress).toBe(1);
    const report = ImportReport.parse(job.result);
    expect(report.imported).toBe(16);
    expect(report.format).toBe('standard');
    expect((await h.listDatasets({})).datasets.map((d) => [d.name, d.counts.total])).toEqual([['pku', 16]]);
    await expect(h.importDataset({ path: '/nonexistent/file.jsonl' })).rejects.toThrow(/nonexistent.*existing file/);
    await expect(h.importDataset({ path: path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), format: 'csv' })).rejects.toThrow(/format/);
  });

  it('shows a job left running by a dead process as interrupted and resumes it', async () => {
    const db = path.join(tempDir(), 'b.db');
    const first = make(db);
    // What a crash leaves behind: a job row still marked running, its work not committed.
    first.store.jobs.create({ id: 'crashed-import', kind: 'import', params: { file: path.join(dataDir, 'pku-saferlhf-sample', 'pairs.jsonl'), dataset: 'pku', format: 'auto' } });
    first.store.jobs.setStatus('crashed-import', 'running');
    // ...owned by a process that has exited (the job table records its owner's pid).
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid;
    first.store.db.prepare('UPDATE jobs SET owner_pid = ? WHERE id = ?').run(deadPid, 'crashed-import');
    first.close();
    open.pop();

    const h = make(db);
    const listed = (await h.listJobs({})).jobs.find((j) => j.id === 'crashed-import')!;
    expect(listed.state).toBe('interrupted');
    expect(listed.resumable).toBe(true);
    const { jobId } = await h.resumeJob({ jobId: 'crashed-import' });
    const done = await follow(h, jobId);
    expect(done.state).toBe('done');
    expect(ImportReport.parse(done.result).imported).toBe(16);
  });

  it('exports the kept pairs as a job and previews the same first lines', async () => {
    const dir = tempDir();
    const h = make(path.join(dir, 'c.db'));
    await follow(h, (await h.importDataset({ path: path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), name: 'tqa' })).jobId);
    const datasetId = (await h.listDatasets({})).datasets[0].id;
    const page = await h.queryPairs({ datasetId, offset: 0, limit: 3, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'index', dir: 'asc' } });
    await h.decide({ pairId: page.rows[0].id, decision: 'swap' });
    await h.decide({ pairId: page.rows[1].id, decision: 'keep' });
    const none = { uncertain: false, undecided: false };
    const preview = await h.exportPreview({ datasetId, format: 'standard', lines: 5, include: none });
    expect(preview.counts).toMatchObject({ total: 790, kept: 2, swapped: 1 });
    expect(preview.lines.map((l) => JSON.parse(l))).toEqual([
      { prompt: page.rows[0].prompt, chosen: page.rows[0].rejected, rejected: page.rows[0].chosen },
      { prompt: page.rows[1].prompt, chosen: page.rows[1].chosen, rejected: page.rows[1].rejected },
    ]);
    const out = path.join(dir, 'curated.jsonl');
    const dropped = path.join(dir, 'left-out.jsonl');
    const job = await follow(h, (await h.exportDataset({ datasetId, format: 'standard', path: out, include: none, droppedPath: dropped })).jobId);
    expect(job.state).toBe('done');
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toEqual(preview.lines);
    expect((job.result as { path: string }).path).toBe(out);
    // The audit file holds the 788 pairs left out (never scored, never decided), each with its decision.
    const left = fs.readFileSync(dropped, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { decision: string });
    expect(left).toHaveLength(788);
    expect(new Set(left.map((l) => l.decision))).toEqual(new Set(['undecided']));
    // Including undecided pairs exports everything (the swap still applied).
    const all = await h.exportPreview({ datasetId, format: 'conversational', lines: 1, include: { uncertain: false, undecided: true } });
    expect(all.counts.kept).toBe(790);
    expect(JSON.parse(all.lines[0]).chosen).toEqual([{ role: 'assistant', content: page.rows[0].rejected }]);
    await expect(h.exportDataset({ datasetId, format: 'standard', path: '/nonexistent-dir/x.jsonl', include: none })).rejects.toThrow(/existing folder/);
  });
});
