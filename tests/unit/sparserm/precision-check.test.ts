/**
 * Precision check (issue 13 item 2) on the demo kit and real TruthfulQA pairs: f32 against f32 agrees exactly
 * (cosine 1, every selected latent the same, Spearman 1, no flips); f16 against f32 is close but really ran at
 * f16 (z differ, the cache holds both); Spearman is checked against an independent rank-counting implementation
 * with ties; the CLI prints the same report and refuses an unknown precision.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { readPairsJsonl, type PairInput } from '../../../main/engine/sparserm/pairs-file';
import { averageRanks, cosine, precisionCheck, relativeError, spearman, type PrecisionCheckReport } from '../../../main/engine/sparserm/precision-check';
import { trainRewardModel } from '../../../main/engine/sparserm/service';
import { runCli } from '../../helpers/cli';
import { dataDir, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-precision-');
process.env.SPARSERM_HOME = home;
const cacheRoot = path.join(home, 'features');

/** Independent Spearman: ranks by counting (smaller + half the ties), then Pearson's formula on them. */
function spearmanByCounting(a: number[], b: number[]): number {
  const rank = (x: number[]) => x.map((v) => x.filter((w) => w < v).length + (x.filter((w) => w === v).length + 1) / 2);
  const [ra, rb] = [rank(a), rank(b)];
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const [ma, mb] = [mean(ra), mean(rb)];
  const cov = ra.reduce((s, v, i) => s + (v - ma) * (rb[i] - mb), 0);
  const va = ra.reduce((s, v) => s + (v - ma) ** 2, 0);
  const vb = rb.reduce((s, v) => s + (v - mb) ** 2, 0);
  return cov / Math.sqrt(va * vb);
}

describe('rank statistics', () => {
  it('average ranks share tied positions', () => {
    expect([...averageRanks([10, 20, 20, 5, 20])]).toEqual([2, 4, 4, 1, 4]);
  });
  it('Spearman with ties: the worked example and the independent implementation on random data with many ties', () => {
    // ranks x: 1, 2.5, 2.5, 4; y: 1, 3, 2, 4 → ρ = 4.5 / √(4.5 · 5)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 12);
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + trial * 7;
      const a = Array.from({ length: n }, () => Math.floor(rnd() * 6)); // few distinct values: many ties
      const b = a.map((v) => (rnd() < 0.7 ? v : Math.floor(rnd() * 6)));
      expect(Math.abs(spearman(a, b) - spearmanByCounting(a, b))).toBeLessThan(1e-12);
    }
    expect(spearman([3, 1, 2], [30, 10, 20])).toBe(1);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBe(-1);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNaN(); // a constant side has no ranking
  });
  it('cosine and relative error', () => {
    const a = Float32Array.from([1, 2, 2]);
    expect(cosine(a, a)).toBeCloseTo(1, 12);
    expect(cosine(a, Float32Array.from([-1, -2, -2]))).toBeCloseTo(-1, 12);
    expect(relativeError(a, a)).toBe(0);
    expect(relativeError(a, Float32Array.from([1, 2, 2.3]))).toBeCloseTo(0.1, 6);
  });
});

