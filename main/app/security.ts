/**
 * Electron security settings as plain data and pure functions (no Electron binary needed), so tests can assert
 * them. Follows Electron's security checklist: isolation, sandbox, no Node in the renderer, web security, no
 * navigation or new windows, external links only http(s) via the OS browser, every permission denied.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

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

/** Where the renderer is loaded from: the built index.html, or the dev server electron-vite announces. */
export function rendererLocation(outDir: string, devServerUrl?: string): { kind: 'file'; path: string; url: string } | { kind: 'url'; url: string } {
  if (devServerUrl) {
    const u = new URL(devServerUrl);
    if (u.hostname !== 'localhost' && u.hostname !== '127.0.0.1') throw new Error(`refusing non-loopback dev server ${devServerUrl}`);
    return { kind: 'url', url: u.toString() };
  }
  const file = path.join(outDir, 'renderer', 'index.html');
  return { kind: 'file', path: file, url: pathToFileURL(file).toString() };
}

/**
 * Is an IPC call coming from our own renderer? Compares the sender frame's URL with the renderer's location:
 * the same file (ignoring hash/query) for the built app, the same origin for the dev server.
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
  if (want.protocol === 'file:') return got.protocol === 'file:' && got.pathname === want.pathname;
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
