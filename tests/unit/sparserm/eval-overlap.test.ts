/**
 * Honest evaluation: a model trained on one file and evaluated on another that shares prompts reports the overlap,
 * leaves the seen pairs out (unless --include-seen), and trains/tests the baselines on exactly the same rows.
 * The expected overlap is computed here from the split itself (splitByPrompt with the manifest's seed), not
 * from the prompt hashes the code under test uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { readPairsJsonl, type PairInput } from '../../../main/engine/sparserm/pairs-file';
import { evaluateRewardModel, readRewardModel, scoreDatasetIntoStore } from '../../../main/engine/sparserm/service';
import { importFile } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { chartData } from '../../../main/api/charts';
import { splitByPrompt } from '../../../main/engine/sparserm/splits';
import { wilsonInterval } from '../../../main/engine/sparserm/metrics';
import { dataDir, repoRoot, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-eval-overlap-');
process.env.SPARSERM_HOME = home;

let kit: DemoKit;
let trainPairs: PairInput[];
let evalPairs: PairInput[];
let modelDir: string;
/** Prompts (as trained) in the model's train / val splits, from the recorded seed and fractions. */
let seenTrain: Set<string>;
let seenVal: Set<string>;

const cli = (args: string[]) => {
  const warnings: string[] = [];
  const out = execFileSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args, '--ep', 'cpu', '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { json: JSON.parse(out), warnings };
};

