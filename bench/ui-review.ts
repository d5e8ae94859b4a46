/**
 * Review list with 100,000 pairs, measured in headless Chromium against `sparserm serve`:
 *  - time to first render: navigation start → the first rows of the list painted with their content;
 *  - worst frame while scrolling: rAF-to-rAF gaps while the list is scrolled through (wheel-sized steps and
 *    long jumps), rows fetched on demand.
 * Run: npx tsx bench/ui-review.ts [--pairs 100000]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../main/engine/store';
import { chromiumAvailable, ensureRendererBuilt, launchBrowser, startServe } from '../tests/e2e/harness';
import { dataDir, repoRoot } from '../tests/helpers/paths';
import type { BrowserGlobals } from '../tests/e2e/browser-globals';

const argPairs = process.argv.indexOf('--pairs');
const N = argPairs > 0 ? Number(process.argv[argPairs + 1]) : 100_000;

/** Real TruthfulQA pairs repeated (with a variant tag so each is unique) and deterministic synthetic scores. */
function seed(dbPath: string, n: number): number {
  const store = openStore(dbPath);
  const base = fs
    .readFileSync(path.join(dataDir, 'truthfulqa', 'pairs_all.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string; source: string });
  const ds = store.datasets.create(`bench-${n}`);
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const ids: number[] = [];
  const B = 5000;
  for (let start = 0; start < n; start += B) {
    store.transaction(() => {
      for (let i = start; i < Math.min(n, start + B); i++) {
        const r = base[i % base.length];
        const prompt = i < base.length ? r.prompt : `${r.prompt} (variant ${Math.floor(i / base.length)})`;
        const id = store.pairs.insert(ds.id, null, {
          line: i + 1, source: i % 5 === 0 ? 'hh-rlhf' : r.source, externalId: null, prompt, chosen: r.chosen, rejected: r.rejected,
          contentHash: crypto.createHash('sha256').update(`${prompt}\0${r.chosen}\0${r.rejected}`).digest('hex'),
        });
        if (id !== null) ids.push(id);
      }
    });
  }
  store.models.upsertRewardModel({ id: 'bench-rm', name: 'bench (synthetic scores)', folder: '/nonexistent', manifestHash: 'bench' });
  const run = store.runs.create({ datasetId: ds.id, rewardModelId: 'bench-rm' });
  for (let start = 0; start < ids.length; start += B) {
    store.runs.addScores(run.id, ids.slice(start, start + B).map((pairId) => ({ pairId, scoreChosen: rand() * 4 - 1.5, scoreRejected: rand() * 4 - 2.5 })));
  }
  store.runs.finish(run.id, 'done');
  store.runs.applyFilter({ datasetId: ds.id, runId: run.id, rule: 'margin', threshold: 0, band: 0.2 });
  store.close();
  return ids.length;
}

const SCROLL_SCRIPT = `(async () => {
  const el = document.querySelector('[data-testid="pair-list"]');
  const gaps = [];
  // Long animation frames (Chromium's LoAF API) say where a slow frame's time went: our script (Vue, the virtual
  // list, fetch handling) versus style, layout and paint, which CPU contention stretches.
  const loafs = [];
  const obs = typeof PerformanceObserver !== 'undefined' && PerformanceObserver.supportedEntryTypes?.includes('long-animation-frame')
    ? new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.duration > 50) loafs.push({
        ms: Math.round(e.duration),
        scriptMs: Math.round(e.scripts.reduce((a, x) => a + x.duration, 0)),
        renderMs: Math.round(e.renderStart ? e.startTime + e.duration - e.renderStart : 0),
        scripts: e.scripts.filter((x) => x.duration >= 5).map((x) => x.invoker + ' ' + Math.round(x.duration) + ' ms'),
      }); })
    : null;
  obs?.observe({ type: 'long-animation-frame' });
  let last = performance.now();
  let running = true;
  const tick = (t) => { gaps.push(t - last); last = t; if (running) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  for (let i = 0; i < 240; i++) { el.scrollTop += 120; await frame(); }
  const wheelFrames = gaps.length;
  for (let j = 1; j <= 20; j++) { el.scrollTop = (el.scrollHeight * j) / 21; for (let k = 0; k < 6; k++) await frame(); }
  el.scrollTop = el.scrollHeight;
  for (let k = 0; k < 30; k++) await frame();
  running = false;
  obs?.disconnect();
  // After the last jump: how long until every visible row has its content.
  const t0 = performance.now();
  const full = () => [...document.querySelectorAll('.pair-row')].every((r) => r.querySelector('.prompt'));
  while (!full() && performance.now() - t0 < 10000) await frame();
  const fillAfterJumpMs = performance.now() - t0;
  const loaded = full();
  return { loafs, gaps: gaps.slice(1), wheelFrames, loaded, fillAfterJumpMs, last: document.querySelector('.pair-row:last-child .idx')?.textContent ?? null };
})()`;

async function main() {
  if (!chromiumAvailable()) throw new Error('chromium not found at /usr/bin/chromium (apt-get install -y chromium)');
  ensureRendererBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-ui-'));
  const db = path.join(dir, 'bench.db');
  const t0 = performance.now();
  const n = seed(db, N);
  const seedS = (performance.now() - t0) / 1000;
  const served = await startServe({ db, env: { SPARSERM_HOME: dir } });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(served.url);
    await page.waitForFunction(() => (globalThis as unknown as BrowserGlobals).document.querySelectorAll('.pair-row .prompt').length > 5, null, { timeout: 60_000 });
    const firstRenderMs = await page.evaluate(() => (globalThis as unknown as BrowserGlobals).performance.now());
    const total = await page.evaluate(() => (globalThis as unknown as BrowserGlobals).document.querySelector('[data-testid="match-count"] b')?.textContent ?? '');
    const rowsInDom = await page.evaluate(() => (globalThis as unknown as BrowserGlobals).document.querySelectorAll('.pair-row').length);

    // Scroll: 240 wheel-sized steps, then 20 long jumps across the whole list; rAF gaps measured throughout.
    // A string, not a function: tsx's keepNames would inject a __name helper that does not exist in the page.
    const frames = (await page.evaluate(SCROLL_SCRIPT)) as { loafs: { ms: number; scriptMs: number; renderMs: number; scripts: string[] }[]; gaps: number[]; wheelFrames: number; loaded: boolean; fillAfterJumpMs: number; last: string | null };
    const sorted = [...frames.gaps].sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      machine: `${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, ${os.platform()} ${os.release()}, Chromium headless (--disable-gpu)`,
      pairs: n,
      seedSeconds: +seedS.toFixed(1),
      matchCountShown: total,
      rowsInDom,
      firstRenderMs: Math.round(firstRenderMs),
      frames: frames.gaps.length,
      worstFrameMs: +sorted[sorted.length - 1].toFixed(1),
      worstFrameWheelMs: +Math.max(...frames.gaps.slice(0, frames.wheelFrames - 1)).toFixed(1),
      worstFrameJumpsMs: +Math.max(...frames.gaps.slice(frames.wheelFrames - 1)).toFixed(1),
      slowFrames: frames.gaps.map((g, i) => [i, Math.round(g)]).filter(([, g]) => g > 50),
      /** Long animation frames (> 50 ms) while scrolling: total, in our script, in rendering (style/layout/paint). */
      longFrames: frames.loafs,
      loadAvg: os.loadavg().map((x) => +x.toFixed(2)),
      p95FrameMs: +sorted[Math.floor(sorted.length * 0.95)].toFixed(1),
      medianFrameMs: +sorted[Math.floor(sorted.length / 2)].toFixed(1),
      rowsLoadedAtEnd: frames.loaded,
      fillAfterLastJumpMs: Math.round(frames.fillAfterJumpMs),
      consoleErrors: errors,
    };
    const out = path.join(repoRoot, 'bench', 'results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'ui-review.json'), JSON.stringify(result, null, 2));
    await page.screenshot({ path: path.join(out, 'ui-review.png') });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await browser.close();
    await served.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
