/**
 * End to end, in headless Chromium against `sparserm serve` (spawned on a temp database) with the demo kit:
 * install the kit from the first-run card, import the TruthfulQA pairs, train, score, review with the keyboard
 * (override, undo, redo), export, and check the exported file reflects the decisions. Screenshots of every screen
 * go to tests/.artifacts/. The page must log no console errors.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { dataDir, repoRoot, tempDir } from '../helpers/paths';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
if (!haveChromium && !required) {
  console.warn('\n*** SKIPPING the end-to-end UI test: no Chromium at /usr/bin/chromium (apt-get install -y chromium). CI sets SPARSERM_E2E_REQUIRED=1 and fails instead. ***\n');
}
const artifacts = path.join(repoRoot, 'tests', '.artifacts');

describe.skipIf(!haveChromium && !required)('SparseRM Studio in a browser (serve + demo kit)', () => {
  let served: Served;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const home = tempDir('sparserm-e2e-');
  const exportPath = path.join(home, 'curated.jsonl');
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: false });
  const decisionIs = async (v: string) => {
    try {
      await page.waitForSelector(`[data-testid="decision"]:text-is("${v}")`, { timeout: 15_000 });
    } catch (err) {
      await shot(`failure-decision-${v}`);
      throw err;
    }
  };
  /** Waits for `selector`, failing at once (with the error shown) if a job fails or an error toast appears. */
  const untilDoneOrFailed = async (selector: string, timeout: number) => {
    const hit = await page.waitForSelector(`${selector}, .job.failed, .toast.error`, { timeout });
    const cls = (await hit.getAttribute('class')) ?? '';
    if (/\bfailed\b|\berror\b/.test(cls)) throw new Error(`job failed in the UI: ${await hit.textContent()}`);
  };
  const nav = async (screen: string) => {
    await page.click(`[data-screen="${screen}"]`);
    await page.waitForSelector(`[data-screen="${screen}"].active`);
  };
  // A filter, search or dataset change reloads the Review list; the listbox is aria-busy (from the change itself,
  // through a search's debounce) until the new rows and selection are in. Counts alone can read the same before and
  // after a change, so every change waits for this.
  const settled = () => page.waitForSelector('[data-testid="pair-list"][aria-busy="false"]', { timeout: 30_000 });
  const choose = async (sel: string, value: string) => {
    await page.selectOption(sel, value);
    await settled();
  };
  /** The pair on screen (its header names it), so keys act on it: its detail has loaded. */
  const shown = (index: number) => page.waitForSelector(`[data-testid="pair-view"][aria-label="Pair #${index}"]`, { timeout: 30_000 });

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    ensureRendererBuilt();
    served = await startServe({ db: path.join(home, 'studio.db'), env: { SPARSERM_HOME: home } });
    browser = await launchBrowser();
    page = await openPage(browser, consoleErrors);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('opens with the token from the URL and offers the demo kit on first run', async () => {
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]{40,}$/);
    await page.goto(served.url);
    await page.waitForSelector('[data-testid="first-run"]');
    // The token leaves the address bar once read.
    expect(page.url()).not.toContain('token=');
    await expect(page.textContent('[data-testid="first-run"]')).resolves.toContain('random weights');
    await shot('01-models-first-run');
    await page.click('[data-testid="install-demo"]');
    await page.waitForSelector('[data-testid="models-table"] >> text=demo (random weights)', { timeout: 240_000 });
    await page.waitForSelector('[data-testid="doctor"] >> text=Execution provider');
    await shot('02-models-demo');
  }, 300_000);

  it('imports the TruthfulQA pairs with a progress bar and a report', async () => {
    await nav('datasets');
    await page.fill('[data-testid="import-path"]', path.join(dataDir, 'truthfulqa', 'pairs.jsonl'));
    await page.click('[data-testid="import-go"]');
    await untilDoneOrFailed('[data-testid="import-report"]', 120_000);
    const report = await page.textContent('[data-testid="import-report"]');
    expect(report).toMatch(/790\s+pairs imported as\s+standard/);
    await page.waitForSelector('[data-testid="datasets-table"] >> text=pairs');
    await shot('03-datasets');
  }, 180_000);

  it('trains a reward head on the demo backbone and shows held-out accuracy beside baselines', async () => {
    await page.selectOption('[data-testid="dataset-select"]', { label: 'pairs' });
    await nav('train');
    await page.fill('[data-testid="train-k"]', '16');
    await page.click('[data-testid="train-go"]');
    await untilDoneOrFailed('[data-testid="train-result"] table', 300_000);
    const text = await page.textContent('[data-testid="train-result"]');
    expect(text).toMatch(/SparseRM \(K=16, margin\)\s*\d+\.\d %/);
    await shot('04-train');
    await page.click('[data-testid="score-go"]');
    await untilDoneOrFailed('[data-testid="filter-counts"]', 300_000);
    expect(await page.textContent('[data-testid="filter-counts"]')).toMatch(/keep \d+, drop \d+/);
    await shot('05-train-scored');
  }, 600_000);

  let swappedPrompt = '';
  let droppedPrompt = '';

  it('reviews with the keyboard: scores and latents, override, undo, redo; shortcuts ignore typing', async () => {
    await nav('review');
    await page.waitForSelector('[data-testid="pair-view"]');
    await page.waitForFunction(() => {
      const d = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document;
      return /[+-]\d/.test(d.querySelector('[data-testid="score-chosen"]')?.textContent ?? '');
    });
    expect(await page.locator('[data-testid="latent-row"]').count()).toBeGreaterThan(0);
    // Once the engine has explained the pair, clicking a latent shows its per-token contributions (tests/e2e/explanations.test.ts covers the rest).
    await page.waitForSelector('[data-testid="heatmap-chosen"] [data-testid="heat-token"]', { timeout: 60_000 });
    await page.locator('[data-testid="latent-row"]').first().click();
    await page.waitForSelector('text=tokens through latent');
    expect(await page.locator('[data-testid="heat-token"]').count()).toBeGreaterThan(1);
    await shot('06-review');

    // Typing in the search box must not fire shortcuts ('d' would drop, 's' swap).
    await page.click('[data-testid="search"]');
    await page.keyboard.type('ds');
    await page.waitForTimeout(400);
    await page.fill('[data-testid="search"]', '');
    // The "ds" search may still be in its debounce or in flight: 790 and a pair view are also the state before it.
    await settled();
    await page.waitForSelector('[data-testid="match-count"] b:text-is("790")');
    // (The search hid pair 1, so its selection cleared; with the search gone the first pair is shown again.)
    await shown(1);
    expect(await page.textContent('[data-testid="decision"]')).not.toMatch(/^(drop|swap)$/);
    expect(await page.textContent('[data-testid="reviewed"]')).toMatch(/reviewed 0 of 790/);
    // Esc leaves the field; the review keys work again.
    await page.keyboard.press('Escape');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { tagName: string } | null } }).document.activeElement?.tagName)).not.toBe('INPUT');

    // Pair 1: swap with `s`, then undo with `u`, redo with `r` (advance-on-decide off, so the pair stays on screen;
    // tests/e2e/review-flow.test.ts covers advancing).
    await page.uncheck('[data-testid="advance"]');
    await page.keyboard.press('g');
    await shown(1);
    swappedPrompt = (await page.textContent('.prompt-box .text'))!.trim();
    await page.keyboard.press('s');
    await decisionIs('swap');
    await page.keyboard.press('u');
    await page.waitForSelector('[data-testid="decision"]:not(:text-is("swap"))');
    await page.keyboard.press('r');
    await decisionIs('swap');
    expect(await page.textContent('.history')).toMatch(/swap/);

    // Pair 2: next with `j`, keep with `a` then drop with `d` (Ctrl+Z undoes the drop, Ctrl+Shift+Z redoes it).
    await page.keyboard.press('j');
    await shown(2);
    droppedPrompt = (await page.textContent('.prompt-box .text'))!.trim();
    await page.keyboard.press('a');
    await decisionIs('keep');
    await page.keyboard.press('d');
    await decisionIs('drop');
    await page.keyboard.press('Control+z');
    await decisionIs('keep');
    await page.keyboard.press('Control+Shift+z');
    await decisionIs('drop');

    // Bulk: keep all pairs the model would drop, after a confirmation naming N; one undo reverts all of them.
    await choose('[data-testid="filter-verdict"]', 'drop');
    const n = Number((await page.textContent('[data-testid="match-count"] b'))!.replace(/,/g, ''));
    expect(n).toBeGreaterThan(0);
    await page.click('[data-testid="bulk-keep"]');
    await page.waitForSelector('[data-testid="confirm"]');
    expect(await page.textContent('[data-testid="confirm"]')).toContain(`all ${n.toLocaleString()} pairs matching`);
    await page.click('[data-testid="confirm-ok"]');
    await page.waitForSelector(`.toast >> text=keep: ${n} pairs`);
    // The bulk's own reload, then the filter's: "decision: keep" matches the same n pairs the verdict filter did,
    // so the count cannot tell the two lists apart; aria-busy can.
    await settled();
    await choose('[data-testid="filter-decision"]', 'keep');
    expect(await page.textContent('[data-testid="match-count"] b')).toBe(n.toLocaleString());
    await page.locator('[data-testid="pair-list"]').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('u');
    await page.waitForSelector(`.toast >> text=Undid keep on ${n} pairs`);
    await choose('[data-testid="filter-decision"]', 'any');
    await choose('[data-testid="filter-verdict"]', 'any');
    expect(await page.textContent('[data-testid="match-count"] b')).toBe('790');

    await page.keyboard.press('?');
    await page.waitForSelector('[data-testid="cheat-sheet"]');
    await shot('07-review-cheatsheet');
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid="cheat-sheet"]', { state: 'detached' });
    await shot('08-review-decided');
  }, 120_000);

  it('exports: the file reflects the swap and the drop, with a provenance sidecar', async () => {
    await nav('export');
    await page.waitForSelector('[data-testid="export-preview"]');
    await shot('09-export');
    await page.fill('[data-testid="export-path"]', exportPath);
    await page.click('[data-testid="export-go"]');
    await untilDoneOrFailed('[data-testid="export-done"]', 60_000);
    const rows = fs.readFileSync(exportPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
    const source = fs.readFileSync(path.join(dataDir, 'truthfulqa', 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
    const orig = (prompt: string) => source.find((r) => r.prompt === prompt)!;
    const swapped = rows.find((r) => r.prompt === swappedPrompt);
    expect(swapped).toBeDefined();
    expect(swapped!.chosen).toBe(orig(swappedPrompt).rejected);
    expect(swapped!.rejected).toBe(orig(swappedPrompt).chosen);
    expect(rows.some((r) => r.prompt === droppedPrompt)).toBe(false);
    const prov = JSON.parse(fs.readFileSync(exportPath + '.provenance.json', 'utf8'));
    expect(prov.counts.exported).toBe(rows.length);
    expect(prov.reward_model.demo).toBe(true);
  }, 120_000);

  it('draws the charts and logged no console errors', async () => {
    await nav('charts');
    // The agreement and the charts render from one load; wait for them rather than for a fixed time.
    await page.waitForSelector('[data-testid="agreement"] >> text=/\\d+\\.\\d %/');
    await page.waitForSelector('canvas >> nth=2');
    await shot('10-charts');
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
