import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { httpClient } from '../../../renderer/src/api/http-client';
import { startServer, type RunningServer } from '../../../main/server';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { ApiCallError } from '../../../main/api/contract';
import type { EngineOps } from '../../../main/api/engine-ops';
import { seed } from '../api/seed';
import { tempDir } from '../../helpers/paths';

// The renderer's HTTP client against a real `serve`: the same calls the browser makes, the same envelopes.
describe('renderer httpClient ↔ sparserm serve', () => {
  let server: RunningServer;
  let h: Handlers;
  let datasetId: string;
  beforeAll(async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    h = createHandlers({ dbPath: ':memory:', engine: () => ({ explanation: () => null, listRuns: () => [] }) as unknown as EngineOps });
    datasetId = String(seed(h.store, { n: 12, margins: (i) => i - 6 }).datasetId);
    server = await startServer({ handlers: h, rendererDir: dir });
  });
  afterAll(async () => {
    await server.close();
    h.close();
  });

  it('round-trips typed calls', async () => {
    const api = httpClient(server.token, `http://127.0.0.1:${server.port}`);
    const { datasets } = await api.listDatasets({});
    expect(datasets[0].counts.total).toBe(12);
    const page = await api.queryPairs({ datasetId, offset: 0, limit: 5, sort: { by: 'margin', dir: 'desc' } });
    expect(page.total).toBe(12);
    expect(page.rows.map((r) => r.margin)).toEqual([5, 4, 3, 2, 1]);
    const row = await api.decide({ pairId: page.rows[0].id, decision: 'drop' });
    expect(row.decision).toBe('drop');
    const u = await api.undo({ datasetId });
    expect(u.pairIds).toEqual([page.rows[0].id]);
  });

  it('turns refusals into typed errors', async () => {
    const api = httpClient(server.token, `http://127.0.0.1:${server.port}`);
    const bad = await api.getPair({ pairId: 'x' }).catch((e) => e);
    expect(bad).toBeInstanceOf(ApiCallError);
    expect(bad.kind).toBe('input');
    const intruder = httpClient('not-the-token', `http://127.0.0.1:${server.port}`);
    const denied = await intruder.listDatasets({}).catch((e) => e);
    expect(denied.kind).toBe('unauthorized');
  });
});
