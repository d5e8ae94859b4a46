/**
 * The `app://` protocol handler as a pure function (no Electron needed, so tests can call it): a GET for
 * `app://sparserm/<path>` answers a regular file under out/renderer (the same confinement as `sparserm serve`:
 * real path inside the folder, no symlinks, devices or directories) with the CSP and nosniff; anything else is
 * refused.
 */
import { readStatic } from '../server/static';
import { contentSecurityPolicy } from './csp';
import { APP_HOST, APP_SCHEME } from './security';

export interface AppProtocolReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

export function appProtocolReply(rendererRoot: string, requestUrl: string, method = 'GET'): AppProtocolReply {
  const headers = { 'Content-Security-Policy': contentSecurityPolicy(), 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };
  const text = (status: number, body: string): AppProtocolReply => ({ status, headers: { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }, body });
  let u: URL;
  try {
    u = new URL(requestUrl);
  } catch {
    return text(400, 'bad request');
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return text(404, 'not found');
  if (method !== 'GET' && method !== 'HEAD') return text(405, 'only GET');
  const file = readStatic(rendererRoot, u.pathname);
  if (!file) return text(404, 'not found');
  return { status: 200, headers: { ...headers, 'Content-Type': file.contentType }, body: method === 'HEAD' ? '' : file.body };
}
