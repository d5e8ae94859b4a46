import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { readPairsJsonl, type PairInput } from '../../../main/engine/sparserm/pairs-file';
import { evaluateRewardModel, explainPair, scorePairs, trainRewardModel, readRewardModel, scoreRepresentations, allContributions } from '../../../main/engine/sparserm/service';
import { headScores, decompose, type EpochStats } from '../../../main/engine/sparserm/head';
import type { Progress } from '../../../main/engine/sparserm/features';
import { sigmoid } from '../../../main/engine/sparserm/metrics';
import { dataDir, repoRoot, tempDir } from '../../helpers/paths';

// End to end on the demo kit (tiny random-weight Gemma-2 + matching SAE) with real TruthfulQA pairs.
const home = tempDir('sparserm-e2e-');
process.env.SPARSERM_HOME = home; // graphs + feature cache + default model folders stay in this test's folder

let kit: DemoKit;
let pairs: PairInput[];
const cacheRoot = path.join(home, 'features');

beforeAll(async () => {
  kit = await ensureDemoKit();
  pairs = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(0, 160);
}, 300_000);

describe('SparseRM on the demo kit', () => {
  let modelA: string;
  let modelB: string;

  it('trains, and a second train with another K and loss runs the backbone zero times', async () => {
    const before = backboneRunCounter();
    const progress: Progress[] = [];
    const a = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 16, outDir: path.join(home, 'mA'), cacheRoot, ep: 'cpu', onProgress: (p) => progress.push(p) });
    const afterA = backboneRunCounter();
    // Every epoch's losses arrive with the progress of the 'train' phase, live, and are exactly the saved curve.
    const curve = JSON.parse(fs.readFileSync(path.join(a.modelDir, 'curve.json'), 'utf8')) as EpochStats[];
    const epochs = progress.filter((p) => p.phase === 'train');
    expect(epochs.length).toBe(a.manifest.training.epochsRun);
    expect(epochs.map((p) => p.stats)).toEqual(curve);
    expect(epochs.map((p) => p.done)).toEqual(curve.map((c) => c.epoch));
    expect(curve.every((c) => Number.isFinite(c.trainLoss) && Number.isFinite(c.valLoss) && c.valAccuracy! >= 0 && c.valAccuracy! <= 1)).toBe(true);
    expect(afterA).toBeGreaterThan(before);
    expect(a.features.responsesComputed).toBe(new Set(pairs.flatMap((p) => [p.prompt + '\u0000' + p.chosen, p.prompt + '\u0000' + p.rejected])).size);
    modelA = a.modelDir;

    const b = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 8, loss: 'bt', seed: 3, outDir: path.join(home, 'mB'), cacheRoot, ep: 'cpu' });
    expect(backboneRunCounter()).toBe(afterA);
    expect(b.features.responsesComputed).toBe(0);
    expect(b.manifest.k).toBe(8);
    expect(b.manifest.selected).toHaveLength(16);
    expect(b.manifest.training.loss).toBe('bt');
    modelB = b.modelDir;

    // The manifest records what a curator needs to trust the model.
    const m = b.manifest;
    expect(m.backbone.contentHash).toMatch(/^[0-9a-f]{16,}/);
    expect(Object.keys(m.backbone.files ?? {})).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json']));
    expect(m.sae.hash).toHaveLength(64);
    expect(m.training.pairs.train + m.training.pairs.val + m.training.pairs.test).toBe(pairs.length);
    expect(m.head.trainableParams).toBe(16 * 512 + 512 + 512 + 1);
    expect(fs.existsSync(path.join(modelB, 'head.onnx'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(modelB, 'curve.json'), 'utf8')).length).toBe(m.training.epochsRun);
  });

  it('scores from the cache (no backbone run); head.onnx agrees with the TypeScript head', async () => {
    const before = backboneRunCounter();
    const scores = await scorePairs({ modelDir: modelB, pairs, cacheRoot, ep: 'cpu' });
    expect(backboneRunCounter()).toBe(before);
    expect(scores).toHaveLength(pairs.length);
    for (const s of scores.slice(0, 5)) {
      expect(s.margin).toBeCloseTo(s.chosen - s.rejected, 6);
      expect(s.pChosen).toBeCloseTo(sigmoid(s.margin), 9);
    }
    const model = await readRewardModel(modelB);
    const H = model.manifest.backbone.hiddenSize;
    const z = Float32Array.from({ length: 3 * H }, (_, i) => Math.sin(i) * 3);
    const viaOnnx = await scoreRepresentations(model, z, 3);
    const m = model.manifest.head.inDim;
    const p = new Float32Array(3 * m);
    for (let r = 0; r < 3; r++) for (let c = 0; c < m; c++) for (let i = 0; i < H; i++) p[r * m + c] += z[r * H + i] * model.directions[c * H + i];
    const viaTs = headScores(model.head, p, 3);
    for (let r = 0; r < 3; r++) expect(Math.abs(viaOnnx[r] - viaTs[r])).toBeLessThan(1e-4);
    // The batched ORT contributions (stored per pair by scoreDatasetIntoStore) equal the exact decomposition.
    const batch = await allContributions(model, z, 3);
    for (let r = 0; r < 3; r++) {
      const dec = decompose(model.head, p.subarray(r * m, (r + 1) * m));
      for (let c = 0; c < m; c++) expect(Math.abs(batch[r * m + c] - dec.contributions[c])).toBeLessThan(1e-4);
    }
  });

  it('scores with the folded head (narrow backbone, K = 128) exactly like head.onnx', async () => {
    const { createSession } = await import('../../../main/engine/runtime/ort');
    const before = backboneRunCounter();
    const big = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 128, maxEpochs: 3, outDir: path.join(home, 'mBig'), cacheRoot, ep: 'cpu' });
    expect(backboneRunCounter()).toBe(before);
    const model = await readRewardModel(big.modelDir);
    const H = model.manifest.backbone.hiddenSize;
    const { inDim: m, hidden: h } = model.head;
    expect(H * h).toBeLessThan(H * m + m * h); // this model takes the folded path
    const n = 50;
    const z = Float32Array.from({ length: n * H }, (_, i) => Math.cos(i * 0.37) * 2);
    const folded = await scoreRepresentations(model, z, n);
    const s = await createSession(path.join(model.dir, 'head.onnx'), { ep: 'cpu' });
    const viaOnnx = (await s.run({ z: { type: 'float32', data: z, dims: [n, H] } })).score.data as Float32Array;
    await s.close();
    for (let r = 0; r < n; r++) expect(Math.abs(folded[r] - viaOnnx[r])).toBeLessThan(1e-4);
  });

  it('explains a pair: contributions sum to score − bias, score matches scoring, tokens are response tokens', async () => {
    const model = await readRewardModel(modelA);
    const p = pairs[0];
    const ex = await explainPair({ modelDir: modelA, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, top: model.manifest.head.inDim, cacheRoot, ep: 'cpu' });
    const [s] = await scorePairs({ modelDir: modelA, pairs: [p], cacheRoot, ep: 'cpu' });
    for (const [side, e] of [['chosen', ex.chosen], ['rejected', ex.rejected]] as const) {
      const sum = e.contributions.reduce((a, c) => a + c.contribution, 0);
      expect(sum + e.bias).toBeCloseTo(e.score, 4);
      expect(e.score).toBeCloseTo(s[side], 4);
      expect(e.contributions).toHaveLength(model.manifest.head.inDim);
      for (let i = 1; i < e.contributions.length; i++) expect(Math.abs(e.contributions[i - 1].contribution)).toBeGreaterThanOrEqual(Math.abs(e.contributions[i].contribution));
      for (const c of e.contributions) for (const t of c.tokens) {
        expect(t.index).toBeGreaterThanOrEqual(e.responseSpan[0]);
        expect(t.index).toBeLessThan(e.responseSpan[1]);
        expect(t.activation).toBeGreaterThan(0);
      }
    }
    expect(ex.margin).toBeCloseTo(ex.chosen.score - ex.rejected.score, 9);
  });

  it('evaluates on the held-out split with the three baselines', async () => {
    const before = backboneRunCounter();
    const r = await evaluateRewardModel({ modelDir: modelA, pairs, cacheRoot, ep: 'cpu' });
    expect(backboneRunCounter()).toBe(before);
    const m = (await readRewardModel(modelA)).manifest;
    expect(r.evaluatedOn).toBe('test-split');
    expect(r.n).toBe(m.training.pairs.test);
    expect(r.accuracy).toBeCloseTo(m.metrics.test.accuracy!, 6);
    expect(r.perSource.truthfulqa.n).toBe(r.n);
    expect(r.baselines.map((b) => b.name)).toEqual(['dense-linear-probe', 'raw-sae-activations', 'random-directions']);
    expect(r.baselines[0].trainableParams).toBe(m.backbone.hiddenSize + 1);
    for (const b of r.baselines) {
      expect(b.test.n).toBe(r.baselineTestN);
      expect(b.test.auc).toBeGreaterThanOrEqual(0);
      expect(b.test.auc).toBeLessThanOrEqual(1);
    }
  });

  it('runs train → score → eval from the CLI; the second train reports zero backbone responses', () => {
    const data = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(data, pairs.slice(0, 60).map((p) => JSON.stringify(p)).join('\n') + '\n');
    const cli = (args: string[]) =>
      JSON.parse(execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args, '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    const t1 = cli(['train', '--demo', '--data', data, '--k', '4', '--out', path.join(home, 'cli1'), '--ep', 'cpu']);
    expect(t1.k).toBe(4);
    expect(t1.features.responsesComputed).toBeGreaterThan(0);
    const t2 = cli(['train', '--demo', '--data', data, '--k', '6', '--loss', 'bt', '--out', path.join(home, 'cli2'), '--ep', 'cpu']);
    expect(t2.features.responsesComputed).toBe(0);
    expect(t2.loss).toBe('bt');
    const sc = cli(['score', '--model', t2.modelDir, '--data', data]);
    expect(sc.pairs).toHaveLength(60);
    const ev = cli(['eval', '--model', t2.modelDir, '--data', data, '--no-baselines']);
    expect(ev.n).toBe(t2.pairs.test);
    expect(ev.baselines).toEqual([]);
  });
});

