/**
 * The renderer's client over HTTP (`sparserm serve`): one POST per operation with the bearer token. DOM-free (only
 * fetch), so tests run it in Node against a real server.
 */
import { opNames, ApiCallError, type ApiClient, type ApiEnvelope, type ApiError } from '../../../main/api/contract';

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
