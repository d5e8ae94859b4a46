/**
 * Explanations that add up, in headless Chromium against `sparserm serve` on the demo kit (issue 10 items 1 and
 * 10): the score as bias + contributions, the token heatmap (and a picked latent's), the margin by latent with its
 * one-line why, ≥ 12 compact latent rows per side visible at 1440×900 with labels ≤ 2 lines, latent rows reachable
 * and operable from the keyboard with roles and labels; screenshots at 1440×900, 1024×700 and 800×900 go to
 * tests/.artifacts/. The demo (import, train, score) runs in-process first, so the browser starts on a scored dataset.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { repoRoot, tempDir } from '../helpers/paths';
import { runDemo } from '../../main/engine/demo/run-demo';
import { DEMO_DATASET } from '../../main/engine/demo/demo-store';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
const artifacts = path.join(repoRoot, 'tests', '.artifacts');

/** Browser-side helpers get DOM types from the page, not from this Node file. */
type El = { getBoundingClientRect(): { top: number; bottom: number; left: number; right: number; height: number }; getAttribute(n: string): string | null; textContent: string | null; clientHeight: number; scrollWidth: number; clientWidth: number; closest(s: string): El | null };
type Doc = { querySelectorAll(s: string): ArrayLike<El>; querySelector(s: string): El | null; activeElement: El | null };
type Win = { innerHeight: number; innerWidth: number; getComputedStyle(e: El): { lineHeight: string; fontSize: string } };

