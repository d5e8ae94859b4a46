/**
 * The renderer's one client interface (ApiClient from the contract), implemented twice: over the preload bridge
 * under Electron and over fetch against `sparserm serve` in a browser. Screens never know which one they use, except
 * for files: Electron has the native dialog (pickPath), the browser uploads and downloads (FileTransfer).
 */
import type { ApiClient } from '../../../main/api/contract';
import { httpClient, httpTransfer, type FileTransfer } from './http-client';

export { httpClient, httpTransfer, type FileTransfer };

export function ipcClient(bridge: ApiClient): ApiClient {
  return bridge;
}

const TOKEN_KEY = 'sparserm.token';

/** The token in the address bar's fragment (`#token=…`), if any. */
export function tokenInHash(hash: string): string | null {
  return /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(hash)?.[1] ?? null;
}

/**
 * The token arrives in the URL fragment (`#token=…`, never sent to the server); it is kept in sessionStorage for
 * reloads and removed from the address bar so it does not end up in screenshots or bookmarks.
 */
export function tokenFromLocation(loc: Location, storage: Storage): string | null {
  const t = tokenInHash(loc.hash);
  if (t) {
    storage.setItem(TOKEN_KEY, t);
    history.replaceState(null, '', loc.pathname + loc.search);
    return t;
  }
  return storage.getItem(TOKEN_KEY);
}

export interface Connection {
  client: ApiClient;
  /** 'ipc': Electron (native dialogs); 'http': a browser against `sparserm serve` (upload / download). */
  transport: 'ipc' | 'http';
  transfer: FileTransfer | null;
}

export function createConnection(): Connection | null {
  if (window.api) return { client: ipcClient(window.api), transport: 'ipc', transfer: null };
  const token = tokenFromLocation(window.location, window.sessionStorage);
  return token ? { client: httpClient(token), transport: 'http', transfer: httpTransfer(token) } : null;
}

export function createClient(): ApiClient | null {
  return createConnection()?.client ?? null;
}
