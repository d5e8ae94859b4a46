/**
 * `sparserm serve`: the contract over HTTP on 127.0.0.1 only. `POST /api/<operation>` with a JSON body and
 * `Authorization: Bearer <token>`; the reply is the same envelope Electron IPC returns. Everything else serves the
 * built renderer with the strict CSP. Requests with a foreign Host (DNS rebinding) or Origin are refused first.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { ApiHandlers, ApiEnvelope } from '../api/contract';
import { dispatch, toApiError } from '../api/dispatch';
import { requireAbsolutePaths } from './path-policy';
import { TooLarge, exportedFile, receiveUpload, sendDownload } from './transfer';
import { contentSecurityPolicy } from '../app/csp';
import { bearerToken, hostAllowed, newToken, originAllowed, tokenMatches } from './security';
import { readStatic } from './static';
import { handleOpenAi, type CompatBackend } from './openai-compat';

export interface ServeOptions {
  handlers: ApiHandlers;
  /** Folder of the built renderer (out/renderer). */
  rendererDir: string;
  port?: number;
  token?: string;
  /** Largest accepted request body. */
  maxBodyBytes?: number;
  /** Where browser uploads are stored before import (default: a fresh folder under the OS temp folder). */
  uploadDir?: string;
  /** Largest accepted upload (default 4 GiB). */
  maxUploadBytes?: number;
  /** `--policy`: serve this engine's decoding as OpenAI-compatible /v1/chat/completions (openai-compat.ts). */
  openAi?: CompatBackend;
}

