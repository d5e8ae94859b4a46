/**
 * The Electron shell's last gaps (issue 9): the renderer is served through the privileged `app://` scheme (not
 * file://) from out/renderer only; ELECTRON_RENDERER_URL is ignored in packaged builds; packaging flips the
 * security fuses. The Electron binary cannot run here, so the handler is tested as a pure function and the
 * packaging as configuration.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { appProtocolReply } from '../../../main/app/protocol';
import { APP_URL, appSchemePrivileges, isTrustedSender, rendererLocation } from '../../../main/app/security';
import { repoRoot, tempDir } from '../../helpers/paths';

describe('app:// protocol', () => {
  const base = tempDir();
  const root = path.join(base, 'renderer');
  beforeAll(() => {
    fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><script src="./assets/a.js"></script>');
    fs.writeFileSync(path.join(root, 'assets', 'a.js'), 'console.log(1)');
    fs.writeFileSync(path.join(base, 'secret.txt'), 'SECRET');
    fs.symlinkSync(path.join(base, 'secret.txt'), path.join(root, 'assets', 'link.js'));
  });

  it('is registered standard + secure, without CSP bypass or service workers', () => {
    const [s] = appSchemePrivileges();
    expect(s.scheme).toBe('app');
    expect(s.privileges).toMatchObject({ standard: true, secure: true, bypassCSP: false, allowServiceWorkers: false });
  });

  it('serves files under out/renderer with the CSP and nosniff', () => {
    const page = appProtocolReply(root, APP_URL);
    expect(page.status).toBe(200);
    expect(page.headers['Content-Type']).toMatch(/text\/html/);
    expect(page.headers['Content-Security-Policy']).toMatch(/script-src 'self'/);
    expect(page.headers['X-Content-Type-Options']).toBe('nosniff');
    const js = appProtocolReply(root, 'app://sparserm/assets/a.js');
    expect(String(js.body)).toBe('console.log(1)');
    expect(js.headers['Content-Type']).toMatch(/javascript/);
  });

  it('refuses traversal, symlinks out, other hosts, other schemes and non-GET methods', () => {
    expect(appProtocolReply(root, 'app://sparserm/../secret.txt').status).toBe(404);
    expect(appProtocolReply(root, 'app://sparserm/assets/..%2f..%2fsecret.txt').status).toBe(404);
    expect(appProtocolReply(root, 'app://sparserm/assets/link.js').status).toBe(404);
    expect(appProtocolReply(root, 'app://sparserm/assets').status).toBe(404);
    expect(appProtocolReply(root, 'app://other/index.html').status).toBe(404);
    expect(appProtocolReply(root, 'file:///etc/passwd').status).toBe(404);
    expect(appProtocolReply(root, APP_URL, 'POST').status).toBe(405);
    for (const url of ['app://sparserm/../secret.txt', 'app://sparserm/assets/link.js']) expect(String(appProtocolReply(root, url).body)).not.toContain('SECRET');
  });
});

describe('renderer location', () => {
  it('the built app loads app://sparserm/index.html from <out>/renderer, never file://', () => {
    expect(rendererLocation('/opt/app/out')).toEqual({ kind: 'app', root: path.join('/opt/app/out', 'renderer'), url: 'app://sparserm/index.html' });
  });

  it('a packaged build ignores ELECTRON_RENDERER_URL: a loopback page never becomes the trusted IPC origin', () => {
    const packaged = rendererLocation('/opt/app/out', 'http://127.0.0.1:5173/', { packaged: true });
    expect(packaged.url).toBe(APP_URL);
    expect(isTrustedSender('http://127.0.0.1:5173/', packaged.url)).toBe(false);
    const dev = rendererLocation('/opt/app/out', 'http://127.0.0.1:5173/', { packaged: false });
    expect(dev).toEqual({ kind: 'url', url: 'http://127.0.0.1:5173/' });
    expect(isTrustedSender('http://127.0.0.1:5173/#/review', dev.url)).toBe(true);
  });

  it('the main process passes app.isPackaged and loads the renderer through the protocol', () => {
    const src = fs.readFileSync(path.join(repoRoot, 'main', 'app', 'index.ts'), 'utf8');
    expect(src).toMatch(/rendererLocation\([^)]*packaged: app\.isPackaged/);
    expect(src).toMatch(/protocol\.registerSchemesAsPrivileged\(appSchemePrivileges\(\)\)/);
    expect(src).toMatch(/protocol\.handle\(APP_SCHEME/);
    expect(src).not.toMatch(/loadFile\(/);
  });
});

describe('packaging configuration (electron-builder.json)', () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'electron-builder.json'), 'utf8')) as Record<string, unknown> & {
    electronFuses: Record<string, boolean>;
    files: string[];
  };

  it('flips the security fuses', () => {
    expect(cfg.electronFuses).toMatchObject({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      grantFileProtocolExtraPrivileges: false,
    });
  });

  it('packs the built app into an asar (what onlyLoadAppFromAsar and integrity validation need), sources excluded', () => {
    expect(cfg.asar).toBe(true);
    expect(cfg.files).toContain('out/**/*');
    expect(cfg.files.some((f) => /^(main|renderer|tests)\//.test(f))).toBe(false);
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { main: string };
    expect(pkg.main.startsWith('out/')).toBe(true);
  });
});
