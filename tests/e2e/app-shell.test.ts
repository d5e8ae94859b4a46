/**
 * The app shell in headless Chromium against `sparserm serve` (issue 10 items 4, 6, 7, 8, 9): a model trained by the
 * CLI (`sparserm demo`) shows the same formatted numbers with n and 95 % interval on Models, Train and Charts; the
 * Export screen names its dataset and counts, refuses a relative path inline, asks before overwriting, downloads the
 * file, and refuses a 0-pair export; an uploaded import does not change the current dataset; an invalid number is
 * refused visibly; toasts stay out of the screen; nothing is clipped or covered at 1024×700 and 800×900, and the
 * sidebar collapses; after a server restart a reloaded tab says "not connected" and opening the new URL reconnects
 * without a reload. Screenshots at 1440×900, 1024×700 and 800×900 go to tests/.artifacts/.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { dataDir, repoRoot, tempDir } from '../helpers/paths';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
const artifacts = path.join(repoRoot, 'tests', '.artifacts');

/** Browser-side shapes (this file has no DOM types). */
type Rect = { top: number; bottom: number; left: number; right: number; width: number; height: number };
type El = { getBoundingClientRect(): Rect; contains(o: unknown): boolean; scrollIntoView(o: unknown): void; scrollWidth: number; clientWidth: number; closest(s: string): El | null };
type Doc = { querySelector(s: string): El | null; querySelectorAll(s: string): ArrayLike<El>; elementFromPoint(x: number, y: number): El | null };
type Win = { innerWidth: number; innerHeight: number; document: Doc; __noReload?: number; location: { assign(u: string): void } };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

