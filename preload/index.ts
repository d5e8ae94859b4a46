/**
 * The preload bridge: exposes `window.api` with ONE METHOD PER OPERATION of the contract, each bound to its own
 * IPC channel. There is deliberately no generic invoke/send, so the renderer can reach nothing but the contract.
 * Runs sandboxed; the envelope is unwrapped here so the renderer sees plain values or an Error.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { OP_NAMES, type OpNameList } from '../main/api/op-names';

type ApiEnvelope = { ok: true; value: unknown } | { ok: false; error: { kind: string; message: string; field?: string } };

function method(name: OpNameList) {
  return async (input: unknown): Promise<unknown> => {
    const env = (await ipcRenderer.invoke(`api:${name}`, input ?? {})) as ApiEnvelope;
    if (env.ok) return env.value;
    const err = new Error(env.error.message);
    err.name = `ApiError:${env.error.kind}`;
    // The same fields as the HTTP client's ApiCallError, so screens read kind and field one way.
    Object.assign(err, { kind: env.error.kind, ...(env.error.field ? { field: env.error.field } : {}) });
    throw err;
  };
}

const api: Record<string, (input: unknown) => Promise<unknown>> = {};
for (const name of OP_NAMES) api[name] = method(name);

contextBridge.exposeInMainWorld('api', Object.freeze(api));