describe.skipIf(!haveChromium && !required)('explanations in a browser (serve + demo kit)', () => {
  let served: Served;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const home = tempDir('sparserm-explain-e2e-');
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `explain-${name}.png`), fullPage: false });
  /** Two rendered frames: a scroll or resize has been laid out and its resize observers (and their re-renders) ran. A
   * fixed sleep is no such promise on a loaded machine, where frames come late. */
  const frames = () => page.evaluate(() => new Promise<void>((r) => (globalThis as unknown as { requestAnimationFrame(f: () => void): void }).requestAnimationFrame(() => (globalThis as unknown as { requestAnimationFrame(f: () => void): void }).requestAnimationFrame(() => r()))));
  /** Polls the focused element's accessible name until `ok` holds (a key's effect lands in a later task than the key). */
  const focusedLabel = async (ok: (l: string) => boolean) => {
    const read = () => page.evaluate(() => (globalThis as unknown as { document: Doc }).document.activeElement?.getAttribute('aria-label') ?? '');
    const t0 = Date.now();
    for (;;) {
      const l = await read();
      if (ok(l) || Date.now() - t0 > 10_000) return l;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    process.env.SPARSERM_HOME = home;
    const db = path.join(home, 'studio.db');
    await runDemo({ db, env: { ...process.env, SPARSERM_HOME: home }, ep: 'cpu' });
    ensureRendererBuilt();
    served = await startServe({ db, env: { SPARSERM_HOME: home } });
    browser = await launchBrowser();
    page = await openPage(browser, consoleErrors);
    await page.goto(served.url);
    const sel = page.locator('[data-testid="dataset-select"]');
    await sel.waitFor();
    const value = await sel.evaluate((s, name) => {
      const opts = (s as unknown as { options: ArrayLike<{ value: string; textContent: string | null }> }).options;
      return Array.from(opts).find((o) => (o.textContent ?? '').includes(name))?.value ?? null;
    }, DEMO_DATASET);
    expect(value).not.toBeNull();
    await sel.selectOption(value!);
    await page.click('[data-screen="review"]');
    await page.waitForSelector('[data-testid="heatmap-chosen"] [data-testid="heat-token"]', { timeout: 90_000 });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('shows each score as bias + contributions, a token heatmap that adds up, the margin by latent and the why', async () => {
    for (const side of ['chosen', 'rejected']) {
      const eq = (await page.textContent(`[data-testid="score-eq-${side}"]`))!;
      const m = eq.match(/score ([+-]?\d+\.\d+) = bias ([+-]?\d+\.\d+) \+ Σ contributions ([+-]?\d+\.\d+)/);
      expect(m, eq).not.toBeNull();
      const [score, bias, rest] = m!.slice(1).map(Number);
      expect(Math.abs(bias + rest - score)).toBeLessThan(2e-4); // shown to 4 decimals
      // The heatmap's tokens carry exact values: with the bias they give the score.
      const values = (await page.locator(`[data-testid="heatmap-${side}"] [data-testid="heat-token"]`).evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-value')))));
      expect(values.length).toBeGreaterThan(1);
      expect(values.some((v) => v !== 0)).toBe(true);
      expect(Math.abs(bias + values.reduce((a, b) => a + b, 0) - score)).toBeLessThan(2e-4);
      // Not colour alone: the value is in the title and the accessible name; the legend and a text summary are there.
      const title = await page.locator(`[data-testid="heatmap-${side}"] [data-testid="heat-token"].up, [data-testid="heatmap-${side}"] [data-testid="heat-token"].down`).first().getAttribute('title');
      expect(title).toMatch(/: [+-]\d+\.\d{4}$/);
      expect(await page.textContent(`[data-testid="heatmap-${side}"]`)).toMatch(/pushed the score up[\s\S]*Pushed (up|down) most: /);
    }
    const why = (await page.textContent('[data-testid="why"]'))!;
    expect(why).toMatch(/^(Chosen|Rejected) scores \+\d+\.\d{3} over (rejected|chosen), mostly through latent \d+/);
    const rows = page.locator('[data-testid="margin-row"]');
    expect(await rows.count()).toBeGreaterThan(0);
    const firstLatent = (await rows.first().locator('td').first().textContent())!.trim();
    expect(why).toContain(`latent ${firstLatent}`);
    // Each row's effect on the margin is chosen − rejected.
    const cells = await rows.first().locator('td').allTextContents();
    expect(Math.abs(Number(cells[2]) - Number(cells[3]) - Number(cells[4]))).toBeLessThan(2e-3);
    expect(await page.textContent('[data-testid="margin-decomposition"] summary')).toMatch(/Margin [+-]?\d+\.\d{4} = bias difference/);
    await page.locator('[data-testid="why"]').scrollIntoViewIfNeeded();
    await shot('1440x900-why');
  }, 60_000);

  it('≥ 12 compact latent rows per side visible at 1440×900; labels ≤ 2 lines with the full text on hover; firing apart', async () => {
    // Each side's table scrolled to the middle of the pane (below the sticky pair header), then counted.
    const visibleRows: Record<string, number> = {};
    for (const side of ['chosen', 'rejected']) {
      await page.locator(`[data-testid="explain-${side}"] [data-testid="latent-table"]`).evaluate((t) => (t as unknown as { scrollIntoView(o: unknown): void }).scrollIntoView({ block: 'center' }));
      await frames();
      visibleRows[side] = await page.evaluate((sd) => {
        const d = (globalThis as unknown as { document: Doc }).document;
        const w = globalThis as unknown as Win;
        return Array.from(d.querySelectorAll(`[data-testid="explain-${sd}"] [data-testid="latent-row"]`)).filter((r) => {
          const b = r.getBoundingClientRect();
          if (!(b.top >= 0 && b.bottom <= w.innerHeight && b.height > 0)) return false;
          // Drawn, not hidden under the sticky pair header or clipped by a scroll container: hit-test both ends.
          const at = (y: number) => (d as unknown as { elementFromPoint(x: number, y: number): El | null }).elementFromPoint((b.left + b.right) / 2, y)?.closest('[data-testid="latent-row"]');
          return at(b.top + 2) === r && at(b.bottom - 2) === r;
        }).length;
      }, side);
    }
    const seen = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: Doc }).document;
      const w = globalThis as unknown as Win;
      const labels = Array.from(d.querySelectorAll('[data-testid="latent-label"]')).map((l) => {
        const lh = parseFloat(w.getComputedStyle(l).lineHeight) || parseFloat(w.getComputedStyle(l).fontSize) * 1.3;
        return { lines: l.getBoundingClientRect().height / lh, text: l.textContent ?? '', title: l.closest('td')?.getAttribute('title') ?? '' };
      });
      return { labels };
    });
    expect(visibleRows.chosen).toBeGreaterThanOrEqual(12);
    expect(visibleRows.rejected).toBeGreaterThanOrEqual(12);
    expect(seen.labels.length).toBeGreaterThanOrEqual(24);
    for (const l of seen.labels) {
      expect(l.lines).toBeLessThanOrEqual(2.05);
      expect(l.title).toBe(l.text); // the whole label on hover, even when clamped
    }
    // "SAE fired" is its own column: yes ×N with the peak token, or no.
    const fired = await page.locator('[data-testid="latent-fired"]').allTextContents();
    expect(fired.length).toBeGreaterThanOrEqual(24);
    expect(fired.filter((f) => !/^\s*(yes ×\d+\s*".*"|no)\s*$/s.test(f))).toEqual([]);
    await shot('1440x900-latents');
  }, 60_000);

  it('latent rows are reachable with Tab, move with the arrows, pick with Enter; roles and labels for screen readers', async () => {
    expect(await page.locator('[data-testid="latent-table"][role="grid"]').count()).toBe(2);
    expect(await page.getAttribute('[data-testid="latent-row"] >> nth=0', 'aria-label')).toMatch(/^latent \d+, .+, contribution [+-]\d/);
    // Tab from the top of the page until a latent row has focus: exactly one tab stop per table (roving tabindex).
    expect(await page.locator('[data-testid="latent-row"][tabindex="0"]').count()).toBe(2);
    await page.locator('[data-testid="why"]').click();
    let reached = false;
    for (let i = 0; i < 80 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => (globalThis as unknown as { document: Doc }).document.activeElement?.getAttribute('data-testid') === 'latent-row');
    }
    expect(reached).toBe(true);
    const first = await focusedLabel(() => true);
    await page.keyboard.press('ArrowDown');
    const second = await focusedLabel((l) => l !== first);
    expect(second).not.toBe(first);
    expect(second).toMatch(/^latent \d+/);
    await page.keyboard.press('Enter');
    const latent = second.match(/^latent (\d+)/)![1];
    await page.waitForSelector(`[data-testid="latent-row"][aria-selected="true"][aria-label^="latent ${latent},"]`);
    // The heatmap now shows that latent's per-token contributions, summing to its contribution.
    await page.waitForSelector(`[data-testid="heatmap-chosen"] >> text=through latent ${latent}`);
    await page.keyboard.press('ArrowUp');
    expect(await focusedLabel((l) => l === first)).toBe(first);
    await shot('1440x900-picked');
  }, 60_000);

  it('stays readable at 1024×700 and 800×900 (sides stack, nothing clipped sideways)', async () => {
    for (const [w, h] of [[1024, 700], [800, 900]] as const) {
      await page.setViewportSize({ width: w, height: h });
      await frames();
      const layout = await page.evaluate(() => {
        const d = (globalThis as unknown as { document: Doc }).document;
        const c = d.querySelector('[data-testid="explain-chosen"]')!.getBoundingClientRect();
        const r = d.querySelector('[data-testid="explain-rejected"]')!.getBoundingClientRect();
        const x = d.querySelector('[data-testid="explanation"]')!;
        const box = x.getBoundingClientRect();
        // Nothing drawn past the panel's edges (cells clip their own text with an ellipsis and a title).
        const wide = Array.from(d.querySelectorAll('[data-testid="explanation"] *'))
          .filter((e) => { const b = e.getBoundingClientRect(); return b.height > 0 && (b.right > box.right + 1 || b.left < box.left - 1); })
          .slice(0, 3)
          .map((e) => `${(e as unknown as { tagName: string }).tagName}.${(e as unknown as { className: string }).className}`);
        const w = globalThis as unknown as Win;
        const lines = Array.from(d.querySelectorAll('[data-testid="latent-label"]')).map((l) => l.getBoundingClientRect().height / (parseFloat(w.getComputedStyle(l).lineHeight) || 16));
        return { stacked: r.top >= c.bottom - 1, wide, right: box.right, viewport: w.innerWidth, maxLines: Math.max(...lines) };
      });
      expect(layout.wide, `${w}×${h}`).toEqual([]);
      expect(layout.right).toBeLessThanOrEqual(layout.viewport);
      expect(layout.maxLines).toBeLessThanOrEqual(2.05); // narrower columns clamp labels, never grow rows
      if (w === 800) expect(layout.stacked).toBe(true);
      await page.locator('[data-testid="why"]').scrollIntoViewIfNeeded();
      await shot(`${w}x${h}`);
    }
    await page.setViewportSize({ width: 1440, height: 900 });
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
