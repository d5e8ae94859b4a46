/**
 * Electron security settings as plain data and pure functions (no Electron binary needed), so tests can assert
 * them. Follows Electron's security checklist: isolation, sandbox, no Node in the renderer, web security, no
 * navigation or new windows, external links only http(s) via the OS browser, every permission denied.
 */
import path from 'node:path';

export interface SecureWebPreferences {
  preload: string;
  contextIsolation: true;
  sandbox: true;
  nodeIntegration: false;
  nodeIntegrationInWorker: false;
  nodeIntegrationInSubFrames: false;
  webSecurity: true;
  allowRunningInsecureContent: false;
  experimentalFeatures: false;
  webviewTag: false;
  navigateOnDragDrop: false;
  spellcheck: boolean;
}

export function windowOptions(preloadPath: string) {
  const webPreferences: SecureWebPreferences = {
    preload: preloadPath,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    experimentalFeatures: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    spellcheck: true,
  };
  return {
    width: 1440,
    height: 900,
    minWidth: 960,
    minHeight: 600,
    show: false,
    title: 'SparseRM Studio',
    backgroundColor: '#10141a',
    webPreferences,
  };
}

/**
 * The built renderer is served through this custom scheme (not `file://`, whose pages share one opaque origin with
 * every local file and get extra privileges): `app://sparserm/index.html`. Registered as standard + secure so it
 * has a real origin for CSP `'self'`, storage and fetch; nothing else (no CSP bypass, no service workers).
 */
export const APP_SCHEME = 'app';
export const APP_HOST = 'sparserm';
export const APP_URL = `${APP_SCHEME}://${APP_HOST}/index.html`;

/** The argument of `protocol.registerSchemesAsPrivileged` (called before the app is ready). */
export function appSchemePrivileges() {
  return [
    {
      scheme: APP_SCHEME,
      privileges: { standard: true, secure: true, supportFetchAPI: true, bypassCSP: false, allowServiceWorkers: false, corsEnabled: false, stream: false },
    },
  ];
}

export type RendererLocation = { kind: 'app'; root: string; url: string } | { kind: 'url'; url: string };

/**
 * Where the renderer is loaded from: the built files under `<outDir>/renderer` through `app://`, or the dev server
 * electron-vite announces in ELECTRON_RENDERER_URL. A packaged build ignores that variable: otherwise anyone who
 * can set the app's environment could make a loopback page of their own the trusted IPC origin.
 */
export function rendererLocation(outDir: string, devServerUrl?: string, opts: { packaged?: boolean } = {}): RendererLocation {
  if (devServerUrl && !opts.packaged) {
    const u = new URL(devServerUrl);
    if (u.hostname !== 'localhost' && u.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback dev server ${devServerUrl}`);
    return { kind: 'url', url: u.toString() };
  }
  return { kind: 'app', root: path.join(outDir, 'renderer'), url: APP_URL };
}

/**
 * Is an IPC call coming from our own renderer? Compares the sender frame's URL with the renderer's location:
 * the same `app://` host and page (ignoring hash/query) for the built app, the same origin for the dev server.
 * `file://` pages are never trusted.
 */
export function isTrustedSender(frameUrl: string | undefined | null, rendererUrl: string): boolean {
  if (!frameUrl) return false;
  let got: URL;
  let want: URL;
  try {
    got = new URL(frameUrl);
    want = new URL(rendererUrl);
  } catch {
    return false;
  }
  if (want.protocol === `${APP_SCHEME}:`) return got.protocol === want.protocol && got.host === want.host && got.pathname === want.pathname;
  if (want.protocol !== 'http:' && want.protocol !== 'https:') return false;
  return got.origin === want.origin;
}

/** Links the app may hand to the OS browser. */
export function isSafeExternalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

/** In-app navigation is never allowed: the renderer is a single page. */
export function isNavigationAllowed(targetUrl: string, rendererUrl: string): boolean {
  try {
    const t = new URL(targetUrl);
    const r = new URL(rendererUrl);
    // Only hash changes inside the same document.
    return t.protocol === r.protocol && t.host === r.host && t.pathname === r.pathname && t.search === r.search;
  } catch {
    return false;
  }
}

/** Every permission (camera, notifications, geolocation, ...) is denied: the app needs none. */
export function permissionDecision(_permission: string): false {
  return false;
}
