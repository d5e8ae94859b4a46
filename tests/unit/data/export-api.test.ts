/**
 * The API export op (used by `serve` and the app) refuses the database as output and answers kind 'exists' for an
 * existing file, so the UI can ask and retry with overwrite (issue 9 row 1).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { dispatch } from '../../../main/api/dispatch';
import { ApiCallError } from '../../../main/api/contract';
import { startServer } from '../../../main/server';
import { httpClient } from '../../../renderer/src/api/http-client';
import { dataDir, tempDir } from '../../helpers/paths';
import { followJob } from '../../helpers/jobs';

const follow = followJob;

describe('exportDataset through the API', () => {
  const open: Handlers[] = [];
  afterEach(() => open.splice(0).forEach((h) => h.close()));

  it('refuses the database path (no job started); an existing file is kind "exists" until overwrite: true', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'studio.db');
    const h = createHandlers({ dbPath: db, actor: 'tester' });
    open.push(h);
    const imp = await follow(h, (await h.importDataset({ path: path.join(dataDir, 'halueval-qa', 'pairs.jsonl'), name: 'h' })).jobId);
    expect(imp.state).toBe('done');
    const datasetId = (await h.listDatasets({})).datasets[0]!.id;
    const include = { uncertain: false, undecided: true };
    const jobsBefore = (await h.listJobs({})).jobs.length;

    for (const p of [db, db + '-wal', db + '-shm']) {
      const env = await dispatch(h, 'exportDataset', { datasetId, format: 'standard', path: p, include, overwrite: true });
      expect(env).toMatchObject({ ok: false, error: { kind: 'input' } });
      expect(!env.ok && env.error.message).toMatch(/expected an output file that is not the database/);
    }
    const twice = await dispatch(h, 'exportDataset', { datasetId, format: 'standard', path: path.join(dir, 'c.jsonl'), droppedPath: path.join(dir, 'c.jsonl.provenance.json'), include });
    expect(twice).toMatchObject({ ok: false, error: { kind: 'input' } });
    expect((await h.listJobs({})).jobs.length).toBe(jobsBefore);
    expect((await h.listDatasets({})).datasets[0]!.counts.total).toBe(987);

    const out = path.join(dir, 'curated.jsonl');
    fs.writeFileSync(out, 'previous\n');
    fs.chmodSync(out, 0o640);
    const exists = await dispatch(h, 'exportDataset', { datasetId, format: 'standard', path: out, include });
    expect(exists).toMatchObject({ ok: false, error: { kind: 'exists' } });
    expect(!exists.ok && exists.error.message).toContain(out);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous\n');
    const retry = await dispatch(h, 'exportDataset', { datasetId, format: 'standard', path: out, include, overwrite: true });
    expect(retry.ok).toBe(true);
    const job = await follow(h, (retry as { value: { jobId: string } }).value.jobId);
    expect(job.state).toBe('done');
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(987);
    expect(fs.statSync(out).mode & 0o777).toBe(0o640);

    // The same through `sparserm serve` (HTTP): 409 with kind 'exists' (what the Export screen asks about), 400 for the database.
    const rendererDir = tempDir();
    fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html>');
    const server = await startServer({ handlers: h, rendererDir });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/exportDataset`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}` },
        body: JSON.stringify({ datasetId, format: 'standard', path: out, include }),
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ ok: false, error: { kind: 'exists' } });
      const api = httpClient(server.token, `http://127.0.0.1:${server.port}`);
      const err = await api.exportDataset({ datasetId, format: 'standard', path: db, include, overwrite: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiCallError);
      expect((err as ApiCallError).kind).toBe('input');
      expect((err as Error).message).toMatch(/not the database/);
      expect((await api.listDatasets({})).datasets[0]!.counts.total).toBe(987);
    } finally {
      await server.close();
    }
  });
});
