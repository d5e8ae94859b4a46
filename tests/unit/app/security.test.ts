import { describe, expect, it } from 'vitest';
import { windowOptions, isTrustedSender, isSafeExternalUrl, isNavigationAllowed, permissionDecision, rendererLocation } from '../../../main/app/security';
import { contentSecurityPolicy, cspDirectives } from '../../../main/app/csp';
import { registerIpc, channelFor } from '../../../main/app/ipc';
import { opNames, type ApiEnvelope, type ApiHandlers } from '../../../main/api/contract';
import { OP_NAMES } from '../../../main/api/op-names';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../helpers/paths';

describe('BrowserWindow options', () => {
  const o = windowOptions('/app/out/preload/index.cjs');
  it('isolate and sandbox the renderer, with no Node', () => {
    expect(o.webPreferences).toMatchObject({
      preload: '/app/out/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
    });
  });
});

describe('Content-Security-Policy', () => {
  const csp = contentSecurityPolicy();
  it('allows scripts only from our origin: no inline scripts, no eval', () => {
    expect(cspDirectives['script-src']).toEqual(["'self'"]);
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toMatch(/object-src 'none'/);
    expect(csp).toMatch(/base-uri 'none'/);
    expect(csp).toMatch(/connect-src 'self'/);
  });
  it('is the same policy as the meta tag of the renderer page (also sent as a header by app://)', () => {
    const html = fs.readFileSync(path.join(repoRoot, 'renderer', 'index.html'), 'utf8');
    const meta = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBeDefined();
    const norm = (s: string) => s.split(';').map((d) => d.trim()).filter((d) => d && !d.startsWith('frame-ancestors')).sort();
    // frame-ancestors is ignored in a meta tag, so it is only sent as a header.
    expect(norm(meta!)).toEqual(norm(csp));
  });
});

describe('navigation, links and permissions', () => {
  const app = rendererLocation('/opt/app/out').url;
  it('trusts IPC only from the renderer page itself', () => {
    expect(app).toBe('app://sparserm/index.html');
    expect(isTrustedSender('app://sparserm/index.html#/review', app)).toBe(true);
    expect(isTrustedSender('app://sparserm/other.html', app)).toBe(false);
    expect(isTrustedSender('app://evil/index.html', app)).toBe(false);
    expect(isTrustedSender('file:///opt/app/out/renderer/index.html', app)).toBe(false);
    expect(isTrustedSender('file:///tmp/evil.html', app)).toBe(false);
    expect(isTrustedSender('https://example.com/', app)).toBe(false);
    expect(isTrustedSender(undefined, app)).toBe(false);
    const dev = rendererLocation('/x', 'http://localhost:5173/').url;
    expect(isTrustedSender('http://localhost:5173/#x', dev)).toBe(true);
    expect(isTrustedSender('http://localhost:5174/', dev)).toBe(false);
    expect(() => rendererLocation('/x', 'http://10.0.0.1:5173/')).toThrow(/non-loopback/);
  });
  it('opens only http(s) links externally, never file:, javascript: or custom schemes', () => {
    expect(isSafeExternalUrl('https://www.neuronpedia.org/gemma-2-2b/13-gemmascope-res-16k/4128')).toBe(true);
    expect(isSafeExternalUrl('http://example.com')).toBe(true);
    expect(isSafeExternalUrl('file:///etc/passwd')).toBe(false);
    expect(isSafeExternalUrl('javascript:alert(1)')).toBe(false);
    expect(isSafeExternalUrl('smb://host/share')).toBe(false);
    expect(isSafeExternalUrl('https://user:pw@example.com')).toBe(false);
  });
  it('blocks navigation away from the page and denies every permission', () => {
    expect(isNavigationAllowed('app://sparserm/index.html#review', app)).toBe(true);
    expect(isNavigationAllowed('app://sparserm/assets/x.js', app)).toBe(false);
    expect(isNavigationAllowed('file:///opt/app/out/renderer/index.html#review', app)).toBe(false);
    expect(isNavigationAllowed('https://example.com/', app)).toBe(false);
    expect(isNavigationAllowed('file:///etc/passwd', app)).toBe(false);
    for (const p of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal']) expect(permissionDecision(p)).toBe(false);
  });
});

describe('IPC derived from the contract', () => {
  it('the preload name list is exactly the contract', () => {
    expect([...OP_NAMES].sort()).toEqual([...opNames].sort());
  });
  it('registers one channel per operation, rejects untrusted frames and invalid payloads', async () => {
    const registered = new Map<string, (e: unknown, payload: unknown) => Promise<ApiEnvelope>>();
    const fake = { handle: (ch: string, fn: never) => registered.set(ch, fn), removeHandler: (ch: string) => registered.delete(ch) };
    let called = 0;
    const handlers = new Proxy({} as ApiHandlers, {
      get: () => async () => {
        called++;
        return { datasets: [] };
      },
    });
    const app = 'app://sparserm/index.html';
    const dispose = registerIpc(fake as never, handlers, app);
    expect([...registered.keys()].sort()).toEqual(opNames.map(channelFor).sort());
    const list = registered.get('api:listDatasets')!;
    const ok = await list({ senderFrame: { url: app } }, {});
    expect(ok).toEqual({ ok: true, value: { datasets: [] } });
    const evil = await list({ senderFrame: { url: 'https://evil.test/' } }, {});
    expect(evil.ok).toBe(false);
    expect(!evil.ok && evil.error.kind).toBe('unauthorized');
    const bad = await registered.get('api:getPair')!({ senderFrame: { url: app } }, { pairId: 42 });
    expect(!bad.ok && bad.error.kind).toBe('input');
    expect(!bad.ok && bad.error.message).toMatch(/pairId/);
    expect(called).toBe(1);
    dispose();
    expect(registered.size).toBe(0);
  });
});
