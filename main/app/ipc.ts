/**
 * Electron IPC derived from the contract: one channel per operation (`api:<name>`), each call's sender frame
 * checked against the renderer's URL and its payload validated by dispatch() before any handler runs.
 */
import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { opNames, type ApiEnvelope, type ApiHandlers } from '../api/contract';
import { dispatch } from '../api/dispatch';
import { isTrustedSender } from './security';

export const channelFor = (name: string): string => `api:${name}`;

export function registerIpc(ipcMain: Pick<IpcMain, 'handle' | 'removeHandler'>, handlers: ApiHandlers, rendererUrl: string): () => void {
  for (const name of opNames) {
    ipcMain.handle(channelFor(name), async (event: IpcMainInvokeEvent, payload: unknown): Promise<ApiEnvelope> => {
      const frameUrl = event.senderFrame?.url;
      if (!isTrustedSender(frameUrl, rendererUrl)) {
        return { ok: false, error: { kind: 'unauthorized', message: `IPC from untrusted frame ${frameUrl ?? '(none)'}` } };
      }
      return dispatch(handlers, name, payload);
    });
  }
  return () => opNames.forEach((n) => ipcMain.removeHandler(channelFor(n)));
}