beforeAll(async () => {
  kit = await ensureDemoKit();
  const all = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')); // one pair per prompt
  trainPairs = all.slice(0, 80);
  // Shares prompts 40..79 with the training file (some re-cased / re-spaced: still the same prompt), adds 40 new.
  evalPairs = all.slice(40, 120).map((p, i) => (i % 5 === 0 ? { ...p, prompt: `  ${p.prompt.toUpperCase().replace(/ /g, '  ')}\n` } : p));
  fs.writeFileSync(path.join(home, 'train.jsonl'), trainPairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
  fs.writeFileSync(path.join(home, 'eval.jsonl'), evalPairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
}, 300_000);

describe('eval on data that shares prompts with training', () => {
  it('train --out names the folder and the manifest records the seen prompts and the split', async () => {
    const out = path.join(home, 'my-model');
    const t = cli(['train', '--demo', '--data', path.join(home, 'train.jsonl'), '--k', '4', '--max-epochs', '3', '--out', out]).json;
    expect(path.resolve(t.modelDir)).toBe(path.resolve(out));
    modelDir = out;
    const m = (await readRewardModel(out)).manifest;
    const splits = splitByPrompt(trainPairs.map((p) => p.prompt), { seed: m.training.seed, valFraction: m.training.valFraction, testFraction: m.training.testFraction });
    seenTrain = new Set(trainPairs.filter((_, i) => splits[i] === 'train').map((p) => p.prompt));
    seenVal = new Set(trainPairs.filter((_, i) => splits[i] === 'val').map((p) => p.prompt));
    expect(m.training.prompts!.train).toHaveLength(seenTrain.size);
    expect(m.training.prompts!.val).toHaveLength(seenVal.size);
    expect(m.training.pairs).toEqual({ train: seenTrain.size, val: seenVal.size, test: 80 - seenTrain.size - seenVal.size });
  }, 300_000);

  it('reports the overlap and evaluates only the unseen pairs; baselines use exactly the same rows', () => {
    const orig = (i: number) => trainPairs[40 + i]?.prompt; // eval pair i's prompt as trained (i < 40)
    const seen = evalPairs.map((_, i) => i < 40 && (seenTrain.has(orig(i)) || seenVal.has(orig(i))));
    const inTrain = evalPairs.filter((_, i) => i < 40 && seenTrain.has(orig(i))).length;
    const nSeen = seen.filter(Boolean).length;
    expect(nSeen).toBeGreaterThan(20);

    const r = cli(['eval', '--model', modelDir, '--data', path.join(home, 'eval.jsonl')]).json;
    expect(r.evaluatedOn).toBe('unseen-prompts');
    expect(r.overlap).toEqual({ prompts: nSeen, pairs: nSeen });
    expect(r.pairs).toBe(80 - nSeen);
    expect(r.n).toBe(r.pairs);
    expect(r.correct + r.ties).toBeLessThanOrEqual(r.n);
    expect(r.accuracy).toBeCloseTo(r.correct / r.n, 12);
    expect(r.ci95).toEqual(wilsonInterval(r.correct, r.n));
    expect(Object.values(r.perSource as Record<string, { n: number }>).reduce((s, v) => s + v.n, 0)).toBe(r.pairs);
    expect(r.baselineTrainN).toBe(inTrain);
    expect(r.baselineTestN).toBe(r.pairs);
    expect(r.baselines).toHaveLength(3);
    for (const b of r.baselines) {
      expect(b.trainN).toBe(inTrain);
      expect(b.test.n).toBe(r.pairs);
      expect(b.vsSparseRm.n).toBe(r.pairs);
      expect(b.test.ci95).toEqual(wilsonInterval(b.test.correct, b.test.n));
    }

    const all = cli(['eval', '--model', modelDir, '--data', path.join(home, 'eval.jsonl'), '--include-seen']).json;
    expect(all.evaluatedOn).toBe('all');
    expect(all.overlap).toEqual({ prompts: nSeen, pairs: nSeen });
    expect(all.pairs).toBe(80);
    for (const b of all.baselines) expect(b.test.n).toBe(80);
    // Per-source accuracy stays on held-out pairs even when the seen ones are included overall.
    expect(Object.values(all.perSource as Record<string, { n: number }>).reduce((s, v) => s + v.n, 0)).toBe(80 - nSeen);
  }, 300_000);

  it('Charts: per-source accuracy on the scored pairs the model never saw, each with n, ties and interval', async () => {
    const nSeen = evalPairs.filter((_, i) => i < 40 && (seenTrain.has(trainPairs[40 + i].prompt) || seenVal.has(trainPairs[40 + i].prompt))).length;
    const store = openStore(path.join(home, 'charts.db'));
    try {
      await importFile(store, path.join(home, 'eval.jsonl'), { dataset: 'eval', format: 'standard' });
      const ds = store.datasets.byName('eval')!;
      const r = await scoreDatasetIntoStore({ store, dataset: 'eval', modelDir, ep: 'cpu' });
      expect(r).toMatchObject({ pairs: 80, n: 80 });
      expect(r.ci95).toEqual(wilsonInterval(r.correct, 80));
      store.runs.applyFilter({ datasetId: ds.id, runId: r.runId, rule: 'margin', threshold: 0 });
      const c = chartData(store, ds.id, 10, () => null);
      expect(c.perSourceBasis).toEqual({ heldOut: true, leftOut: nSeen });
      expect(c.perSource.reduce((s, x) => s + x.n, 0)).toBe(80 - nSeen);
      for (const x of c.perSource) expect(x.ci95).toEqual(wilsonInterval(Math.round(x.accuracy! * x.n), x.n));
    } finally {
      store.close();
    }
  }, 300_000);

  it('data without the model\'s training pairs: baselines skipped, or trained on exactly them with --train-data', () => {
    const fresh = path.join(home, 'fresh.jsonl');
    fs.writeFileSync(fresh, evalPairs.slice(40).map((p) => JSON.stringify(p)).join('\n') + '\n');
    const r = cli(['eval', '--model', modelDir, '--data', fresh]).json;
    expect([r.overlap, r.pairs, r.baselines]).toEqual([{ prompts: 0, pairs: 0 }, 40, []]);
    expect(r.baselinesSkipped).toMatch(/none of the pairs has a prompt the model was trained on/);
    const t = cli(['eval', '--model', modelDir, '--data', fresh, '--train-data', path.join(home, 'train.jsonl')]).json;
    expect(t.pairs).toBe(40);
    expect([t.baselineTrainN, t.baselineTestN]).toEqual([seenTrain.size, 40]);
    for (const b of t.baselines) expect([b.trainN, b.test.n]).toEqual([seenTrain.size, 40]);
  }, 300_000);

  it('on the training data itself: its held-out test split, as training measured it', async () => {
    const m = (await readRewardModel(modelDir)).manifest;
    const r = await evaluateRewardModel({ modelDir, pairs: trainPairs, ep: 'cpu' });
    expect(r.evaluatedOn).toBe('test-split');
    expect(r.overlap).toEqual({ prompts: seenTrain.size + seenVal.size, pairs: seenTrain.size + seenVal.size });
    expect(r.n).toBe(m.metrics.test.n);
    expect(r.accuracy).toBeCloseTo(m.metrics.test.accuracy!, 6);
    for (const b of r.baselines) expect([b.trainN, b.test.n]).toEqual([seenTrain.size, m.metrics.test.n]);
  }, 300_000);

  it('an older folder without prompt hashes: overlap unknown, warned, all pairs evaluated, no baselines', async () => {
    const old = path.join(home, 'old-model');
    fs.cpSync(modelDir, old, { recursive: true });
    const mf = path.join(old, 'manifest.json');
    const raw = JSON.parse(fs.readFileSync(mf, 'utf8'));
    delete raw.training.prompts;
    fs.writeFileSync(mf, JSON.stringify(raw, null, 2));

    const warnings: string[] = [];
    const r = await evaluateRewardModel({ modelDir: old, pairs: evalPairs, ep: 'cpu', onWarning: (w) => warnings.push(w) });
    expect(r.overlap).toEqual({ prompts: null, pairs: null });
    expect(r.evaluatedOn).toBe('all');
    expect(r.pairs).toBe(80);
    expect(r.baselines).toEqual([]);
    expect(r.baselinesSkipped).toMatch(/does not record/);
    expect(warnings.some((w) => /overlap .* unknown/.test(w))).toBe(true);

    // On its own training data the recorded seed and fractions still reproduce the split: overlap known.
    const same = await evaluateRewardModel({ modelDir: old, pairs: trainPairs, ep: 'cpu', baselines: false });
    expect(same.evaluatedOn).toBe('test-split');
    expect(same.overlap.pairs).toBe(seenTrain.size + seenVal.size);
    expect(same.n).toBe(80 - seenTrain.size - seenVal.size);
  }, 300_000);
});
