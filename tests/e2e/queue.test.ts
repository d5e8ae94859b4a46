/**
 * Issue 14 end to end, in headless Chromium against `sparserm serve` with the demo kit: "Review next" walks the
 * active review queue with the Review keys (swap some, drop some, keep some); after N decisions (set to 12 here)
 * the app offers to retrain from the decisions and rescore in the background; the queue then re-ranks (decided
 * pairs gone, a previous run named, a new order); the Charts screen shows both model generations. 0 console errors.
 * The queued pair shows Review's explanation. Copies of the kit's checkpoint and SAE are registered before the kit's
 * own (the first listed, and an SAE of the same layer): the retrain must still use the model's own ones.
 *
 * Seeded through the engine (demo kit registered, 80 TruthfulQA pairs, a first model trained and scored) so the
 * browser part exercises only what issue 14 adds.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ensureDemoKit } from '../../main/engine/demo/kit';
import { openStore } from '../../main/engine/store';
import { registerCheckpoint, registerSae } from '../../main/engine/sparserm/registry';
import { scoreDatasetIntoStore, trainOnDataset } from '../../main/engine/sparserm/service';
import { curatorAgreement } from '../../main/engine/sparserm/curator-agreement';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, openPage, startServe, type Served } from './harness';
import { repoRoot, tempDir } from '../helpers/paths';

const required = process.env.SPARSERM_E2E_REQUIRED === '1';
const haveChromium = chromiumAvailable();
const artifacts = path.join(repoRoot, 'tests', '.artifacts');

describe.skipIf(!haveChromium && !required)('review queue and learning from decisions in a browser (serve + demo kit)', () => {
  let served: Served;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const home = tempDir('sparserm-queue-e2e-');
  const db = path.join(home, 'queue.db');
  const shot = (name: string) => page.screenshot({ path: path.join(artifacts, `queue-${name}.png`) });
  const until = async (expr: string, timeout = 30_000) => {
    const t0 = Date.now();
    for (;;) {
      if (await page.evaluate(expr)) return;
      if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for: ${expr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const queueIds = () => page.evaluate(`[...document.querySelectorAll('[data-testid="queue-list"] li')].map((e) => e.dataset.pair)`) as Promise<string[]>;
  /** The rows the first model was trained with (the kit's), and the decoys listed before them. */
  let own = { checkpoint: '', sae: '' };
  let decoy = { checkpoint: '', sae: '' };
  let firstModel = '';
  const currentPair = () => page.evaluate(`document.querySelector('[data-testid="queue-pair"]')?.dataset.pair ?? null`) as Promise<string | null>;

  beforeAll(async () => {
    if (!haveChromium) throw new Error('SPARSERM_E2E_REQUIRED=1 but /usr/bin/chromium is missing');
    fs.mkdirSync(artifacts, { recursive: true });
    ensureRendererBuilt();
    process.env.SPARSERM_HOME = home; // the feature cache the engine and serve share
    const kit = await ensureDemoKit();
    const store = openStore(db);
    try {
      const copyCkpt = path.join(home, 'copy-checkpoint');
      fs.cpSync(kit.checkpoint, copyCkpt, { recursive: true });
      const copySae = path.join(home, 'copy-sae', 'params.npz');
      fs.mkdirSync(path.dirname(copySae), { recursive: true });
      fs.copyFileSync(kit.sae, copySae);
      decoy = { checkpoint: (await registerCheckpoint(store, copyCkpt, { demo: true })).id, sae: (await registerSae(store, copySae, { demo: true, layer: kit.layer })).id };
      own = { checkpoint: (await registerCheckpoint(store, kit.checkpoint, { demo: true })).id, sae: (await registerSae(store, kit.sae, { demo: true, layer: kit.layer })).id };
      const ds = store.datasets.create('queue-e2e');
      const lines = fs.readFileSync(path.join(repoRoot, 'resources', 'demo', 'truthfulqa', 'pairs.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 80);
      store.transaction(() =>
        lines.forEach((l, i) => {
          const r = JSON.parse(l) as { prompt: string; chosen: string; rejected: string; source?: string };
          store.pairs.insert(ds.id, null, { line: i + 1, source: r.source ?? null, externalId: null, prompt: r.prompt, chosen: r.chosen, rejected: r.rejected, contentHash: crypto.createHash('sha256').update(l).digest('hex') });
        }),
      );
      const t = await trainOnDataset({ store, dataset: ds.id, checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, k: 8, maxEpochs: 4, ep: 'cpu' });
      const scored = await scoreDatasetIntoStore({ store, dataset: ds.id, modelDir: t.modelDir, ep: 'cpu' });
      // The paper rule, as the Train screen applies after every scoring: pairs show their model (and explanation).
      store.runs.applyFilter({ datasetId: ds.id, runId: scored.runId, rule: 'paper' });
      firstModel = t.manifest.id;
      expect(store.models.rewardModel(firstModel)).toMatchObject({ backboneId: own.checkpoint, saeId: own.sae });
    } finally {
      store.close();
    }
    served = await startServe({ db, env: { SPARSERM_HOME: home, SPARSERM_ACTOR: 'curator-e2e' } });
    browser = await launchBrowser();
    page = await openPage(browser, errors);
    await page.goto(served.url);
    await page.click('[data-screen="review"]');
    await page.waitForSelector('[data-testid="review-toolbar"]');
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  let before: string[] = [];
  const decided: string[] = [];

  it('"Review next" (q) serves the least certain pairs and decides with the Review keys; decided pairs leave the queue', async () => {
    await page.keyboard.press('q');
    await page.waitForSelector('[data-testid="queue-pair"]');
    await until(`/80 undecided pairs/.test(document.querySelector('[data-testid="queue-summary"]')?.textContent ?? '')`);
    before = await queueIds();
    expect(before).toHaveLength(80);
    expect(await currentPair()).toBe(before[0]);
    // Review's explanation of the queued pair: the one-line why and the margin by latent (explainPair on demand)
    // (the first one opens the backbone and SAE sessions: up to 90 s on a shared CI machine)
    await page.waitForSelector('[data-testid="queue-pair"] [data-testid="explanation"] [data-testid="why"]', { timeout: 90_000 }).catch(async (err) => {
      await shot('00-explanation-missing');
      throw new Error(`${err}\nqueue pair: ${await page.textContent('[data-testid="queue-pair"]')}\nerrors: ${errors.join(' | ')}`);
    });
    await page.waitForSelector('[data-testid="queue-pair"] [data-testid="margin-decomposition"]');
    await page.waitForSelector('[data-testid="queue-pair"] [data-testid="explain-chosen"]');
    await page.fill('[data-testid="queue-every"]', '12');
    await page.press('[data-testid="queue-every"]', 'Tab');
    await page.evaluate(`document.activeElement?.blur()`);
    await shot('01-queue');
    // j moves, k back; then 4 swaps, 3 drops, 5 keeps: each decided pair leaves, the next takes its place
    await page.keyboard.press('j');
    await until(`document.querySelector('[data-testid="queue-pair"]')?.dataset.pair === ${JSON.stringify(before[1])}`);
    await page.keyboard.press('k');
    await until(`document.querySelector('[data-testid="queue-pair"]')?.dataset.pair === ${JSON.stringify(before[0])}`);
    // the next pair's explanation replaces the previous one
    await page.waitForSelector('[data-testid="queue-pair"] [data-testid="why"]');
    for (const key of ['s', 's', 's', 's', 'd', 'd', 'd', 'a', 'a', 'a', 'a', 'a']) {
      const id = (await currentPair())!;
      await page.keyboard.press(key);
      await until(`document.querySelector('[data-testid="queue-pair"]')?.dataset.pair !== ${JSON.stringify(id)} && ![...document.querySelectorAll('[data-testid="queue-list"] li')].some((e) => e.dataset.pair === ${JSON.stringify(id)})`);
      decided.push(id);
    }
    expect(decided).toEqual(before.slice(0, 12));
    expect(await queueIds()).toEqual(before.slice(12));
  }, 240_000);

  it('after N decisions offers to retrain from the decisions and rescore; the queue re-ranks', async () => {
    await page.waitForSelector('[data-testid="queue-offer"]');
    await shot('02-offer');
    await page.click('[data-testid="queue-offer-yes"]');
    await page.waitForSelector('[data-testid="queue-retrain-status"]');
    await until(`!document.querySelector('[data-testid="queue-retrain-status"]') && /vs run/.test(document.querySelector('[data-testid="queue-summary"]')?.textContent ?? '')`, 240_000);
    const after = await queueIds();
    expect(after).toHaveLength(68);
    for (const id of decided) expect(after).not.toContain(id);
    expect(after).not.toEqual(before.slice(12)); // ranked under the new model
    expect(await page.textContent('[data-testid="queue-summary"]')).toMatch(/68 undecided pairs, least certain first · run \d+\s+vs run \d+/);
    await shot('03-reranked');
    // the retrain used the checkpoint and SAE the first model was trained with, not the first listed ones
    const store = openStore(db, { readonly: true });
    try {
      const models = store.models.rewardModels();
      expect(models).toHaveLength(2);
      const retrained = models.find((m) => m.id !== firstModel)!;
      expect([retrained.backboneId, retrained.saeId]).toEqual([own.checkpoint, own.sae]);
      expect([own.checkpoint, own.sae]).not.toEqual([decoy.checkpoint, decoy.sae]);
    } finally {
      store.close();
    }
  }, 300_000);

  it('the Charts screen shows both model generations against the curators', async () => {
    await page.keyboard.press('q'); // leave Review next
    await page.waitForSelector('[data-testid="review-queue"]', { state: 'detached' });
    await page.click('[data-screen="charts"]');
    await page.waitForSelector('[data-testid="ca-row"]');
    // the rescore re-applied the rule (τ = 0 here): the model's verdicts follow the new run
    await page.waitForSelector('[data-testid="agreement"] >> text=with 12 curator decisions');
    const rows = await page.$$eval('[data-testid="ca-row"]', (r) => r.map((x) => x.textContent ?? ''));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/gen 1.*original labels/);
    expect(rows[1]).toMatch(/gen 2.*learned decisions up to #\d+: \d+ as labelled, \d+ swapped, \d+ left out/);
    const store = openStore(db, { readonly: true });
    try {
      const a = curatorAgreement(store, store.datasets.resolve('queue-e2e').id);
      expect(a.generations).toHaveLength(2);
      if (a.heldOut > 0) await page.waitForSelector('[data-testid="curator-agreement"] canvas');
      else await page.waitForSelector('[data-testid="curator-agreement-empty"]');
    } finally {
      store.close();
    }
    await shot('04-charts');
    expect(errors).toEqual([]);
  }, 60_000);

  it('the Train screen offers training from curator decisions', async () => {
    await page.click('[data-screen="train"]');
    await page.check('[data-testid="train-from-decisions"]');
    await page.waitForSelector('[data-testid="train-undecided"]');
    expect(errors).toEqual([]);
  });
});
