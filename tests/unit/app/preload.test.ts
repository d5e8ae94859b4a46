import { describe, expect, it, vi } from 'vitest';
import { opNames } from '../../../main/api/contract';

// The Electron binary cannot run here; the preload only touches contextBridge and ipcRenderer, faked below.
const exposed: Record<string, unknown> = {};
const invoked: { channel: string; payload: unknown }[] = [];
vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, value: unknown) => (exposed[key] = value) },
  ipcRenderer: {
    invoke: async (channel: string, payload: unknown) => {
      invoked.push({ channel, payload });
      return channel === 'api:getJob' ? { ok: false, error: { kind: 'not-found', message: 'no job "x"' } } : { ok: true, value: { echoed: payload } };
    },
  },
}));

describe('preload bridge', () => {
  it('exposes exactly one frozen method per contract operation and nothing generic', async () => {
    await import('../../../preload/index');
    const api = exposed.api as Record<string, (i: unknown) => Promise<unknown>>;
    expect(Object.keys(exposed)).toEqual(['api']);
    expect(Object.keys(api).sort()).toEqual([...opNames].sort());
    expect(Object.isFrozen(api)).toBe(true);
    for (const generic of ['invoke', 'send', 'on', 'ipcRenderer', 'require']) expect(api[generic]).toBeUndefined();
    for (const name of opNames) expect(typeof api[name]).toBe('function');
  });

  it('each method calls only its own channel and unwraps the envelope', async () => {
    const api = exposed.api as Record<string, (i: unknown) => Promise<unknown>>;
    await expect(api.listDatasets({})).resolves.toEqual({ echoed: {} });
    expect(invoked.at(-1)).toEqual({ channel: 'api:listDatasets', payload: {} });
    const err = await api.getJob({ jobId: 'x' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('no job "x"');
    expect((err as Error).name).toBe('ApiError:not-found');
  });
});
