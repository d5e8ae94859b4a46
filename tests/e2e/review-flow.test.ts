/**
 * The review flow in headless Chromium against `sparserm serve` (issue 10 items 2, 3, 5, 10): sticky pair header,
 * scroll to top on the next pair, empty state, selection kept / cleared across filter changes, advance on decide,
 * "reviewed X of N", override and decided-uncertain slices, bulk swap behind a dialog that restates the filter and
 * ignores Enter, undo that names and selects its pair, history kinds, per-curator undo, chats as turns, sanitised
 * markdown, search highlight, and the pair list as a keyboard listbox. Screenshots at 1440×900, 1024×700 and
 * 800×900 go to tests/.artifacts/.
 *
 * The data are the demo kit's TruthfulQA pairs plus three crafted pairs (a multi-turn HH chat; two long markdown
 * answers with a <script>), seeded through the store with deterministic synthetic scores, so the test needs no
 * training and stays well under 90 s.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { openStore } from '../../main/engine/store';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { repoRoot, tempDir } from '../helpers/paths';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
const artifacts = path.join(repoRoot, 'tests', '.artifacts');

const LONG = Array.from({ length: 60 }, (_, i) => `${i + 1}. A zebracode line of the long answer, number ${i + 1}.`).join('\n');
const CRAFTED = [
  {
    prompt: 'Human: Name a turnstile maker.\n\nAssistant: Which country?\n\nHuman: Anywhere is fine.\n\nAssistant:',
    chosen: 'Boon Edam makes turnstiles.',
    rejected: 'Turnstiles are made of cheese.',
  },
  {
    prompt: 'Show me zebracode in JavaScript.',
    chosen: `Here is **zebracode**:\n\n\`\`\`js\nconsole.log("zebracode");\n\`\`\`\n\n<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">\n\n${LONG}`,
    rejected: `No.\n\n${LONG}`,
  },
  { prompt: 'More zebracode please.', chosen: `Sure.\n\n${LONG}`, rejected: `Never.\n\n${LONG}` },
];

/** Demo-kit pairs + the crafted ones, with synthetic scores and verdicts keep / drop / uncertain. */
function seed(dbPath: string): number {
  const store = openStore(dbPath);
  const base = fs
    .readFileSync(path.join(repoRoot, 'resources', 'demo', 'truthfulqa', 'pairs.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .slice(0, 60)
    .map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string; source: string });
  const all = [...CRAFTED.map((c) => ({ ...c, source: 'crafted' })), ...base];
  const ds = store.datasets.create('review-flow');
  const ids: number[] = [];
  store.transaction(() => {
    all.forEach((r, i) => {
      const id = store.pairs.insert(ds.id, null, {
        line: i + 1, source: r.source, externalId: null, prompt: r.prompt, chosen: r.chosen, rejected: r.rejected,
        contentHash: crypto.createHash('sha256').update(`${r.prompt}\0${r.chosen}\0${r.rejected}`).digest('hex'),
      });
      if (id !== null) ids.push(id);
    });
  });
  store.models.upsertRewardModel({ id: 'flow-rm', name: 'review-flow (synthetic scores)', folder: '/nonexistent', manifestHash: 'flow' });
  const run = store.runs.create({ datasetId: ds.id, rewardModelId: 'flow-rm' });
  // margin of pair k: (k % 9 − 4) / 4 → −1 … +1; band 0.3 around 0 leaves margin 0 and ±0.25 uncertain.
  store.runs.addScores(run.id, ids.map((pairId, k) => ({ pairId, scoreChosen: ((k % 9) - 4) / 4, scoreRejected: 0 })));
  store.runs.finish(run.id, 'done');
  store.runs.applyFilter({ datasetId: ds.id, runId: run.id, rule: 'margin', threshold: 0, band: 0.3 });
  store.close();
  return ids.length;
}