describe.skipIf(!haveChromium && !required)('app shell in a browser (serve + CLI-trained demo model)', () => {
  let served: Served;
  let browser: Browser;
  let page: Page;
  let port: number;
  const consoleErrors: string[] = [];
  const home = tempDir('sparserm-shell-e2e-');
  const db = path.join(home, 'studio.db');
  const env = { SPARSERM_HOME: home, SPARSERM_DB: db };
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `shell-${name}.png`), fullPage: false });
  const nav = async (screen: string) => {
    await page.click(`[data-screen="${screen}"]`);
    await page.waitForSelector(`[data-screen="${screen}"].active`);
  };
  const text = async (sel: string) => ((await page.textContent(sel)) ?? '').replace(/\s+/g, ' ').trim();

  /**
   * Each selector: its first visible match is scrolled into view, lies inside the viewport horizontally and
   * vertically, and the point at its centre hits it (not a toast, panel or sticky header over it). Also: the screen
   * itself never scrolls sideways. Returns the problems found.
   */
  const layoutProblems = (selectors: string[]) =>
    page.evaluate((sels) => {
      const w = globalThis as unknown as Win;
      const problems: string[] = [];
      const content = w.document.querySelector('.content')!;
      if (content.scrollWidth > content.clientWidth + 1) problems.push(`.content scrolls sideways (${content.scrollWidth} > ${content.clientWidth})`);
      // Tables fit their card: every column visible without scrolling sideways.
      for (const wrap of Array.from(w.document.querySelectorAll('.content .table-wrap'))) {
        if (wrap.scrollWidth > wrap.clientWidth + 1) problems.push(`a table is wider than its card (${wrap.scrollWidth} > ${wrap.clientWidth})`);
      }
      for (const sel of sels) {
        const el = Array.from(w.document.querySelectorAll(sel)).find((e) => e.getBoundingClientRect().width > 0);
        if (!el) {
          problems.push(`${sel}: not shown`);
          continue;
        }
        el.scrollIntoView({ block: 'center', inline: 'nearest' });
        const r = el.getBoundingClientRect();
        // Wholly inside horizontally; vertically its top is on screen (a table taller than the window scrolls).
        if (r.left < 0 || r.right > w.innerWidth + 0.5 || r.top < 0 || r.top > w.innerHeight - 10 || (r.height < w.innerHeight / 2 && r.bottom > w.innerHeight + 0.5)) problems.push(`${sel}: outside the viewport ${JSON.stringify(r)}`);
        // Probe near its left edge, halfway down its visible part (a sticky header may cover a scrolled table's top row).
        const probe = { x: Math.min(Math.max(r.left + Math.min(r.width / 2, 20), 0), w.innerWidth - 1), y: Math.min(Math.max((Math.max(r.top, 0) + Math.min(r.bottom, w.innerHeight)) / 2, 0), w.innerHeight - 1) };
        const hit = w.document.elementFromPoint(probe.x, probe.y);
        if (!hit || !(el.contains(hit) || hit.contains(el))) problems.push(`${sel}: covered at its left edge by ${hit ? (hit as unknown as { outerHTML: string }).outerHTML.slice(0, 120) : 'nothing'}`);
      }
      return problems;
    }, selectors);

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    // The model is trained by the CLI, not the app: its numbers must still show everywhere.
    execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'demo', '--ep', 'cpu', '--db', db], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    ensureRendererBuilt();
    port = await freePort();
    served = await startServe({ db, env, args: ['--port', String(port)] });
    browser = await launchBrowser();
    page = await openPage(browser, consoleErrors, { acceptDownloads: true });
    await page.goto(served.url);
    await page.waitForSelector('[data-testid="dataset-select"]');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('shows the CLI-trained model’s numbers, formatted with n and interval, alike on Models, Train and Charts (item 9)', async () => {
    await nav('models');
    await page.waitForSelector('[data-testid="models-table"] [data-testid="model-numbers"]');
    const onModels = await text('[data-testid="models-table"] [data-testid="model-numbers"]');
    expect(onModels).toMatch(/^held-out accuracy \d{1,3}\.\d % \(n = 79, 95 % CI \d{1,3}\.\d–\d{1,3}\.\d\)$/);
    await shot('1440-models');
    await nav('train');
    await page.waitForSelector('[data-testid="train-result"] [data-testid="model-numbers"]');
    expect(await text('[data-testid="train-result"] [data-testid="model-numbers"]')).toBe(onModels);
    expect(await text('[data-testid="train-result"]')).not.toContain('No run yet');
    await nav('charts');
    await page.waitForSelector('[data-testid="charts-model"] [data-testid="model-numbers"]');
    expect(await text('[data-testid="charts-model"] [data-testid="model-numbers"]')).toBe(onModels);
    // No raw floats in the model numbers of the three screens (latent labels are data and may hold any text).
    for (const [s, sel] of [
      ['charts', '[data-testid="charts-model"]'],
      ['train', '[data-testid="train-result"]'],
      ['models', '[data-testid="models-table"]'],
    ]) {
      await nav(s);
      await page.waitForSelector(`${sel} [data-testid="model-numbers"]`);
      expect((await text(sel)).match(/.{0,60}\d\.\d{6,}.{0,20}/)?.[0] ?? null, s).toBeNull();
    }
  }, 60_000);

  it('refuses an invalid number visibly, next to the field (item 7)', async () => {
    await nav('train');
    await page.fill('[data-testid="filter-threshold"]', 'abc');
    await page.waitForSelector('[data-testid="threshold-error"]');
    expect(await text('[data-testid="threshold-error"]')).toMatch(/margin threshold τ: expected a number, got "abc"/);
    expect(await page.isDisabled('[data-testid="filter-apply"]')).toBe(true);
    expect(await page.getAttribute('[data-testid="filter-threshold"]', 'aria-invalid')).toBe('true');
    await shot('1440-train-invalid-number');
    await page.fill('[data-testid="filter-threshold"]', '0.5');
    await page.waitForSelector('[data-testid="threshold-error"]', { state: 'detached' });
    expect(await page.isDisabled('[data-testid="filter-apply"]')).toBe(false);
    // An API error about a field is shown beside that field, not as a toast over the screen.
    await nav('models');
    await page.fill('[data-testid="ckpt-path"]', 'models/gemma');
    await page.click('button:text-is("Add checkpoint")');
    await page.waitForSelector('[data-testid="ckpt-error"]');
    expect(await text('[data-testid="ckpt-error"]')).toMatch(/field "path": expected an absolute path/);
    expect(await page.locator('.toast.error').count()).toBe(0);
    await shot('1440-models-inline-error');
  }, 30_000);

  it('exports without traps: names the dataset and counts, relative path refused inline, overwrite asks, download works (item 4)', async () => {
    await nav('export');
    await page.waitForSelector('[data-testid="export-counts"]');
    expect(await text('[data-testid="export-dataset"]')).toBe('demo-truthfulqa');
    const kept = Number((await text('[data-testid="export-kept"]')).replace(/,/g, ''));
    const dropped = Number(await text('[data-testid="export-dropped"]'));
    expect(kept + dropped).toBe(790);
    expect(await text('[data-testid="export-undecided"]')).toBe('0');
    expect(await text('[data-testid="export-unscored"]')).toBe('0');

    await page.fill('[data-testid="export-path"]', 'curated.jsonl');
    await page.click('[data-testid="export-go"]');
    await page.waitForSelector('[data-testid="export-path-error"]');
    expect(await text('[data-testid="export-path-error"]')).toMatch(/field "path".*absolute path.*"curated\.jsonl"/);
    expect(await page.locator('.toast.error').count()).toBe(0);
    expect(fs.existsSync(path.join(repoRoot, 'curated.jsonl'))).toBe(false);

    const out = path.join(home, 'curated.jsonl');
    await page.fill('[data-testid="export-path"]', out);
    await page.waitForSelector('[data-testid="export-path-error"]', { state: 'detached' });
    await page.click('[data-testid="export-go"]');
    await page.waitForSelector('[data-testid="export-done"]', { timeout: 30_000 });
    expect(await text('[data-testid="export-done"]')).toContain('demo-truthfulqa');
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(kept);

    // The toast about it sits in the status strip below the screen, never over the screen's controls.
    await page.waitForSelector('.statusbar .toast');
    const geometry = await page.evaluate(() => {
      const d = (globalThis as unknown as Win).document;
      return { content: d.querySelector('.content')!.getBoundingClientRect(), toast: d.querySelector('.toast')!.getBoundingClientRect() };
    });
    expect(geometry.toast.top).toBeGreaterThanOrEqual(geometry.content.bottom - 0.5);
    await shot('1440-export');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-download"]')]);
    expect(download.suggestedFilename()).toBe('curated.jsonl');
    expect(fs.readFileSync((await download.path())!, 'utf8')).toBe(fs.readFileSync(out, 'utf8'));

    // Exporting again to the same file asks first; cancelling leaves it alone.
    const before = fs.statSync(out).mtimeMs;
    await page.click('[data-testid="export-go"]');
    await page.waitForSelector('[data-testid="confirm"]');
    expect(await text('[data-testid="confirm"]')).toMatch(/Replace the existing file\?.*curated\.jsonl/);
    await page.click('[data-testid="confirm"] button:text-is("Cancel")');
    await page.waitForSelector('[data-testid="confirm"]', { state: 'detached' });
    expect(fs.statSync(out).mtimeMs).toBe(before);
  }, 60_000);

  it('uploads an import without switching the current dataset; a 0-pair export is refused inline (item 4)', async () => {
    await nav('datasets');
    await page.setInputFiles('[data-testid="import-file"]', path.join(dataDir, 'pku-saferlhf-sample', 'pairs.jsonl'));
    await page.click('[data-testid="import-upload"]');
    await page.waitForSelector('[data-testid="import-not-current"]', { timeout: 30_000 });
    expect(await text('[data-testid="import-report"]')).toMatch(/16 pairs imported/);
    expect(await text('[data-testid="import-not-current"]')).toMatch(/Imported as dataset pairs\. The current dataset is still demo-truthfulqa/);
    expect(await page.$eval('[data-testid="dataset-select"]', (s) => (s as unknown as { selectedOptions: ArrayLike<{ textContent: string }> }).selectedOptions[0].textContent)).toContain('demo-truthfulqa');
    await shot('1440-datasets-import');

    await page.click('[data-testid="import-make-current"]');
    await nav('export');
    await page.waitForSelector('[data-testid="export-dataset"]:text-is("pairs")');
    // Unscored, undecided pairs are counted as such — never as dropped.
    await page.waitForSelector('[data-testid="export-undecided"]:text-is("16")');
    expect(await text('[data-testid="export-unscored"]')).toBe('16');
    expect(await text('[data-testid="export-dropped"]')).toBe('0');
    expect(await text('[data-testid="export-kept"]')).toBe('0');
    const empty = path.join(home, 'empty.jsonl');
    await page.fill('[data-testid="export-path"]', empty);
    await page.click('[data-testid="export-go"]');
    await page.waitForSelector('[data-testid="export-include-error"]');
    expect(await text('[data-testid="export-include-error"]')).toMatch(/at least one pair.*"pairs" has 16 pairs/);
    expect(fs.existsSync(empty)).toBe(false);
    await shot('1440-export-empty-refused');
    // Back to the scored dataset for the layout checks.
    await page.selectOption('[data-testid="dataset-select"]', { label: 'demo-truthfulqa · demo' });
  }, 60_000);

  it('sidebar collapses; nothing clipped or covered at 1024×700 and 800×900 (item 8)', async () => {
    await page.click('[data-testid="sidebar-toggle"]');
    await page.waitForSelector('.shell.collapsed');
    expect(await page.$eval('.sidebar', (e) => (e as unknown as El).getBoundingClientRect().width)).toBeLessThan(60);
    expect(await page.isVisible('[data-screen="review"] .nav-label')).toBe(false);
    await page.click('[data-testid="sidebar-toggle"]');
    await page.waitForSelector('.shell:not(.collapsed)');

    const checks: Record<string, string[]> = {
      models: ['[data-testid="models-table"]', '[data-testid="ckpt-path"]'],
      datasets: ['[data-testid="import-go"]', '[data-testid="import-path"]', '[data-testid="datasets-table"] th:last-of-type', '[data-testid="datasets-table"] td button'],
      train: ['[data-testid="train-go"]', '[data-testid="filter-apply"]', '[data-testid="score-go"]'],
      review: ['[data-testid="search"]', '[data-testid="pair-list"]', '[data-testid="decide-keep"]', '[data-testid="decide-clear"]', '[data-testid="latent-table"]'],
      export: ['[data-testid="export-go"]', '[data-testid="export-path"]', '[data-testid="export-counts"]'],
      charts: ['[data-testid="charts-model"]'],
    };
    for (const [w, h] of [
      [1024, 700],
      [800, 900],
    ]) {
      await page.setViewportSize({ width: w, height: h });
      // A fresh tab at this size starts with the sidebar collapsed (the token survives the reload).
      await page.reload();
      await page.waitForSelector('[data-testid="dataset-select"]');
      expect(await page.$eval('.shell', (e) => (e as unknown as { className: string }).className)).toContain('collapsed');
      await page.selectOption('[data-testid="dataset-select"]', { label: 'demo-truthfulqa · demo' });
      for (const [screen, sels] of Object.entries(checks)) {
        await nav(screen);
        // Every checked element, not just the first: parts of a screen come from their own requests (Export's counts
        // after its button, Review's pair after its list), and a fixed sleep does not promise they are in.
        for (const sel of sels) await page.waitForSelector(sel, { timeout: 60_000 });
        if (screen === 'review') {
          await page.waitForSelector('[data-testid="pair-list"][aria-busy="false"]', { timeout: 30_000 });
          // The pair's explanation replaces the stored summary's (longer) latent table once computed, seconds later on
          // a loaded machine: measure the settled pair view, not whichever of the two is up.
          await page.waitForSelector('[data-testid="heatmap-chosen"] [data-testid="heat-token"]', { timeout: 90_000 });
        }
        // Two frames: the layout (and what resize observers re-render) is settled before it is measured.
        await page.evaluate(() => new Promise<void>((r) => (globalThis as unknown as { requestAnimationFrame(f: () => void): void }).requestAnimationFrame(() => (globalThis as unknown as { requestAnimationFrame(f: () => void): void }).requestAnimationFrame(() => r()))));
        const problems = await layoutProblems(sels);
        if (problems.length) {
          console.error(`${screen} at ${w}×${h}:`, problems);
          await shot(`failure-${w}x${h}-${screen}`);
        }
        expect(problems, `${screen} at ${w}×${h}`).toEqual([]);
        // The pair view keeps a usable width (it was 258 px at 800).
        if (screen === 'review') expect(await page.$eval('[data-testid="pair-view"]', (e) => (e as unknown as El).getBoundingClientRect().width)).toBeGreaterThan(w * 0.7);
        await shot(`${w}x${h}-${screen}`);
      }
    }
    await page.setViewportSize({ width: 1440, height: 900 });
  }, 300_000);

  it('after a server restart says "not connected", and opening the new URL reconnects without a reload (item 6)', async () => {
    await served.stop();
    served = await startServe({ db, env, args: ['--port', String(port)] });
    // A reloaded tab still holds the old token: it must say so, not "No dataset yet".
    await page.reload();
    await page.waitForSelector('[data-testid="not-connected"]');
    const msg = await text('[data-testid="not-connected"]');
    expect(msg).toMatch(/Not connected: the server does not accept this tab’s token/);
    expect(msg).toMatch(/restarted.*new URL/);
    expect(await page.locator('text=No dataset yet').count()).toBe(0);
    expect(await page.locator('.toast.error').count()).toBe(0);
    await shot('1440-not-connected');
    // Paste the new URL into this tab: only the fragment changes; the app reconnects in place.
    await page.evaluate(() => ((globalThis as unknown as Win).__noReload = 1));
    await page.evaluate((u) => (globalThis as unknown as Win).location.assign(u), served.url);
    await page.waitForSelector('[data-testid="dataset-select"]', { timeout: 15_000 });
    expect(await page.evaluate(() => (globalThis as unknown as Win).__noReload)).toBe(1);
    expect(page.url()).not.toContain('token=');
    expect(await page.locator('[data-testid="not-connected"]').count()).toBe(0);
    // 401s from the stale token are expected console noise of the browser; anything else is a failure.
    // The refusals this file provokes (relative path 400, existing file 409, empty export 400, stale token 401) log
    // a failed resource in the browser's console; anything else is a failure.
    // Stopping the server resets a request still in flight, and one sent before the new server listens is refused.
    const unexpected = consoleErrors.filter((e) => !/the server responded with a status of (400 \(Bad Request\)|401 \(Unauthorized\)|409 \(Conflict\))|net::ERR_CONNECTION_(RESET|REFUSED)/.test(e));
    if (unexpected.length) console.error(unexpected);
    expect(unexpected).toEqual([]);
  }, 60_000);
});