describe('precisionCheck on the demo kit', () => {
  let kit: DemoKit;
  let pairs: PairInput[];
  let modelDir: string;
  let same: PrecisionCheckReport;
  let f16: PrecisionCheckReport;

  beforeAll(async () => {
    kit = await ensureDemoKit();
    pairs = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(0, 40);
    modelDir = (await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 16, maxEpochs: 6, outDir: path.join(home, 'model'), cacheRoot, ep: 'cpu' })).modelDir;
    same = await precisionCheck({ modelDir, pairs, precision: 'f32', cacheRoot, ep: 'cpu' });
    f16 = await precisionCheck({ modelDir, pairs, precision: 'f16', cacheRoot, ep: 'cpu' });
    console.log(`demo kit, ${f16.pairs} pairs, f16 vs f32: cosine mean ${f16.cosine.mean} min ${f16.cosine.min}, z rel error ${f16.zRelError.toExponential(2)}, Jaccard ${f16.latents.jaccardMean}, Spearman ${f16.margins.spearman}, flips ${f16.decisions.flips}`);
  }, 300_000);

  it('f32 against f32: cosine 1, same latents, Spearman 1, no flips', () => {
    expect(same.pairs).toBe(pairs.length);
    expect(same.responses).toBe(2 * pairs.length);
    expect(same.zRelError).toBe(0);
    expect(same.cosine.min).toBeCloseTo(1, 9);
    expect(same.latents.selected).toBe(JSON.parse(fs.readFileSync(path.join(modelDir, 'manifest.json'), 'utf8')).selected.length);
    expect(same.latents.selected).toBeGreaterThan(0);
    expect(same.latents.jaccardMean).toBe(1);
    expect(same.latents.agreement).toBe(1);
    expect(same.latents.responsesChanged).toBe(0);
    expect(same.margins.spearman).toBe(1);
    expect(same.margins.maxAbsDiff).toBe(0);
    expect(same.decisions.flips).toBe(0);
    expect(same.decisions.keepChecked).toBe(same.decisions.keepReference);
  });

  it('f16 against f32: really computed at f16 (z differ, its own cache namespace), and close', () => {
    expect(f16.zRelError).toBeGreaterThan(0);
    expect(f16.zRelError).toBeLessThan(0.05);
    expect(f16.cosine.mean).toBeGreaterThan(0.999);
    expect(f16.cosine.min).toBeGreaterThan(0.99);
    expect(f16.latents.agreement).toBeGreaterThan(0.95);
    expect(f16.margins.spearman).toBeGreaterThan(0.98);
    expect(f16.decisions.flips).toBeLessThanOrEqual(Math.ceil(0.1 * f16.pairs));
    expect(f16.decisions.flipped.length).toBe(Math.min(20, f16.decisions.flips));
    // f32 and f16 features live in two namespaces of the cache, so neither run read the other's z.
    expect(fs.readdirSync(cacheRoot).filter((d) => fs.existsSync(path.join(cacheRoot, d, 'z'))).length).toBe(2);
  });

  it('the threshold decides what counts as a flip: every pair kept at τ = −∞-like, none flip', async () => {
    const r = await precisionCheck({ modelDir, pairs, precision: 'f16', threshold: -1e9, cacheRoot, ep: 'cpu' });
    expect(r.decisions.keepReference).toBe(pairs.length);
    expect(r.decisions.flips).toBe(0);
    // cached: the same numbers as the first f16 run
    expect(r.cosine.mean).toBe(f16.cosine.mean);
  });

  it('CLI: precision-check --json prints the report; an unknown precision is refused naming the flag', async () => {
    const data = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(data, pairs.slice(0, 10).map((p) => JSON.stringify(p)).join('\n') + '\n');
    process.env.SPARSERM_CACHE = path.join(home, 'cache');
    const r = await runCli('precision-check', '--model', modelDir, '--data', data, '--precision', 'f16', '--ep', 'cpu', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.precision).toBe('f16');
    expect(j.pairs).toBe(10);
    expect(j.cosine.mean).toBeGreaterThan(0.999);
    expect(typeof j.margins.spearman).toBe('number');
    const text = await runCli('precision-check', '--model', modelDir, '--data', data, '--precision', 'f16', '--ep', 'cpu');
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^precision f16 vs f32 on 10 pairs/);
    expect(text.out).toMatch(/filter decisions \(keep when margin ≥ 0\): \d+ flip\(s\) of 10/);
    const bad = await runCli('precision-check', '--model', modelDir, '--data', data, '--precision', 'int3');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--precision');
    expect(bad.err).toContain('int3');
  });

  it('score warns once when asked for another precision than the model was trained at, and not at its own', async () => {
    const data = path.join(home, 'pairs-warn.jsonl');
    fs.writeFileSync(data, pairs.slice(0, 4).map((p) => JSON.stringify(p)).join('\n') + '\n');
    process.env.SPARSERM_CACHE = path.join(home, 'cache');
    const warning = /warning: reward model \S+ was trained on f32 backbone features; scoring at f16/g;
    const other = await runCli('score', '--model', modelDir, '--data', data, '--precision', 'f16', '--ep', 'cpu', '--json');
    expect(other.code).toBe(0);
    expect(other.err.match(warning)).toHaveLength(1);
    const own = await runCli('score', '--model', modelDir, '--data', data, '--ep', 'cpu', '--json');
    expect(own.code).toBe(0);
    expect(own.err).not.toMatch(/was trained on/);
    // Same pairs, other numbers: the f16 scores really came from f16 features.
    const scores = (r: { out: string }) => (JSON.parse(r.out) as { pairs: Array<{ margin: number }> }).pairs.map((x) => x.margin);
    expect(scores(other)).toHaveLength(4);
    expect(scores(other)).not.toEqual(scores(own));
  });
});