describe.skipIf(!haveChromium && !required)('review flow in a browser (serve)', () => {
  let served: Served;
  let browser: Browser;
  let page: Page;
  let total = 0;
  const errors: string[] = [];
  const home = tempDir('sparserm-review-flow-');
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `review-flow-${name}.png`) });
  const text = async (sel: string) => ((await page.textContent(sel)) ?? '').trim();
  const title = () => text('[data-testid="pair-header"] h3');
  // Page-side checks are expressions polled from here with page.evaluate (CDP evaluation, which the app's CSP
  // allows; waitForFunction with a string would eval inside the page and the CSP forbids that).
  // Generous: CI runs this beside other test files on 2 cores, and a loaded machine delays Chromium's frames.
  const until = async (expr: string, timeout = 25_000) => {
    const t0 = Date.now();
    for (;;) {
      if (await page.evaluate(expr)) return;
      if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for: ${expr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const waitText = async (sel: string, re: RegExp) => {
    try {
      await until(`new RegExp(${JSON.stringify(re.source)}, ${JSON.stringify(re.flags)}).test(document.querySelector(${JSON.stringify(sel)})?.textContent ?? '')`);
    } catch {
      throw new Error(`${sel} never matched ${re}; it reads: ${JSON.stringify(await page.evaluate(`document.querySelector(${JSON.stringify(sel)})?.textContent ?? null`))}`);
    }
  };
  // A filter or sort change reloads the list; the listbox is aria-busy until the new rows and selection are in.
  // Waiting on the count alone raced: two filters in a row can match the same number of pairs.
  const settled = () => until(`document.querySelector('[data-testid="pair-list"]')?.getAttribute('aria-busy') === 'false'`);
  const choose = async (sel: string, value: string | { label: string }) => {
    await page.selectOption(sel, value);
    await settled();
  };
  const matchCount = async () => Number((await text('[data-testid="match-count"] b')).replace(/,/g, ''));
  const search = async (q: string) => {
    await page.fill('[data-testid="search"]', q);
    await page.keyboard.press('Escape'); // leave the field so review keys work
  };

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    ensureRendererBuilt();
    const db = path.join(home, 'flow.db');
    total = seed(db);
    served = await startServe({ db, env: { SPARSERM_HOME: home, SPARSERM_ACTOR: 'os-user' } });
    browser = await launchBrowser();
    page = await openPage(browser, errors);
    await page.goto(served.url);
    await page.waitForSelector('[data-testid="pair-view"]');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('pair list is a keyboard listbox: roles, labels, Tab then arrows', async () => {
    expect(await matchCount()).toBe(total);
    expect(await text('[data-testid="reviewed"]')).toMatch(new RegExp(`reviewed 0 of ${total}`));
    const list = page.locator('[data-testid="pair-list"]');
    expect(await list.getAttribute('role')).toBe('listbox');
    expect(await list.getAttribute('aria-label')).toMatch(/match the filter/);
    const first = page.locator('[role="option"]').first();
    expect(await first.getAttribute('aria-label')).toMatch(/^Pair #1, .*margin/);
    expect(await first.getAttribute('aria-selected')).toBe('true');
    // Tab from the search box reaches the list in a few steps; arrows then move the selection.
    await page.focus('[data-testid="search"]');
    let onList = false;
    for (let i = 0; i < 40 && !onList; i++) {
      await page.keyboard.press('Tab');
      onList = (await page.evaluate(`document.activeElement?.getAttribute('data-testid') === 'pair-list'`)) as boolean;
    }
    expect(onList).toBe(true);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await until(`document.querySelector('[data-testid="pair-list"]').getAttribute('aria-activedescendant') === 'pair-row-2'`);
    expect(await page.locator('#pair-row-2').getAttribute('aria-selected')).toBe('true');
    await waitText('[data-testid="pair-header"] h3', /Pair #3$/);
    await page.keyboard.press('End');
    await waitText('[data-testid="pair-header"] h3', new RegExp(`Pair #${total}$`));
    await page.keyboard.press('Home');
    await waitText('[data-testid="pair-header"] h3', /Pair #1$/);
    await shot('1440-list');
  }, 60_000);

  it('chats render as turns; markdown is sanitised with code blocks; search terms are highlighted', async () => {
    await search('turnstile');
    await waitText('[data-testid="match-count"] b', /^1$/);
    await waitText('[data-testid="pair-header"] h3', /Pair #1$/);
    const roles = await page.locator('.prompt-box [data-testid="turn"] .role').allTextContents();
    expect(roles).toEqual(['Human', 'Assistant', 'Human']);
    expect(await page.locator('.prompt-box mark').first().textContent()).toMatch(/turnstile/i);
    expect(await page.locator('.pair-row mark').first().textContent()).toMatch(/turnstile/i);

    await search('zebracode');
    await waitText('[data-testid="match-count"] b', /^2$/);
    // Pair #1 is not listed any more, so the selection cleared; g selects the first listed pair.
    await until(`!document.querySelector('[data-testid="pair-view"]')`);
    await page.keyboard.press('g');
    await waitText('[data-testid="pair-header"] h3', /Pair #2$/);
    const chosen = page.locator('[data-testid="chosen-text"]');
    expect(await chosen.locator('pre code').textContent()).toContain('console.log("zebracode")');
    expect(await chosen.locator('strong').first().textContent()).toBe('zebracode');
    expect(await chosen.locator('mark').count()).toBeGreaterThan(3);
    // The <script> and the onerror image are shown as text, never as elements, and never ran.
    expect(await page.locator('[data-testid="pair-view"] script, [data-testid="pair-view"] img, [data-testid="pair-view"] [onerror]').count()).toBe(0);
    expect(await chosen.textContent()).toContain('<script>window.__pwned = 1</script>');
    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    await shot('1440-markdown');
  }, 60_000);

  it('the header stays visible while reading; the next pair opens at its top', async () => {
    const view = page.locator('[data-testid="pair-view"]');
    await page.evaluate(`(() => { const el = document.querySelector('[data-testid="pair-view"]'); el.scrollTop = el.scrollHeight; })()`);
    await page.waitForTimeout(100);
    const [v, h] = [await view.boundingBox(), await page.locator('[data-testid="pair-header"]').boundingBox()];
    expect(await page.evaluate(`document.querySelector('[data-testid="pair-view"]').scrollTop`)).toBeGreaterThan(500);
    expect(h!.y).toBeGreaterThanOrEqual(v!.y - 1);
    expect(h!.y).toBeLessThan(v!.y + 20);
    expect(await page.locator('[data-testid="decide-keep"]').isVisible()).toBe(true);
    await shot('1440-sticky-header');
    await page.keyboard.press('j');
    await waitText('[data-testid="pair-header"] h3', /Pair #3$/);
    await until(`document.querySelector('[data-testid="pair-view"]').scrollTop === 0`);
  }, 60_000);

  it('zero matches: an empty state and no pair to act on', async () => {
    await search('nomatchxyzzy');
    await waitText('[data-testid="empty-state"]', /No pair matches this filter.*search “nomatchxyzzy”/s);
    expect(await page.locator('[data-testid="pair-view"]').count()).toBe(0);
    expect(await page.locator('[data-testid="decide-keep"]').count()).toBe(0);
    await page.keyboard.press('a'); // must do nothing
    await shot('1440-empty');
    await page.click('[data-testid="clear-filters"]');
    await waitText('[data-testid="match-count"] b', new RegExp(`^${total}$`));
    await settled();
    await page.waitForSelector('[data-testid="pair-view"]');
    expect(await text('[data-testid="reviewed"]')).toMatch(/reviewed 0 of/);
  }, 60_000);

  it('a filter or sort change keeps the same pair selected when still listed, else clears it', async () => {
    await page.locator('#pair-row-5').click();
    await waitText('[data-testid="pair-header"] h3', /Pair #6$/);
    await choose('[data-testid="sort-by"]', 'margin');
    await page.waitForTimeout(300);
    await waitText('[data-testid="pair-header"] h3', /Pair #6$/);
    expect(await page.locator('.pair-row.selected .idx').textContent()).toBe('#6');
    expect(await page.locator('.pair-row.selected').getAttribute('data-index')).not.toBe('5');
    // pair 6 (k = 5) has margin 0.25: uncertain. Filtering to keep verdicts hides it → the selection clears.
    await choose('[data-testid="filter-verdict"]', 'keep');
    await until(`!document.querySelector('[data-testid="pair-view"]') && !document.querySelector('.pair-row.selected')`);
    await choose('[data-testid="filter-verdict"]', 'any');
    await choose('[data-testid="sort-by"]', 'index');
    await waitText('[data-testid="match-count"] b', new RegExp(`^${total}$`));
  }, 60_000);

  it('decide advances to the next pair; reviewed X of N; override and decided-uncertain slices', async () => {
    await page.keyboard.press('g');
    await waitText('[data-testid="pair-header"] h3', /Pair #1$/);
    await page.keyboard.press('d'); // pair 1: margin −1, verdict drop → drop agrees
    await waitText('[data-testid="pair-header"] h3', /Pair #2$/);
    await waitText('[data-testid="reviewed"]', new RegExp(`reviewed 1 of ${total}`));
    expect(await page.locator('#pair-row-0 [data-testid="row-decision"]').textContent()).toBe('drop');
    await page.keyboard.press('a'); // pair 2: margin −0.75, verdict drop → keep overrides
    await waitText('[data-testid="pair-header"] h3', /Pair #3$/);
    await page.keyboard.press('k');
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await waitText('[data-testid="pair-header"] h3', /Pair #5$/);
    await page.keyboard.press('s'); // pair 5: margin 0, uncertain → decided-uncertain
    await waitText('[data-testid="reviewed"]', new RegExp(`reviewed 3 of ${total}`));

    await choose('[data-testid="filter-curated"]', 'overrides');
    await waitText('[data-testid="match-count"] b', /^1$/);
    expect(await page.locator('.pair-row .idx').allTextContents()).toEqual(['#2']);
    expect(await text('[data-testid="reviewed"]')).toMatch(/reviewed 1 of 1/);
    await choose('[data-testid="filter-curated"]', 'decided-uncertain');
    await waitText('[data-testid="match-count"] b', /^1$/);
    expect(await page.locator('.pair-row .idx').allTextContents()).toEqual(['#5']);
    await choose('[data-testid="filter-curated"]', { label: 'all pairs' });
    await waitText('[data-testid="match-count"] b', new RegExp(`^${total}$`));
  }, 60_000);

  it('undo and redo name the pair and select it; history tells undo, redo and notes apart; undo is per curator', async () => {
    await page.keyboard.press('g');
    await waitText('[data-testid="pair-header"] h3', /Pair #1$/);
    await page.keyboard.press('u'); // reverts the swap on pair #5, off-screen
    await waitText('[data-testid="review-status"]', /Undid swap on pair #5\./);
    await waitText('[data-testid="pair-header"] h3', /Pair #5$/);
    expect(await page.locator('.pair-row.selected .idx').textContent()).toBe('#5');
    await page.keyboard.press('r');
    await waitText('[data-testid="review-status"]', /Redid swap on pair #5\./);
    await waitText('[data-testid="decision"]', /^swap$/);
    await page.keyboard.press('n');
    await page.keyboard.type('checked the source');
    await page.keyboard.press('Control+Enter');
    await waitText('.history', /note/);
    const entries = await page.locator('[data-testid="history-entry"]').allTextContents();
    expect(entries[0]).toMatch(/os-user · note/);
    expect(entries[0]).toContain('“checked the source”');
    expect(entries[0]).not.toMatch(/swap → swap/);
    expect(entries[1]).toMatch(/redo: no decision → swap/);
    expect(entries[2]).toMatch(/undo: swap → no decision/);
    expect(entries[3]).toMatch(/swap/);
    expect(await page.locator('.history .h-undo').count()).toBe(1);
    expect(await page.locator('.history .h-redo').count()).toBe(1);
    await shot('1440-history');

    // Another curator (a name set in the app) has their own undo stack and their decisions carry their name.
    await page.fill('[data-testid="curator"]', 'Ana');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Escape');
    await page.locator('[data-testid="pair-list"]').focus();
    await page.keyboard.press('u');
    await waitText('[data-testid="review-status"]', /Nothing to undo for Ana\./);
    await page.keyboard.press('c'); // clear pair 5 as Ana
    await waitText('.history', /Ana · clear/);
    await page.fill('[data-testid="curator"]', '');
    await page.keyboard.press('Tab');
    await page.locator('[data-testid="pair-list"]').focus();
    await page.keyboard.press('u'); // os-user's last step is the note on pair 5 — Ana changed it since, so nothing is overwritten
    await waitText('[data-testid="review-status"]', /Undid note: no pair changed/);
  }, 60_000);

  it('bulk swap: the dialog restates the filter and count, and Enter does not confirm', async () => {
    await choose('[data-testid="filter-verdict"]', 'uncertain');
    await until(`document.querySelector('[data-testid="match-count"] b')?.textContent !== ${JSON.stringify(String(total))}`);
    const n = await matchCount();
    expect(n).toBeGreaterThan(3);
    await page.click('[data-testid="bulk-swap"]');
    await page.waitForSelector('[data-testid="confirm"]');
    const body = await text('[data-testid="confirm-body"]');
    expect(body).toContain(`all ${n} pairs matching: model: uncertain`);
    expect(body).toMatch(/^Swap chosen ↔ rejected/);
    await shot('1440-bulk-dialog');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(400);
    expect(await page.locator('[data-testid="confirm"]').count()).toBe(1);
    expect(await text('[data-testid="reviewed"]')).toMatch(new RegExp(`reviewed 0 of ${n}`));
    await page.click('[data-testid="confirm-ok"]');
    await page.waitForSelector('[data-testid="confirm"]', { state: 'detached' });
    await waitText('[data-testid="review-status"]', /^swap: \d+ pairs$/);
    await waitText('[data-testid="reviewed"]', new RegExp(`reviewed ${n} of ${n}`));
    const shown = await page.locator('[data-testid="row-decision"]').allTextContents();
    expect(shown.length).toBeGreaterThan(3);
    expect(new Set(shown)).toEqual(new Set(['swap']));
    await choose('[data-testid="filter-verdict"]', 'any');
    await waitText('[data-testid="match-count"] b', new RegExp(`^${total}$`));
  }, 60_000);

  it('smaller windows (screenshots at 1024×700 and 800×900) still show the pair header and its buttons', async () => {
    for (const [w, hgt] of [[1024, 700], [800, 900]] as const) {
      await page.setViewportSize({ width: w, height: hgt });
      await page.waitForTimeout(200);
      await shot(`${w}x${hgt}`);
      expect(await page.locator('[data-testid="pair-header"] h3').isVisible()).toBe(true);
      expect(await page.locator('[data-testid="decide-keep"]').isVisible()).toBe(true);
    }
    await page.setViewportSize({ width: 1440, height: 900 });
    expect(errors).toEqual([]);
  }, 60_000);
});
