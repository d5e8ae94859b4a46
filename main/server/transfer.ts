/**
 * File transfer for the browser, which cannot name paths on the server's disk: an upload is streamed into the
 * server's upload folder (then imported from there), and a finished export job's file is streamed back as a
 * download. Both sit behind the same token, Host and Origin checks as the API (main/server/index.ts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ApiHandlers } from '../api/contract';
import { InputError } from '../engine/errors';

/** A file name safe to create: the browser's base name with anything odd replaced; never a path. */
export function safeUploadName(raw: string | null): string {
  const base = path.basename((raw ?? '').replace(/\\/g, '/')).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '');
  return (base || 'upload').slice(0, 120);
}

export class TooLarge extends Error {}

/**
 * Streams the request body into `<dir>/<random>-<name>` (never overwriting; removed again if the upload fails or
 * exceeds `limit` bytes). Resolves with the written path.
 */
export async function receiveUpload(req: http.IncomingMessage, dir: string, rawName: string | null, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new TooLarge(`upload larger than the limit of ${limit} bytes`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${crypto.randomBytes(6).toString('hex')}-${safeUploadName(rawName)}`);
  let size = 0;
  const counter = async function* (src: AsyncIterable<Buffer>) {
    for await (const chunk of src) {
      size += chunk.length;
      if (size > limit) throw new TooLarge(`upload larger than the limit of ${limit} bytes`);
      yield chunk;
    }
  };
  try {
    await pipeline(req, counter, fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  }
  return file;
}

/** The file a finished export job wrote, or an InputError naming the job and what is wrong. */
export async function exportedFile(handlers: ApiHandlers, jobId: string): Promise<string> {
  const job = await handlers.getJob({ jobId });
  if (job.kind !== 'export') throw new InputError({ field: 'jobId', expected: 'an export job', got: `a ${job.kind} job` });
  if (job.state !== 'done') throw new InputError({ field: 'jobId', expected: 'a finished export job', got: job.state });
  const file = (job.result as { path?: unknown } | null)?.path;
  if (typeof file !== 'string' || !fs.existsSync(file)) throw new InputError({ field: 'jobId', expected: 'an export whose file still exists', got: String(file) });
  return file;
}

/** Streams a regular file as an attachment. */
export async function sendDownload(res: http.ServerResponse, file: string, headers: Record<string, string>): Promise<void> {
  const st = fs.statSync(file);
  const name = path.basename(file).replace(/[^A-Za-z0-9._-]+/g, '_');
  res.writeHead(200, {
    ...headers,
    'Content-Type': 'application/x-ndjson; charset=utf-8',
    'Content-Length': st.size,
    'Content-Disposition': `attachment; filename="${name}"`,
  });
  await pipeline(fs.createReadStream(file), res);
}
