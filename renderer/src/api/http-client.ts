/**
 * The renderer's client over HTTP (`sparserm serve`): one POST per operation with the bearer token. DOM-free (only
 * fetch), so tests run it in Node against a real server. Besides the contract: upload (a file for import) and
 * download (a finished export's file), which the browser needs because it cannot name paths on the server.
 */
import { opNames, ApiCallError, type ApiClient, type ApiEnvelope, type ApiError } from '../../../main/api/contract';

async function envelope(res: Response, what: string): Promise<unknown> {
  let env: ApiEnvelope;
  try {
    env = (await res.json()) as ApiEnvelope;
  } catch {
    throw new ApiCallError('internal', `${what}: HTTP ${res.status} without a JSON body`);
  }
  if (env.ok) return env.value;
  const e = env.error as ApiError;
  throw new ApiCallError(e.kind, e.message, e.field);
}

async function reach(what: string, go: () => Promise<Response>): Promise<Response> {
  try {
    return await go();
  } catch (err) {
    // The server is gone (stopped, restarting, tunnel down): a state the app shows, not a bug.
    throw new ApiCallError('unreachable', `cannot reach sparserm serve (${what}): ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function httpClient(token: string, base = ''): ApiClient {
  const client: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const name of opNames) {
    client[name] = async (input: unknown) => {
      const res = await reach(name, () =>
        fetch(`${base}/api/${name}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify(input ?? {}),
        }),
      );
      return envelope(res, name);
    };
  }
  return client as ApiClient;
}

export interface FileTransfer {
  /** Sends a file's bytes to the server; resolves with the absolute path it was stored at (to import from). */
  upload(body: Blob | Uint8Array, name: string): Promise<string>;
  /** The file a finished export job wrote, with its name. */
  download(jobId: string): Promise<{ name: string; bytes: Blob }>;
}

export function httpTransfer(token: string, base = ''): FileTransfer {
  const auth = { Authorization: `Bearer ${token}` };
  return {
    async upload(body, name) {
      const res = await reach('upload', () =>
        fetch(`${base}/upload?name=${encodeURIComponent(name)}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: body instanceof Blob ? body : new Blob([body as Uint8Array<ArrayBuffer>]) }),
      );
      return ((await envelope(res, 'upload')) as { path: string }).path;
    },
    async download(jobId) {
      const res = await reach('download', () => fetch(`${base}/download/${encodeURIComponent(jobId)}`, { headers: auth }));
      if (!res.ok) await envelope(res, 'download');
      const m = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') ?? '');
      return { name: m?.[1] ?? 'export.jsonl', bytes: await res.blob() };
    },
  };
}