describe('sparserm latents --text on the demo kit', () => {
  it('tokenizes with the checkpoint tokenizer (BOS first) and matches the --ids result', async () => {
    const { loadTokenizer } = await import('../../../main/engine/backbone/tokenizer');
    const text = 'Veins appear blue because of how light penetrates skin.';
    const ids = (await loadTokenizer(kit.checkpoint)).encodeText(text);
    const run = (args: string[]) =>
      JSON.parse(execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'latents', '--demo', '--json', '--ep', 'cpu', ...args], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    const byText = run(['--text', text, '--top', '5']);
    const byIds = run(['--ids', ids.join(','), '--top', '5']);
    expect(byText.ids).toEqual(ids);
    expect(byText.ids[0]).toBe(2);
    expect(byText.latents).toEqual(byIds.latents);
    expect(byText.layer).toBe(kit.layer);
    expect(byText.latents.some((row: unknown[]) => row.length > 0)).toBe(true);
  });
});

describe('explanations show latent labels from the store', () => {
  it('score --explain prints the label of each latent (demo kit label ids recorded in the manifest)', async () => {
    const { openStore } = await import('../../../main/engine/store');
    const data = path.join(home, 'pairs-labels.jsonl');
    fs.writeFileSync(data, pairs.slice(0, 30).map((p) => JSON.stringify(p)).join('\n') + '\n');
    const run = (args: string[]) =>
      JSON.parse(execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args, '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    const t = run(['train', '--demo', '--data', data, '--k', '3', '--out', path.join(home, 'labelled'), '--ep', 'cpu']);
    const m = (await readRewardModel(t.modelDir)).manifest;
    expect(m.sae.labels).toEqual({ modelId: kit.modelId, saeId: kit.saeId });
    const store = openStore(); // SPARSERM_HOME → the same database the CLI opens
    store.labels.upsertMany(m.selected.map((s) => ({ modelId: kit.modelId, saeId: kit.saeId, latentIndex: s.index, description: `label of ${s.index}` })));
    store.close();
    const ex = run(['score', '--model', t.modelDir, '--data', data, '--explain', '0', '--top', '6', '--ep', 'cpu']);
    expect(ex.chosen.contributions).toHaveLength(6);
    for (const c of [...ex.chosen.contributions, ...ex.rejected.contributions]) expect(c.label).toBe(`label of ${c.latent}`);
  });
});
