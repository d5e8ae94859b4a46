/**
 * The renderer's one client interface (ApiClient from the contract), implemented twice: over the preload bridge
 * under Electron and over fetch against `sparserm serve` in a browser. Screens never know which one they use.
 */
import { opNames, ApiCallError, type ApiClient, type ApiEnvelope, type ApiError } from '@api/contract';

export function ipcClient(bridge: ApiClient): ApiClient {
  return bridge;
}

export function httpClient(token: string, base = ''): ApiClient {
  const client: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const name of opNames) {
    client[name] = async (input: unknown) => {
      let res: Response;
      try {
        res = await fetch(`${base}/api/${name}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify(input ?? {}),
        });
      } catch (err) {
        throw new ApiCallError('internal', `cannot reach sparserm serve: ${err instanceof Error ? err.message : String(err)}`);
      }
      let env: ApiEnvelope;
      try {
        env = (await res.json()) as ApiEnvelope;
      } catch {
        throw new ApiCallError('internal', `${name}: HTTP ${res.status} without a JSON body`);
      }
      if (env.ok) return env.value;
      const e = env.error as ApiError;
      throw new ApiCallError(e.kind, e.message);
    };
  }
  return client as ApiClient;
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
