/**
 * Issue 10 item 4 over `sparserm serve` with the real engine: path fields must be absolute (a clear error naming the
 * field), a browser upload is stored and imported, a finished export is downloaded — both behind the token — a
 * 0-pair export is refused unless allowEmpty, export counts never fold undecided/unscored pairs into "dropped", and
 * the native dialog op answers 'unavailable' here while the Electron implementation maps the dialog's answers.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../../main/server';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { contract } from '../../../main/api/contract';
import { dispatch } from '../../../main/api/dispatch';
import { requireAbsolutePaths } from '../../../main/server/path-policy';
import { safeUploadName } from '../../../main/server/transfer';
import { createPickPath } from '../../../main/app/dialog';
import { httpClient, httpTransfer } from '../../../renderer/src/api/http-client';
import { dataDir, tempDir } from '../../helpers/paths';

function raw(port: number, opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers: { Host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

describe('serve: paths, upload and download (issue 10 item 4)', () => {
  let server: RunningServer;
  let handlers: Handlers;
  const home = tempDir('sparserm-transfer-');
  const uploads = path.join(home, 'uploads');
  const pairsFile = path.join(dataDir, 'pku-saferlhf-sample', 'pairs.jsonl');
  const base = () => `http://127.0.0.1:${server.port}`;
  const follow = async (jobId: string) => {
    for (;;) {
      const j = await handlers.getJob({ jobId });
      if (j.state !== 'running' && j.state !== 'queued') return j;
      await new Promise((r) => setTimeout(r, 30));
    }
  };

  beforeAll(async () => {
    const rendererDir = path.join(home, 'renderer');
    fs.mkdirSync(rendererDir);
    fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>t</title>');
    handlers = createHandlers({ dbPath: path.join(home, 'db.sqlite'), actor: 'tester' });
    server = await startServer({ handlers, rendererDir, uploadDir: uploads, maxUploadBytes: 1 << 20 });
  });
  afterAll(async () => {
    await server.close();
    handlers.close();
  });

  it('refuses relative paths for import, export, models and labels, naming the field', async () => {
    const api = httpClient(server.token, base());
    await expect(api.importDataset({ path: 'pairs.jsonl' })).rejects.toMatchObject({ kind: 'input', field: 'path', message: expect.stringMatching(/field "path".*absolute path.*"pairs\.jsonl"/) });
    await expect(api.exportDataset({ datasetId: '1', format: 'standard', path: 'out/curated.jsonl', include: {} })).rejects.toMatchObject({ field: 'path' });
    await expect(api.exportDataset({ datasetId: '1', format: 'standard', path: '/tmp/x.jsonl', droppedPath: 'left.jsonl', include: {} })).rejects.toMatchObject({ field: 'droppedPath' });
    for (const op of ['addCheckpoint', 'addSae', 'importLabels'] as const) expect(() => requireAbsolutePaths(op, { path: './x' })).toThrow(/field "path"/);
    expect(() => requireAbsolutePaths('importDataset', { path: '/data/x.jsonl' })).not.toThrow();
    // Nothing was created from the refused calls.
    expect((await api.listDatasets({})).datasets).toEqual([]);
  });

  it('uploads a file behind the token and imports it from the stored copy', async () => {
    const bytes = fs.readFileSync(pairsFile);
    const noToken = await raw(server.port, { method: 'POST', path: '/upload?name=pairs.jsonl', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
    expect(noToken.status).toBe(401);
    const foreignHost = await raw(server.port, { method: 'POST', path: '/upload?name=x', body: 'x', headers: { Host: 'evil.example:80', Authorization: `Bearer ${server.token}` } });
    expect(foreignHost.status).toBe(421);
    const foreignOrigin = await raw(server.port, { method: 'POST', path: '/upload?name=x', body: 'x', headers: { Origin: 'http://evil.example', Authorization: `Bearer ${server.token}` } });
    expect(foreignOrigin.status).toBe(403);
    expect(fs.existsSync(uploads) ? fs.readdirSync(uploads) : []).toEqual([]);

    const stored = await httpTransfer(server.token, base()).upload(new Blob([bytes]), '../../etc/pairs sample.jsonl');
    expect(path.dirname(stored)).toBe(uploads);
    expect(path.basename(stored)).toMatch(/^[0-9a-f]{12}-pairs_sample\.jsonl$/);
    expect(fs.readFileSync(stored)).toEqual(bytes);
    const job = await follow((await handlers.importDataset({ path: stored, name: 'uploaded' })).jobId);
    expect(job.state).toBe('done');
    expect((await handlers.listDatasets({})).datasets.map((d) => [d.name, d.counts.total])).toEqual([['uploaded', 16]]);

    const tooBig = await raw(server.port, { method: 'POST', path: '/upload?name=big', body: Buffer.alloc((1 << 20) + 10), headers: { Authorization: `Bearer ${server.token}` } });
    expect(tooBig.status).toBe(413);
    expect(fs.readdirSync(uploads)).toHaveLength(1);
  });

  it('counts undecided and unscored apart from dropped, refuses a 0-pair export unless allowed, and downloads the file', async () => {
    const ds = (await handlers.listDatasets({})).datasets[0];
    const preview = await handlers.exportPreview({ datasetId: ds.id, format: 'standard', lines: 3, include: { uncertain: false, undecided: false } });
    // Unscored, undecided pairs are not "dropped".
    expect(preview.datasetName).toBe('uploaded');
    expect(preview.counts).toMatchObject({ total: 16, kept: 0, dropped: 0, undecided: 16, unscored: 16 });
    const out = path.join(home, 'curated.jsonl');
    const api = httpClient(server.token, base());
    await expect(api.exportDataset({ datasetId: ds.id, format: 'standard', path: out, include: {} })).rejects.toMatchObject({ kind: 'input', field: 'include', message: expect.stringMatching(/at least one pair.*"uploaded" has 16 pairs/) });
    expect(fs.existsSync(out)).toBe(false);

    // One curator decision: one kept pair, one dropped; the rest stay undecided.
    const rows = (await api.queryPairs({ datasetId: ds.id, offset: 0, limit: 2 })).rows;
    await handlers.decide({ pairId: rows[0].id, decision: 'keep' });
    await handlers.decide({ pairId: rows[1].id, decision: 'drop' });
    const after = await handlers.exportPreview({ datasetId: ds.id, format: 'standard', lines: 3, include: { uncertain: false, undecided: false } });
    expect(after.counts).toMatchObject({ total: 16, kept: 1, dropped: 1, undecided: 14 });

    const job = await follow((await api.exportDataset({ datasetId: ds.id, format: 'standard', path: out, include: {} })).jobId);
    expect(job.state).toBe('done');
    // Overwriting asks: the second export answers kind 'exists' until overwrite is set.
    await expect(api.exportDataset({ datasetId: ds.id, format: 'standard', path: out, include: {} })).rejects.toMatchObject({ kind: 'exists' });

    const noToken = await raw(server.port, { path: `/download/${job.id}` });
    expect(noToken.status).toBe(401);
    const file = await httpTransfer(server.token, base()).download(job.id);
    expect(file.name).toBe('curated.jsonl');
    expect(Buffer.from(await file.bytes.arrayBuffer())).toEqual(fs.readFileSync(out));
    expect(JSON.parse(fs.readFileSync(out, 'utf8').trim()).prompt).toBe(rows[0].prompt);
    // Only finished export jobs are downloadable.
    const importJob = (await handlers.listJobs({})).jobs.find((j) => j.kind === 'import')!;
    await expect(httpTransfer(server.token, base()).download(importJob.id)).rejects.toMatchObject({ kind: 'input', field: 'jobId' });
    await expect(httpTransfer(server.token, base()).download('nope')).rejects.toMatchObject({ kind: 'not-found' });

    // Forced: an empty selection writes an empty file.
    await handlers.decide({ pairId: rows[0].id, decision: null });
    const empty = path.join(home, 'empty.jsonl');
    const forced = await follow((await api.exportDataset({ datasetId: ds.id, format: 'standard', path: empty, include: {}, allowEmpty: true })).jobId);
    expect(forced.state).toBe('done');
    expect(fs.readFileSync(empty, 'utf8')).toBe('');
  });

  it('pickPath: unavailable under serve; in Electron it maps the native dialog', async () => {
    await expect(httpClient(server.token, base()).pickPath({ mode: 'save' })).rejects.toMatchObject({ kind: 'unavailable' });
    expect(contract.pickPath.input.safeParse({ mode: 'print' }).success).toBe(false);
    const calls: unknown[] = [];
    const fake = {
      showSaveDialog: async (...a: unknown[]) => (calls.push(['save', a.at(-1)]), { canceled: false, filePath: '/home/c/out.jsonl' }),
      showOpenDialog: async (...a: unknown[]) => (calls.push(['open', a.at(-1)]), { canceled: true, filePaths: [] }),
    };
    const withDialog = createHandlers({ dbPath: ':memory:', pickPath: createPickPath(fake as never, () => null) });
    try {
      await expect(dispatch(withDialog, 'pickPath', { mode: 'save', title: 'Export', filters: [{ name: 'JSONL', extensions: ['jsonl'] }] })).resolves.toEqual({ ok: true, value: { path: '/home/c/out.jsonl' } });
      await expect(dispatch(withDialog, 'pickPath', { mode: 'open' })).resolves.toEqual({ ok: true, value: { path: null } });
      expect(calls[0]).toEqual(['save', { title: 'Export', filters: [{ name: 'JSONL', extensions: ['jsonl'] }], properties: ['createDirectory', 'showOverwriteConfirmation'] }]);
      expect(calls[1]).toEqual(['open', { properties: ['openFile'] }]);
    } finally {
      withDialog.close();
    }
  });

  it('keeps upload names plain', () => {
    expect(safeUploadName('C:\\Users\\me\\my pairs.jsonl')).toBe('my_pairs.jsonl');
    expect(safeUploadName('..')).toBe('upload');
    expect(safeUploadName(null)).toBe('upload');
  });
});
