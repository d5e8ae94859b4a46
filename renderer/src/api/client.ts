/**
 * The renderer's one client interface (ApiClient from the contract), implemented twice: over the preload bridge
 * under Electron and over fetch against `sparserm serve` in a browser. Screens never know which one they use.
 */
import type { ApiClient } from '../../../main/api/contract';
import { httpClient } from './http-client';

export { httpClient };

export function ipcClient(bridge: ApiClient): ApiClient {
  return bridge;
}

/**
 * The token arrives in the URL fragment (`#token=…`, never sent to the server); it is kept in sessionStorage for
 * reloads and removed from the address bar so it does not end up in screenshots or bookmarks.
 */
export function tokenFromLocation(loc: Location, storage: Storage): string | null {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(loc.hash);
  if (m) {
    storage.setItem('sparserm.token', m[1]);
    history.replaceState(null, '', loc.pathname + loc.search);
    return m[1];
  }
  return storage.getItem('sparserm.token');
}

export function createClient(): ApiClient | null {
  if (window.api) return ipcClient(window.api);
  const token = tokenFromLocation(window.location, window.sessionStorage);
  return token ? httpClient(token) : null;
}
