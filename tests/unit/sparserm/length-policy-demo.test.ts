/**
 * The length policy end to end on the demo kit: train with a small max-token setting reports how many pairs were
 * cut (also from the feature cache's text index), the setting is recorded in the manifest and used by eval / score /
 * explain, scored pairs in the store carry their truncation, an old manifest reads as 1,024, a setting above
 * max_position_embeddings is refused naming the field, and a 50,000-character response costs exactly max tokens of
 * backbone work with bounded memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

import { loadTokenizer } from '../../../main/engine/backbone/tokenizer';
import { importFile } from '../../../main/engine/data';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { loadSae } from '../../../main/engine/sae';
import { extractFeatures } from '../../../main/engine/sparserm/features';
import { readPairsJsonl, type PairInput } from '../../../main/engine/sparserm/pairs-file';
import { evaluateRewardModel, explainResponse, extractLatents, readRewardModel, scoreDatasetIntoStore, scorePairs, trainRewardModel, type PairTruncation } from '../../../main/engine/sparserm/service';
import { openStore } from '../../../main/engine/store';
import { dataDir, repoRoot, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-length-');
process.env.SPARSERM_HOME = home;
const cacheRoot = path.join(home, 'features');
const MAX = 48;

let kit: DemoKit;
let pairs: PairInput[];
/** Per pair, what the policy must cut at MAX, computed here from the tokenizer's own encodings and spans. */
let expected: Array<PairTruncation | undefined>;

function expectedCut(len: number, promptLen: number) {
  const cut = len - MAX;
  if (cut <= 0) return undefined;
  const prompt = Math.min(cut, promptLen);
  return { prompt, response: cut - prompt, original: len };
}

beforeAll(async () => {
  kit = await ensureDemoKit();
  pairs = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(0, 40).map((p, i) => ({ ...p, id: `tqa-${i}` }));
  const tok = await loadTokenizer(kit.checkpoint);
  expected = pairs.map((p) => {
    const [c, r] = [tok.encodeChat(p.prompt, p.chosen), tok.encodeChat(p.prompt, p.rejected)].map((e) => expectedCut(e.ids.length, e.promptEnd - e.promptStart));
    return c || r ? { ...(c ? { chosen: c } : {}), ...(r ? { rejected: r } : {}) } : undefined;
  });
}, 300_000);

const expectedCount = () => expected.filter(Boolean).length;

