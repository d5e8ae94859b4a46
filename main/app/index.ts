/**
 * Electron main: creates the window with the secure options, applies the CSP and the navigation/permission rules,
 * registers IPC from the contract and owns the engine (database, ONNX Runtime) through the API handlers.
 * Kept thin on purpose: everything testable lives in security.ts, csp.ts, ipc.ts and ../api.
 */
import fs from 'node:fs';
import path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, protocol, session, shell } from 'electron';
import { createPickPath } from './dialog';
import { contentSecurityPolicy } from './csp';
import { registerIpc } from './ipc';
import { appProtocolReply } from './protocol';
import { APP_SCHEME, appSchemePrivileges, isNavigationAllowed, isSafeExternalUrl, permissionDecision, rendererLocation, windowOptions } from './security';
import { createHandlers, type Handlers } from '../api/handlers';
import { databasePath } from '../engine/paths';

app.enableSandbox();
// Must happen before 'ready': app:// gets a real, secure origin (CSP 'self', storage) and serves only out/renderer.
protocol.registerSchemesAsPrivileged(appSchemePrivileges());

// One engine per app: the database and ONNX Runtime live in this process; jobs run on its event loop and yield.
let handlers: Handlers | null = null;
/** The renderer's own URL: the only place any of our web contents may be. */
let rendererUrl: string | null = null;

async function createWindow(): Promise<void> {
  const outDir = path.join(__dirname, '..');
  // Packaged builds never honour ELECTRON_RENDERER_URL (it would make a loopback page the trusted IPC origin).
  const location = rendererLocation(outDir, process.env.ELECTRON_RENDERER_URL, { packaged: app.isPackaged });
  rendererUrl = location.url;
  if (location.kind === 'app' && !protocol.isProtocolHandled(APP_SCHEME)) {
    const root = location.root;
    protocol.handle(APP_SCHEME, (request) => {
      const r = appProtocolReply(root, request.url, request.method);
      return new Response(typeof r.body === 'string' ? r.body : new Uint8Array(r.body), { status: r.status, headers: r.headers });
    });
  }
  if (!handlers) {
    fs.mkdirSync(path.dirname(databasePath()), { recursive: true });
    // The native dialog is the Electron-only part of the API (pickPath); it is modal to the focused window.
    handlers = createHandlers({ dbPath: databasePath(), pickPath: createPickPath(dialog, () => BrowserWindow.getFocusedWindow()) });
    registerIpc(ipcMain, handlers, location.url);
  }

  const ses = session.defaultSession;
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [contentSecurityPolicy()] } });
  });
  ses.setPermissionRequestHandler((_wc, permission, callback) => callback(permissionDecision(permission)));
  ses.setPermissionCheckHandler((_wc, permission) => permissionDecision(permission));

  const win = new BrowserWindow(windowOptions(path.join(__dirname, '../preload/index.cjs')));
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  win.webContents.on('will-navigate', (event, url) => {
    if (!isNavigationAllowed(url, location.url)) {
      event.preventDefault();
      if (isSafeExternalUrl(url)) void shell.openExternal(url);
    }
  });
  win.webContents.on('will-attach-webview', (event) => event.preventDefault());
  win.once('ready-to-show', () => win.show());
  await win.loadURL(location.url);
}

// Every web contents, present or future: no redirects or navigation away from the renderer, no webviews, no popups.
app.on('web-contents-created', (_e, contents) => {
  const guard = (event: { preventDefault(): void }, url: string) => {
    if (!rendererUrl || !isNavigationAllowed(url, rendererUrl)) event.preventDefault();
  };
  contents.on('will-redirect', guard);
  contents.on('will-navigate', guard);
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
});

app.whenReady().then(createWindow, (err) => {
  console.error(err);
  app.quit();
});
app.on('window-all-closed', () => app.quit());
// Running jobs are cancelled (and resumable next launch); the database is closed cleanly.
app.on('before-quit', () => {
  handlers?.close();
  handlers = null;
});
