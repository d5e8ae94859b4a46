/**
 * The Generate screen in headless Chromium against `sparserm serve` (issue 12 items 5 and 7), on a database the CLI
 * set up (`sparserm demo`: demo checkpoint, SAE, trained reward model): generate from a prompts file with the demo
 * checkpoint as policy (N = 2, few tokens), see the live bar with tokens/s, cancel and resume, wait for the new
 * dataset, see the candidates with their scores, open the pairs in Review, see round 1 and its lineage on Datasets,
 * register a second policy checkpoint (the kit's weights nudged, standing in for a DPO step), run the next round from
 * Datasets and see round 2 with round 1 as its parent; generate from an OpenAI-compatible endpoint (a second
 * `sparserm serve --policy`); Generate and Datasets fit 1024×700 and 800×900. The page must log no console errors.
 * Screenshots go to tests/.artifacts/generate-*.png.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { repoRoot, tempDir } from '../helpers/paths';
import { ensureDemoKit } from '../../main/engine/demo/kit';
import { openSafetensors, writeSafetensors } from '../../main/engine/formats/safetensors';
import { readDemoPairs } from '../../main/engine/demo/demo-data';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
const artifacts = path.join(repoRoot, 'tests', '.artifacts');
// Enough work (prompts × tokens) that the cancel lands mid-run even on a quiet machine (~800 tokens/s here).
const PROMPTS = 10;
const N = 2;

describe.skipIf(!haveChromium && !required)('Generate screen in a browser (serve + CLI demo)', () => {
  let served: Served;
  /** A second `sparserm serve --policy`: the demo checkpoint's decoding as an OpenAI-compatible endpoint. */
  let policyServer: Served;
  let endpointBase = '';
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const home = tempDir('sparserm-generate-e2e-');
  const db = path.join(home, 'studio.db');
  const env = { SPARSERM_HOME: home, SPARSERM_DB: db };
  const promptsPath = path.join(home, 'prompts.jsonl');
  const policy2 = path.join(home, 'policy-round-2');
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `generate-${name}.png`), fullPage: false });
  const nav = async (screen: string) => {
    await page.click(`[data-screen="${screen}"]`);
    await page.waitForSelector(`[data-screen="${screen}"].active`);
  };
  const text = async (sel: string) => ((await page.textContent(sel)) ?? '').replace(/\s+/g, ' ').trim();
  /** Waits until `read()` satisfies `ok`, and returns it: for values an action changes in a later task than its own. */
  const until = async <T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeout = 30_000): Promise<T> => {
    const t0 = Date.now();
    for (;;) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for ${what}; last read: ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const candidates = () => page.locator('[data-testid="gen-candidate"]').count();
  /** Waits for `selector`, failing at once (with the error shown) if an error toast appears. */
  const untilOrError = async (selector: string, timeout: number) => {
    const hit = await page.waitForSelector(`${selector}, .toast.error, .job.failed`, { timeout });
    const t = (await hit.getAttribute('class')) ?? '';
    if (/\b(error|failed)\b/.test(t)) throw new Error(`failed in the UI: ${await hit.textContent()}`);
  };

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'demo', '--ep', 'cpu', '--db', db], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    // A few distinct demo prompts, as a prompts file (JSONL with "prompt").
    const prompts = [...new Set(readDemoPairs().map((p) => p.prompt))].slice(0, PROMPTS);
    fs.writeFileSync(promptsPath, prompts.map((prompt) => JSON.stringify({ prompt })).join('\n') + '\n');
    // Round 2's policy, as a DPO step would leave it: the kit's checkpoint folder (tokenizer, template) with every
    // weight nudged by up to 5 % (deterministic), so it is another checkpoint (other content hash) that still
    // writes answers that differ between the two instructions.
    const kit = await ensureDemoKit();
    fs.cpSync(kit.checkpoint, policy2, { recursive: true });
    const st = openSafetensors(path.join(kit.checkpoint, 'model.safetensors'));
    const nudged: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, e] of st.entries) {
      const data = st.readF32(name);
      for (let i = 0; i < data.length; i++) data[i] *= 1 + 0.05 * Math.sin(i + name.length);
      nudged[name] = { dtype: 'F32', shape: e.shape, data };
    }
    st.close();
    writeSafetensors(path.join(policy2, 'model.safetensors'), nudged, { format: 'pt' });
    ensureRendererBuilt();
    policyServer = await startServe({ db: path.join(home, 'policy.db'), env: { SPARSERM_HOME: home }, args: ['--policy', kit.checkpoint, '--served-model-name', 'demo-policy'] });
    const policyUrl = new URL(policyServer.url);
    endpointBase = `${policyUrl.origin}/v1`;
    // The studio's endpoint client sends this key (the policy server's per-launch token) as its Bearer token.
    served = await startServe({ db, env: { ...env, SPARSERM_ENDPOINT_KEY: /token=([\w-]+)/.exec(policyUrl.hash)![1] } });
    browser = await launchBrowser();
    page = await openPage(browser, consoleErrors);
    await page.goto(served.url);
    await page.waitForSelector('[data-testid="dataset-select"]');
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
    await policyServer?.stop();
  });

  it('fills the form: presets fill the instruction pair, invalid numbers are refused beside the field', async () => {
    // Alt+7 opens Generate (the digits of the other screens are unchanged).
    await page.keyboard.press('Alt+7');
    await page.waitForSelector('[data-screen="generate"].active');
    await page.waitForSelector('[data-testid="gen-recipes"]');
    // Every pairing rule comes with its one-line explanation.
    for (const r of ['instructed', 'self-judged', 'best-worst', 'margin']) {
      const id = await page.getAttribute(`[data-testid="gen-recipe-${r}"]`, 'aria-describedby');
      expect((await text(`#${id}`)).length).toBeGreaterThan(20);
    }
    // Labelled controls: each rule's radio is named by its rule (its explanation is the description), each number
    // field by its label.
    expect(await page.getByRole('radio', { name: 'Best vs worst', exact: true }).count()).toBe(1);
    expect(await page.getByRole('textbox', { name: 'max new tokens', exact: true }).count()).toBe(1);
    await page.getByRole('radio', { name: 'Instructed pairs', exact: true }).check();
    await page.selectOption('[data-testid="gen-preset"]', 'saferlhf');
    await until(() => page.inputValue('[data-testid="gen-rejected-instruction"]'), (v) => /regardless/i.test(v), 'the saferlhf instructions');
    await page.selectOption('[data-testid="gen-preset"]', 'truthfulqa');
    await until(() => page.inputValue('[data-testid="gen-rejected-instruction"]'), (v) => /misconception/i.test(v), 'the truthfulqa instructions');
    // A bad number: said beside the field, Start disabled with the reason.
    await page.fill('[data-testid="gen-topP"]', '1.5');
    await page.waitForSelector('.field-error >> text=top-p: expected a number from 0.01 to 1, got 1.5');
    expect(await page.isDisabled('[data-testid="gen-start"]')).toBe(true);
    expect(await text('#gen-missing')).toMatch(/valid numbers/);
    await page.fill('[data-testid="gen-topP"]', '0.95');
    await shot('01-form');
  }, 60_000);

  let runName = '';
  it('generates from a prompts file with a live bar in tokens/s; cancel, then resume to the end', async () => {
    await page.check('[data-testid="gen-prompts-file"]');
    await page.fill('[data-testid="gen-prompts-path"]', promptsPath);
    await page.check('[data-testid="gen-policy-local"]');
    expect(await page.$eval('[data-testid="gen-checkpoint"] option:checked', (o) => (o as unknown as { textContent: string }).textContent)).toMatch(/demo/);
    await page.fill('[data-testid="gen-n"]', String(N));
    await page.fill('[data-testid="gen-maxNewTokens"]', '48');
    await page.fill('[data-testid="gen-temperature"]', '1');
    await page.fill('[data-testid="gen-seed"]', '7');
    runName = 'gen-e2e-r1';
    await page.fill('[data-testid="gen-name"]', runName);
    await page.click('[data-testid="gen-start"]');
    await page.waitForSelector('[data-testid="gen-progress"]');
    // The bar says how fast tokens come, live, before the run ends.
    await untilOrError('[data-testid="gen-tps"]', 60_000);
    expect(await text('[data-testid="gen-tps"]')).toMatch(/^\d+(\.\d)? tokens\/s$/);
    expect(await page.getByRole('progressbar', { name: 'generation progress' }).getAttribute('aria-valuetext')).toMatch(/tokens\/s/);
    expect(await text('[data-testid="gen-progress"] [aria-live="polite"]')).toMatch(/^Generation (\d+ % done|running|queued)$/);
    await shot('02-running');
    // Cancel once the first prompt is done and stored (its candidates listed), then resume: finished prompts are
    // kept. The rate alone is no sign of that: it is reported mid-prompt, and on a loaded machine the first prompt
    // takes seconds.
    await untilOrError('[data-testid="gen-candidate"]', 120_000);
    expect(await page.getAttribute('[data-testid="gen-progress"]', 'data-state')).toBe('running');
    await page.click('[data-testid="gen-cancel"]');
    await page.waitForSelector('[data-testid="gen-progress"][data-state="cancelled"]', { timeout: 30_000 });
    expect(await page.isDisabled('[data-testid="gen-start"]')).toBe(false);
    // The cancelled run's candidates so far are listed (those of the first prompt at least).
    await page.waitForSelector('[data-testid="gen-candidate"]');
    await shot('03-cancelled');
    await page.click('[data-testid="gen-resume"]');
    await untilOrError('[data-testid="gen-done"]', 240_000);
    expect(await page.getAttribute('[data-testid="gen-progress"]', 'data-state')).toBe('done');
    // "Made dataset" shows as the job ends; its name, size and round follow once the dataset list has reloaded.
    await until(() => text('[data-testid="gen-done"]'), (t) => new RegExp(`Made dataset ${runName} · \\d+ pairs · round 1`).test(t), 'the new dataset named in the report');
    await shot('04-done');
  }, 300_000);

  it('shows the candidates with their SparseRM scores', async () => {
    // Instructed: N candidates under each of the two instructions, per prompt. The cancelled run's partial list is
    // on screen until the last page reloads, so wait for the whole count, not for the first row.
    await until(candidates, (c) => c === PROMPTS * N * 2, `${PROMPTS * N * 2} candidates`);
    const scores = await page.locator('[data-testid="gen-candidate-score"]').allTextContents();
    expect(scores.every((s) => /^-?\d+\.\d{3}$/.test(s.trim()))).toBe(true);
    await page.locator('[data-testid="gen-candidates"]').scrollIntoViewIfNeeded();
    await shot('05-candidates');
  }, 60_000);

  it('opens the new pairs in Review', async () => {
    const pairs = Number(/· (\d+) pairs/.exec(await text('[data-testid="gen-done"]'))![1]);
    expect(pairs).toBeGreaterThan(0);
    await page.click('[data-testid="gen-review"]');
    await page.waitForSelector('[data-screen="review"].active');
    expect(await page.$eval('[data-testid="dataset-select"] option:checked', (o) => (o as unknown as { textContent: string }).textContent)).toContain(runName);
    try {
      await page.waitForSelector('[data-testid="pair-list"][aria-busy="false"]', { timeout: 30_000 });
      await page.waitForSelector(`[data-testid="match-count"] b:text-is("${pairs}")`);
      // Review opens on the new dataset's first pair: a prompt with its two generated answers, SparseRM's margin.
      await page.waitForSelector('[data-testid="pair-view"]');
      expect(await text('[data-testid="pair-view"]')).toMatch(/chosen[\s\S]*rejected/i);
    } catch (err) {
      await shot('failure-review');
      throw err;
    }
    await shot('06-review');
  }, 60_000);

  it('shows round 1 with its lineage on Datasets, runs the next round with a new policy, and round 2 appears', async () => {
    // The new policy checkpoint (as after a DPO round) is registered on Models.
    await nav('models');
    await page.fill('[data-testid="ckpt-path"]', policy2);
    await page.click('button:has-text("Add checkpoint")');
    await page.waitForSelector('[data-testid="models-table"] >> text=policy-round-2');

    await nav('datasets');
    await page.waitForSelector('[data-testid="lineage-table"]');
    const row1 = page.locator('[data-testid="lineage-row"]', { hasText: runName });
    expect(await row1.locator('[data-testid="lineage-round"]').textContent()).toBe('1');
    expect(await row1.textContent()).toMatch(/Instructed pairs/);
    expect(await row1.textContent()).toMatch(/prompts\.jsonl/);
    expect(await row1.locator('[data-testid="lineage-parent"]').textContent()).toBe('—');
    expect(await text(`[data-testid="datasets-table"] tr:has-text("${runName}") [data-testid="round-chip"]`)).toBe('round 1');
    await shot('07-datasets-round-1');

    await row1.locator('[data-testid="lineage-next"]').click();
    await page.waitForSelector('[data-testid="next-round"]');
    await page.selectOption('[data-testid="next-round-ckpt"]', { label: 'policy-round-2' });
    await page.click('[data-testid="next-round-go"]');
    // (The demo's own generated rounds are listed too; round 2 of this chain is the row whose parent is round 1.)
    const child = `[data-testid="lineage-row"]:has([data-testid="lineage-parent"]:text-is("${runName}"))`;
    await untilOrError(child, 240_000);
    const row2 = page.locator(child);
    expect(await row2.count()).toBe(1);
    expect(await row2.locator('[data-testid="lineage-round"]').textContent()).toBe('2');
    expect(await row2.textContent()).toMatch(/policy-round-2/);
    await shot('08-datasets-round-2');
  }, 300_000);

  it('generates from an OpenAI-compatible endpoint (another sparserm serve --policy), best vs worst, scored here', async () => {
    await nav('generate');
    await page.check('[data-testid="gen-prompts-file"]');
    await page.fill('[data-testid="gen-prompts-path"]', promptsPath);
    await page.check('[data-testid="gen-policy-endpoint"]');
    await page.fill('[data-testid="gen-endpoint-url"]', endpointBase);
    await page.fill('[data-testid="gen-endpoint-model"]', 'demo-policy');
    await page.check('[data-testid="gen-recipe-best-worst"]');
    await page.fill('[data-testid="gen-n"]', '2');
    await page.fill('[data-testid="gen-maxNewTokens"]', '8');
    await page.fill('[data-testid="gen-name"]', 'gen-e2e-endpoint');
    await page.click('[data-testid="gen-start"]');
    await untilOrError('[data-testid="gen-done"]:has-text("gen-e2e-endpoint")', 240_000);
    // Best vs worst: one pair per prompt unless a prompt's two candidates tie.
    const pairs = Number(/· (\d+) pairs/.exec(await text('[data-testid="gen-done"]'))![1]);
    expect(pairs).toBeGreaterThan(0);
    expect(pairs).toBeLessThanOrEqual(PROMPTS);
    // Round 1's 40 candidates may still be listed while this run's page loads: wait for this run's count.
    await until(candidates, (c) => c === PROMPTS * 2, `${PROMPTS * 2} candidates of the endpoint run`);
    await shot('09-endpoint-done');
    await nav('datasets');
    const row = page.locator('[data-testid="lineage-row"]', { hasText: 'gen-e2e-endpoint' });
    expect(await row.locator('[data-testid="lineage-policy"]').textContent()).toBe(`demo-policy at ${endpointBase}/chat/completions`);
    expect(await row.textContent()).toMatch(/Best vs worst/);
  }, 300_000);

  it('fits narrow windows (nothing scrolls sideways) and logged no console errors', async () => {
    for (const [w, h] of [[1024, 700], [800, 900]]) {
      await page.setViewportSize({ width: w, height: h });
      // A fresh tab at this size starts with the sidebar collapsed (as app-shell.test.ts checks).
      await page.reload();
      await page.waitForSelector('[data-testid="dataset-select"]');
      for (const screen of ['generate', 'datasets']) {
        await nav(screen);
        await page.waitForSelector(screen === 'generate' ? '[data-testid="gen-start"]' : '[data-testid="lineage-table"]');
        // Neither the screen nor a table (the lineage and candidates tables) scrolls sideways.
        const overflowing = await page.$$eval('.content, .content .table-wrap', (els) =>
          els
            .map((e) => e as unknown as { scrollWidth: number; clientWidth: number; className: string; querySelector(s: string): { getAttribute(a: string): string | null } | null })
            .filter((e) => e.scrollWidth > e.clientWidth + 1)
            .map((e) => `${e.querySelector('table')?.getAttribute('data-testid') ?? e.className} by ${e.scrollWidth - e.clientWidth} px`),
        );
        expect(overflowing, `${screen} at ${w}×${h}`).toEqual([]);
        await shot(`10-${screen}-${w}x${h}`);
      }
    }
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