describe('length policy on the demo kit', () => {
  let smallModel: string;
  let defaultModel: string;

  it('train --max-tokens small: truncated pairs reported and recorded; the backbone never sees more than max tokens', async () => {
    // The data must exercise both cuts: pairs that fit, pairs cut in the prompt only, pairs cut into the response.
    expect(expectedCount()).toBeGreaterThan(0);
    expect(expectedCount()).toBeLessThan(pairs.length);
    expect(expected.some((t) => (t?.chosen?.response ?? 0) > 0 || (t?.rejected?.response ?? 0) > 0)).toBe(true);

    const res = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 8, maxEpochs: 3, maxTokens: MAX, outDir: path.join(home, 'small'), cacheRoot, ep: 'cpu' });
    smallModel = res.modelDir;
    expect(res.truncated).toBe(expectedCount());
    expect(res.manifest.maxTokens).toBe(MAX);
    expect(res.manifest.training.truncatedPairs).toBe(expectedCount());
    expect(res.features.responsesComputed).toBeGreaterThan(0);
    expect(res.features.tokensComputed).toBeLessThanOrEqual(MAX * res.features.responsesComputed);
    expect((await readRewardModel(smallModel)).manifest.maxTokens).toBe(MAX);

    // Again: every text now comes from the cache's text index, which must still know what was cut.
    const again = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 8, maxEpochs: 3, maxTokens: MAX, outDir: path.join(home, 'small-again'), cacheRoot, ep: 'cpu' });
    expect(again.features.responsesComputed).toBe(0);
    expect(again.truncated).toBe(expectedCount());

    // The default setting (1,024) cuts nothing here; other ids, so other features.
    const def = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 8, maxEpochs: 3, outDir: path.join(home, 'default'), cacheRoot, ep: 'cpu' });
    defaultModel = def.modelDir;
    expect(def.manifest.maxTokens).toBe(1024);
    expect(def.truncated).toBe(0);
    expect(def.manifest.training.truncatedPairs).toBeUndefined();
    expect(def.features.responsesComputed).toBeGreaterThan(0);
  }, 300_000);

  it('score and eval use the model\'s setting and report exactly what was cut, per pair', async () => {
    const scores = await scorePairs({ modelDir: smallModel, pairs, cacheRoot, ep: 'cpu' });
    expect(scores).toHaveLength(pairs.length);
    scores.forEach((s) => expect(s.truncation).toEqual(expected[s.index]));
    const ev = await evaluateRewardModel({ modelDir: smallModel, pairs, baselines: false, cacheRoot, ep: 'cpu' });
    expect(ev.truncated).toBe(expectedCount());
    const evDefault = await evaluateRewardModel({ modelDir: defaultModel, pairs, baselines: false, cacheRoot, ep: 'cpu' });
    expect(evDefault.truncated).toBe(0);
  }, 300_000);

  it('scored pairs in the store carry their truncation (null when nothing was cut); score --json reports the count', async () => {
    const file = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(file, pairs.map((p) => JSON.stringify({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected })).join('\n') + '\n');
    const db = path.join(home, 'store.db');
    const store = openStore(db);
    try {
      await importFile(store, file, { dataset: 'tqa40', format: 'standard' });
      const r = await scoreDatasetIntoStore({ store, dataset: 'tqa40', modelDir: smallModel, cacheRoot, ep: 'cpu' });
      expect(r.truncated).toBe(expectedCount());
      const ids = [...store.pairs.iterate({ datasetId: store.datasets.byName('tqa40')!.id })].map((p) => p.id);
      ids.forEach((id, i) => expect(store.runs.score(r.runId, id)!.truncation).toEqual(expected[i] ?? null));
    } finally {
      store.close();
    }
    const cli = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'score', '--data', file, '--model', smallModel, '--ep', 'cpu', '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8' });
    expect(cli.status).toBe(0);
    const out = JSON.parse(cli.stdout) as { truncated: number; pairs: Array<{ index: number; truncation?: PairTruncation }> };
    expect(out.truncated).toBe(expectedCount());
    out.pairs.forEach((p) => expect(p.truncation).toEqual(expected[p.index]));
  }, 300_000);

  it('train refuses a max above max_position_embeddings, naming the field and the limit', () => {
    const cli = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'train', '--demo', '--max-tokens', '8193', '--ep', 'cpu', '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8' });
    expect(cli.status).toBe(2);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(/config\.json, field "--max-tokens": expected at most the checkpoint's max_position_embeddings \(8192\), got 8193/);
    return expect(trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, maxTokens: 8193, outDir: path.join(home, 'never'), cacheRoot, ep: 'cpu' })).rejects.toThrow(
      /field "maxTokens": expected at most the checkpoint's max_position_embeddings \(8192\)/,
    );
  }, 120_000);

  it('a manifest written before the setting existed reads as 1,024', async () => {
    const old = path.join(home, 'old-model');
    fs.cpSync(defaultModel, old, { recursive: true });
    const mf = path.join(old, 'manifest.json');
    const raw = JSON.parse(fs.readFileSync(mf, 'utf8'));
    delete raw.maxTokens;
    fs.writeFileSync(mf, JSON.stringify(raw, null, 2));
    expect((await readRewardModel(old)).manifest.maxTokens).toBe(1024);
  });

  it('a 50,000-character response: exactly max tokens through the backbone, bounded memory, explained on the cut sequence', async () => {
    const prompt = 'Summarise the following.';
    const response = 'The quick brown fox jumps over the lazy dog; then it naps. '.repeat(900).slice(0, 50_000);
    expect(response).toHaveLength(50_000);
    const sae = await loadSae(kit.sae);
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const feats = await extractFeatures([{ prompt, response }], { checkpoint: kit.checkpoint, layer: kit.layer, sae, pooling: 'mean', cacheRoot, ep: 'cpu' });
    const grown = process.memoryUsage().rss - rss0;
    expect(feats.maxTokens).toBe(1024);
    expect(feats.tokensComputed).toBe(1024);
    expect(feats.encodings[0]!.ids).toHaveLength(1024);
    const t = feats.truncation[0]!;
    // The prompt goes first (all of it: it is short), the rest comes off the end of the response.
    const full = (await loadTokenizer(kit.checkpoint)).encodeChat(prompt, response);
    expect(t.original).toBe(full.ids.length);
    expect(t.original).toBeGreaterThan(10_000);
    expect(t.prompt).toBe(full.promptEnd - full.promptStart);
    expect(t.response).toBe(t.original - 1024 - t.prompt);
    const e = feats.encodings[0]!;
    expect(e.ids.slice(0, e.responseEnd)).toEqual([...full.ids.slice(0, full.promptStart), ...full.ids.slice(full.promptEnd, full.responseEnd - t.response)]);
    expect(feats.table.latents[0].idx.length).toBeGreaterThanOrEqual(0);
    expect(Array.from(feats.table.z).some((x) => x !== 0)).toBe(true);
    // Untruncated, this sequence's attention scores alone would be heads × T² × 4 bytes (GBs); cut, it is small.
    console.log(`50k-char response: ${t.original} tokens → 1024; rss grew ${(grown / 2 ** 20).toFixed(0)} MiB`);
    expect(grown).toBeLessThan(768 * 2 ** 20);

    const ex = await explainResponse({ modelDir: defaultModel, prompt, response, cacheRoot, ep: 'cpu' });
    expect(ex.truncation).toEqual(t);
    expect(ex.responseSpan[1]).toBeLessThanOrEqual(1024);
    expect(ex.tokens).toHaveLength(ex.responseSpan[1] - ex.responseSpan[0]);
  }, 300_000);

  it('token-level latents of a long text: only the first max tokens go through the backbone, the cut is reported', async () => {
    const text = 'All work and no play makes Jack a dull boy. '.repeat(400);
    const full = (await loadTokenizer(kit.checkpoint)).encodeText(text);
    expect(full.length).toBeGreaterThan(1024);
    const warnings: string[] = [];
    const r = await extractLatents({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, text, top: 4, ep: 'cpu', onWarning: (w) => warnings.push(w) });
    expect(r.ids).toEqual(full.slice(0, 1024));
    expect(r.latents).toHaveLength(1024);
    expect(r.truncated).toBe(full.length - 1024);
    expect(warnings).toContain(`cut the last ${full.length - 1024} of ${full.length} tokens (max tokens 1024): latents are for the first 1024`);
    const short = await extractLatents({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, ids: full.slice(0, 10), maxTokens: 16, ep: 'cpu' });
    expect(short.truncated).toBeUndefined();
    await expect(extractLatents({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, ids: [2], maxTokens: 9000, maxTokensField: '--max-tokens', ep: 'cpu' })).rejects.toThrow(
      /field "--max-tokens": expected at most the checkpoint's max_position_embeddings \(8192\), got 9000/,
    );
  }, 300_000);
});
