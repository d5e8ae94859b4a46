import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../../main/server';
import { bearerToken, hostAllowed, originAllowed, tokenMatches } from '../../../main/server/security';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import type { EngineOps } from '../../../main/api/engine-ops';
import { tempDir } from '../../helpers/paths';

function request(port: number, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (opts.body) req.write(opts.body);
    req.end();
  });
}

describe('sparserm serve', () => {
  let server: RunningServer;
  let handlers: Handlers;
  let rendererDir: string;
  const api = (name: string, body: unknown, headers: Record<string, string> = {}) =>
    request(server.port, {
      method: 'POST',
      path: `/api/${name}`,
      headers: { Host: `127.0.0.1:${server.port}`, 'Content-Type': 'application/json', Authorization: `Bearer ${server.token}`, ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    rendererDir = tempDir();
    fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>t</title>');
    fs.mkdirSync(path.join(rendererDir, 'assets'));
    fs.writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
    handlers = createHandlers({ dbPath: ':memory:', engine: () => ({}) as EngineOps });
    handlers.store.datasets.create('first');
    server = await startServer({ handlers, rendererDir });
  });
  afterAll(async () => {
    await server.close();
    handlers.close();
  });

  it('binds to 127.0.0.1 and prints an URL carrying the token in the fragment', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    expect(server.openUrl).toBe(`${server.url}#token=${server.token}`);
    expect(server.token.length).toBeGreaterThanOrEqual(40);
  });

  it('answers API calls that carry the token', async () => {
    const r = await api('listDatasets', {});
    expect(r.status).toBe(200);
    const env = JSON.parse(r.body);
    expect(env.ok).toBe(true);
    expect(env.value.datasets.map((d: { name: string }) => d.name)).toEqual(['first']);
  });

  it('refuses API calls without a token or with a wrong one', async () => {
    const none = await request(server.port, { method: 'POST', path: '/api/listDatasets', headers: { Host: `127.0.0.1:${server.port}`, 'Content-Type': 'application/json' }, body: '{}' });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body).error.kind).toBe('unauthorized');
    const wrong = await api('listDatasets', {}, { Authorization: `Bearer ${server.token.slice(0, -1)}x` });
    expect(wrong.status).toBe(401);
    // A token in the query string is not accepted: it would end up in logs and history.
    const query = await request(server.port, { method: 'POST', path: `/api/listDatasets?token=${server.token}`, headers: { Host: `127.0.0.1:${server.port}`, 'Content-Type': 'application/json' }, body: '{}' });
    expect(query.status).toBe(401);
  });

  it('refuses a non-loopback Host (DNS rebinding) and a foreign Origin, even with the token', async () => {
    const rebinding = await api('listDatasets', {}, { Host: `attacker.example:${server.port}` });
    expect(rebinding.status).toBe(421);
    const otherPort = await api('listDatasets', {}, { Host: `127.0.0.1:${server.port + 1}` });
    expect(otherPort.status).toBe(421);
    const page = await request(server.port, { path: '/', headers: { Host: `evil.test:${server.port}` } });
    expect(page.status).toBe(421);
    const origin = await api('listDatasets', {}, { Origin: 'http://evil.test' });
    expect(origin.status).toBe(403);
    const ok = await api('listDatasets', {}, { Origin: `http://localhost:${server.port}`, Host: `localhost:${server.port}` });
    expect(ok.status).toBe(200);
  });

  it('validates payloads against the contract and names the bad field', async () => {
    const r = await api('queryPairs', { datasetId: '1', offset: -1, limit: 10 });
    expect(r.status).toBe(400);
    const env = JSON.parse(r.body);
    expect(env.error.kind).toBe('input');
    expect(env.error.message).toMatch(/offset/);
    const unknown = await api('rmRf', {});
    expect(unknown.status).toBe(404);
    const notJson = await request(server.port, { method: 'POST', path: '/api/listDatasets', headers: { Host: `127.0.0.1:${server.port}`, Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' }, body: '{nope' });
    expect(notJson.status).toBe(400);
    const get = await request(server.port, { path: '/api/listDatasets', headers: { Host: `127.0.0.1:${server.port}`, Authorization: `Bearer ${server.token}` } });
    expect(get.status).toBe(405);
  });

  it('serves the renderer with the strict CSP and refuses path traversal', async () => {
    const r = await request(server.port, { path: '/', headers: { Host: `127.0.0.1:${server.port}` } });
    expect(r.status).toBe(200);
    expect(r.body).toContain('<title>t</title>');
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-eval/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    const js = await request(server.port, { path: '/assets/app.js', headers: { Host: `127.0.0.1:${server.port}` } });
    expect(js.headers['content-type']).toMatch(/javascript/);
    const trav = await request(server.port, { path: '/assets/..%2f..%2f..%2fetc/passwd', headers: { Host: `127.0.0.1:${server.port}` } });
    expect(trav.status).toBe(404);
    expect(trav.body).not.toContain('root:');
  });
});

describe('serve security helpers', () => {
  it('compares tokens in constant time and accepts only an exact match', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abc', 'abd')).toBe(false);
    expect(tokenMatches('abc', 'abcd')).toBe(false);
    expect(tokenMatches('abc', '')).toBe(false);
    expect(tokenMatches('abc', null)).toBe(false);
  });
  it('reads only a Bearer authorization header', () => {
    expect(bearerToken('Bearer xyz')).toBe('xyz');
    expect(bearerToken('Basic xyz')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
  it('allows only loopback hosts on our port', () => {
    expect(hostAllowed('127.0.0.1:8080', 8080)).toBe(true);
    expect(hostAllowed('localhost:8080', 8080)).toBe(true);
    expect(hostAllowed('LOCALHOST:8080', 8080)).toBe(true);
    expect(hostAllowed('127.0.0.1', 8080)).toBe(false);
    expect(hostAllowed('192.168.1.2:8080', 8080)).toBe(false);
    expect(hostAllowed(undefined, 8080)).toBe(false);
    expect(originAllowed(undefined, 8080)).toBe(true);
    expect(originAllowed('http://127.0.0.1:8080', 8080)).toBe(true);
    expect(originAllowed('https://127.0.0.1:8080', 8080)).toBe(false);
    expect(originAllowed('null', 8080)).toBe(false);
  });
});
