/**
 * Shared by the end-to-end test and the UI benchmark: build the renderer when stale, spawn `sparserm serve` on a
 * temp database, and launch Debian's Chromium headless through playwright-core.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { repoRoot } from '../helpers/paths';

export const CHROMIUM = process.env.SPARSERM_CHROMIUM ?? '/usr/bin/chromium';
export const chromiumAvailable = (): boolean => fs.existsSync(CHROMIUM);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A new 1440×900 page whose console errors and uncaught page errors are collected into `errors` (tests assert none). */
export async function openPage(browser: Browser, errors: string[], opts: BrowserContextOptions = {}): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, ...opts });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return page;
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Builds out/renderer when missing or older than any source it is built from. */
export function ensureRendererBuilt(): void {
  const index = path.join(repoRoot, 'out', 'renderer', 'index.html');
  const sources = Math.max(newestMtime(path.join(repoRoot, 'renderer')), fs.statSync(path.join(repoRoot, 'main', 'api', 'contract.ts')).mtimeMs);
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= sources) return;
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'build'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`electron-vite build failed:\n${r.stdout}\n${r.stderr}`);
}

export interface Served {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Spawns `sparserm serve --db <db>`; resolves with the URL from its first stdout line. */
export function startServe(opts: { db: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; /** extra serve options, e.g. ['--port', '40123'] */ args?: string[] }): Promise<Served> {
  const proc = spawn(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'serve', '--db', opts.db, ...(opts.args ?? [])], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (c) => (err += c.toString()));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not print its URL in time; stderr:\n${err}`)), opts.timeoutMs ?? 60_000);
    const rl = readline.createInterface({ input: proc.stdout! });
    rl.once('line', (line) => {
      clearTimeout(timer);
      resolve({ url: line.trim(), proc, stderr: () => err, stop });
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}; stderr:\n${err}`));
    });
  });
}