export interface RunningServer {
  url: string;
  /** The URL to open: the token travels in the fragment, which browsers never send to a server or put in logs. */
  openUrl: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

const securityHeaders = (): Record<string, string> => ({
  'Content-Security-Policy': contentSecurityPolicy(),
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
});

function sendJson(res: http.ServerResponse, status: number, body: ApiEnvelope): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...securityHeaders(), 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

function refuse(res: http.ServerResponse, status: number, kind: 'unauthorized' | 'not-found' | 'input', message: string): void {
  sendJson(res, status, { ok: false, error: { kind, message } });
}

/** The body was larger than the limit: answered 413 (not a connection reset) after the reply is sent. */
class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than the limit of ${limit} bytes (1 MiB by default)`);
  }
}

/** Bytes of an over-limit body still read and discarded so the client gets the 413 instead of a reset. */
const DRAIN_BYTES = 16 << 20;
const DRAIN_MS = 5000;

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return reject(new BodyTooLarge(limit));
    let chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        chunks = [];
        req.off('data', onData);
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * After a 413: keep reading (and dropping) what the client is still sending, so the client reads the reply instead
 * of a reset (no `Connection: close`: Node would destroy the socket while the client is still writing, and the client
 * would see EPIPE); a client that keeps sending is cut off after a bound.
 */
function drainThenClose(req: http.IncomingMessage): void {
  let drained = 0;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, DRAIN_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_BYTES) cut();
  });
  req.on('end', () => clearTimeout(timer));
  req.on('close', () => clearTimeout(timer));
  req.resume();
}

const statusFor: Record<string, number> = { input: 400, exists: 409, 'not-found': 404, cancelled: 409, unauthorized: 401, unavailable: 501, internal: 500 };

export function startServer(opts: ServeOptions): Promise<RunningServer> {
  const token = opts.token ?? newToken();
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const maxUpload = opts.maxUploadBytes ?? 4 * 1024 ** 3;
  let uploadDir = opts.uploadDir ?? null;
  let port = opts.port ?? 0;

  const server = http.createServer(async (req, res) => {
    try {
      if (!hostAllowed(req.headers.host, port)) return refuse(res, 421, 'unauthorized', 'Host header is not this loopback server');
      if (!originAllowed(req.headers.origin, port)) return refuse(res, 403, 'unauthorized', 'cross-origin request refused');
      const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
      // The browser's file transfer: same token as the API (a download is fetched with the header, never a link).
      if (url.pathname === '/upload' || url.pathname.startsWith('/download/')) {
        if (!tokenMatches(token, bearerToken(req.headers.authorization))) return refuse(res, 401, 'unauthorized', 'missing or wrong token');
        if (url.pathname === '/upload') {
          if (req.method !== 'POST') return refuse(res, 405, 'input', 'use POST');
          try {
            uploadDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-uploads-'));
            const file = await receiveUpload(req, uploadDir, url.searchParams.get('name'), maxUpload);
            return sendJson(res, 200, { ok: true, value: { path: file } });
          } catch (err) {
            if (err instanceof TooLarge) {
              drainThenClose(req);
              return refuse(res, 413, 'input', err.message);
            }
            throw err;
          }
        }
        if (req.method !== 'GET') return refuse(res, 405, 'input', 'use GET');
        try {
          const file = await exportedFile(opts.handlers, decodeURIComponent(url.pathname.slice('/download/'.length)));
          return await sendDownload(res, file, securityHeaders());
        } catch (err) {
          const e = toApiError(err);
          return sendJson(res, statusFor[e.kind] ?? 500, { ok: false, error: e });
        }
      }
      if (opts.openAi && url.pathname.startsWith('/v1/')) {
        return await handleOpenAi(opts.openAi, req, res, url.pathname, {
          authorized: tokenMatches(token, bearerToken(req.headers.authorization)),
          readBody: () => readBody(req, maxBody),
          isTooLarge: (err) => err instanceof BodyTooLarge,
          onTooLarge: () => drainThenClose(req),
          headers: securityHeaders(),
        });
      }
      if (url.pathname.startsWith('/api/')) {
        if (!tokenMatches(token, bearerToken(req.headers.authorization))) return refuse(res, 401, 'unauthorized', 'missing or wrong token');
        if (req.method !== 'POST') return refuse(res, 405 as number, 'input', 'use POST');
        if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return refuse(res, 415, 'input', 'Content-Type must be application/json');
        let input: unknown;
        try {
          const text = await readBody(req, maxBody);
          input = text.length ? JSON.parse(text) : {};
        } catch (err) {
          if (err instanceof BodyTooLarge) {
            drainThenClose(req);
            return refuse(res, 413, 'input', err.message);
          }
          return refuse(res, 400, 'input', `request body: ${err instanceof Error ? err.message : String(err)}`);
        }
        const name = url.pathname.slice('/api/'.length);
        try {
          requireAbsolutePaths(name, input);
        } catch (err) {
          return sendJson(res, 400, { ok: false, error: toApiError(err) });
        }
        const env = await dispatch(opts.handlers, name, input);
        return sendJson(res, env.ok ? 200 : statusFor[env.error.kind] ?? 500, env);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'input', 'only GET for static files');
      // Single-page app: unknown non-asset paths fall back to index.html.
      const file = readStatic(opts.rendererDir, url.pathname) ?? (url.pathname.includes('.') ? null : readStatic(opts.rendererDir, '/index.html'));
      if (!file) {
        res.writeHead(404, { ...securityHeaders(), 'Content-Type': 'text/plain; charset=utf-8' });
        return res.end('not found');
      }
      res.writeHead(200, { ...securityHeaders(), 'Content-Type': file.contentType, 'Content-Length': file.body.length });
      res.end(req.method === 'HEAD' ? undefined : file.body);
    } catch (err) {
      if (!res.headersSent) refuse(res, 500 as number, 'input', err instanceof Error ? err.message : String(err));
      else res.destroy();
    }
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Loopback only, never 0.0.0.0: the API can read and change the curator's data.
    server.listen(port, '127.0.0.1', () => {
      port = (server.address() as AddressInfo).port;
      const url = `http://127.0.0.1:${port}/`;
      resolve({
        url,
        openUrl: `${url}#token=${token}`,
        port,
        token,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections?.();
            server.close(() => {
              // Uploads are imported into the database; a folder we made for them goes with the server.
              if (uploadDir && !opts.uploadDir) fs.rmSync(uploadDir, { recursive: true, force: true });
              r();
            });
          }),
      });
    });
  });
}
