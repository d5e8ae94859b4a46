/**
 * serve under hostile requests (issue 9, rows 8 and 11): an over-limit body gets a 413 with a JSON error (not a
 * reset connection), and the static server serves only regular files inside the renderer folder.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../../main/server';
import { readStatic } from '../../../main/server/static';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import type { EngineOps } from '../../../main/api/engine-ops';
import { tempDir } from '../../helpers/paths';

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

/** POST `size` bytes, optionally chunked (no Content-Length), sent in 64 KiB writes. */
function postBig(server: RunningServer, size: number, chunked: boolean): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      Host: `127.0.0.1:${server.port}`,
      'Content-Type': 'application/json',
      Authorization: `Bearer ${server.token}`,
    };
    if (!chunked) headers['Content-Length'] = String(size);
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/api/listDatasets', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    const piece = Buffer.alloc(64 << 10, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(piece.length, size - sent);
        sent += n;
        if (!req.write(piece.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

describe('serve request body limit', () => {
  let server: RunningServer;
  let handlers: Handlers;
  beforeAll(async () => {
    handlers = createHandlers({ dbPath: ':memory:', engine: () => ({}) as EngineOps });
    server = await startServer({ handlers, rendererDir: tempDir() });
  });
  afterAll(async () => {
    await server.close();
    handlers.close();
  });

  for (const chunked of [false, true]) {
    it(`answers 413 with a JSON error for a 2 MiB body (${chunked ? 'chunked' : 'Content-Length'})`, async () => {
      const r = await postBig(server, 2 << 20, chunked);
      expect(r.status).toBe(413);
      expect(r.headers['content-type']).toMatch(/application\/json/);
      expect(JSON.parse(r.body)).toEqual({ ok: false, error: { kind: 'input', message: 'request body larger than the limit of 1048576 bytes (1 MiB by default)' } });
    });
  }

  it('still answers a body just under the limit, and the next request after a 413', async () => {
    const r = await postBig(server, (1 << 20) - 16, false);
    // 1 MiB of spaces is valid JSON whitespace around nothing: a parse error, but a 400 answer, not a reset.
    expect(r.status).toBe(400);
    const ok = await postBig(server, 0, false);
    expect(ok.status).toBe(200);
  });
});

describe('static files: regular files under the renderer folder only', () => {
  const base = tempDir();
  const root = path.join(base, 'renderer');
  const outside = path.join(base, 'secret');
  beforeAll(() => {
    fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html>');
    fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'ok');
    fs.writeFileSync(path.join(outside, 'key.txt'), 'SECRET');
    fs.symlinkSync(path.join(outside, 'key.txt'), path.join(root, 'assets', 'leak.js'));
    fs.symlinkSync(outside, path.join(root, 'linkdir'));
    fs.symlinkSync('/etc/hostname', path.join(root, 'host.txt'));
    fs.symlinkSync('app.js', path.join(root, 'assets', 'alias.js'));
    fs.symlinkSync('/dev/zero', path.join(root, 'zero.js'));
    execFileSync('mkfifo', [path.join(root, 'pipe.js')]);
  });

  it('serves regular files', () => {
    expect(readStatic(root, '/assets/app.js')?.body.toString()).toBe('ok');
    expect(readStatic(root, '/')?.body.toString()).toBe('<!doctype html>');
  });

  it('refuses symlinks out of the folder (file or directory), devices, FIFOs and directories', () => {
    expect(readStatic(root, '/assets/leak.js')).toBeNull();
    expect(readStatic(root, '/linkdir/key.txt')).toBeNull();
    expect(readStatic(root, '/host.txt')).toBeNull();
    expect(readStatic(root, '/zero.js')).toBeNull();
    expect(readStatic(root, '/pipe.js')).toBeNull();
    expect(readStatic(root, '/assets')).toBeNull();
    // A link is never served, even one pointing inside: the build output holds none.
    expect(readStatic(root, '/assets/alias.js')).toBeNull();
  });

  it('through the server: the symlinked secret is a 404', async () => {
    const handlers = createHandlers({ dbPath: ':memory:', engine: () => ({}) as EngineOps });
    const server = await startServer({ handlers, rendererDir: root });
    try {
      const get = (p: string) =>
        new Promise<Reply>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: server.port, path: p, headers: { Host: `127.0.0.1:${server.port}` } }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          }).on('error', reject);
        });
      const leak = await get('/assets/leak.js');
      expect(leak.status).toBe(404);
      expect(leak.body).not.toContain('SECRET');
      const dir = await get('/linkdir/key.txt');
      expect(dir.body).not.toContain('SECRET');
      expect((await get('/assets/app.js')).body).toBe('ok');
    } finally {
      await server.close();
      handlers.close();
    }
  });
});
