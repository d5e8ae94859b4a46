/**
 * The native open/save dialog behind the `pickPath` operation (Electron only): the curator picks a file instead of
 * typing its path. Takes the dialog and the window as arguments so it is tested without Electron.
 */
import type { BrowserWindow, Dialog, OpenDialogOptions, SaveDialogOptions } from 'electron';
import type { OpOutput, OpParsedInput } from '../api/contract';

export type DialogLike = Pick<Dialog, 'showOpenDialog' | 'showSaveDialog'>;

export function createPickPath(dialog: DialogLike, window: () => BrowserWindow | null) {
  return async (i: OpParsedInput<'pickPath'>): Promise<OpOutput<'pickPath'>> => {
    const common = { ...(i.title ? { title: i.title } : {}), ...(i.defaultPath ? { defaultPath: i.defaultPath } : {}), ...(i.filters ? { filters: i.filters } : {}) };
    const win = window();
    if (i.mode === 'save') {
      const opts: SaveDialogOptions = { ...common, properties: ['createDirectory', 'showOverwriteConfirmation'] };
      const r = win ? await dialog.showSaveDialog(win, opts) : await dialog.showSaveDialog(opts);
      return { path: r.canceled || !r.filePath ? null : r.filePath };
    }
    const opts: OpenDialogOptions = { ...common, properties: ['openFile'] };
    const r = win ? await dialog.showOpenDialog(win, opts) : await dialog.showOpenDialog(opts);
    return { path: r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0] };
  };
}
