/**
 * `sparserm compare`, `sparserm dedupe` and `export --one-per-group` on a database file: the JSON the commands print
 * is checked against the stored rows, counted here pair by pair.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { mulberry32 } from '../../../main/engine/sparserm/rng';
import { openStore } from '../../../main/engine/store';
import { runCli } from '../../helpers/cli';
import { dataDir, tempDir } from '../../helpers/paths';

const dir = tempDir('sparserm-compare-');
const db = path.join(dir, 'studio.db');
const hh = fs
  .readFileSync(path.join(dataDir, 'hh-rlhf-harmless-base-test', 'pairs.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .slice(0, 40)
  .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
const marginsA: number[] = [];
const marginsB: number[] = [];

beforeAll(() => {
  const store = openStore(db);
  const d = store.datasets.create('cmp');
  const rand = mulberry32(1);
  store.transaction(() => {
    hh.forEach((p, i) => {
      // Each prompt twice: as is, and re-typed (whitespace + punctuation), as HH-RLHF repeats prompts.
      for (const [j, v] of [p, p.replace(/ /g, '  ').replace(/\?/g, ' ?!')].entries()) {
        store.pairs.insert(d.id, null, { line: 2 * i + j + 1, source: null, externalId: null, prompt: v, chosen: `c${i}-${j}`, rejected: `r${i}-${j}`, contentHash: `${i}-${j}` });
      }
    });
  });
  const ids = store.pairs.ids({ datasetId: d.id });
  for (const [rm, out, lat] of [['rm-a', marginsA, 3], ['rm-b', marginsB, 4]] as const) {
    store.models.upsertRewardModel({ id: rm, name: rm, folder: path.join(dir, rm), manifestHash: rm, saeId: 'sae-x' });
    const run = store.runs.create({ datasetId: d.id, rewardModelId: rm });
    const m = ids.map(() => rand() * 2 - 1);
    out.push(...m);
    store.runs.addScores(run.id, ids.map((pairId, k) => ({ pairId, scoreChosen: m[k], scoreRejected: 0, latents: [{ latent: lat, side: 'diff' as const, contribution: m[k] }] })));
    store.runs.finish(run.id);
  }
  store.close();
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('sparserm compare', () => {
  it('prints agreement, correlations, disagreements and differing latents as JSON', async () => {
    const r = await runCli('compare', '--dataset', 'cmp', '--a', 'rm-a', '--b', 'rm-b', '--db', db, '--json', '--limit', '1000');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { n: number; agree: number; agreement: number; ci95: [number, number]; disagreements: { total: number; items: { marginA: number; marginB: number }[] }; latents: { latent: number; meanAbsDiff: number }[]; sameSae: boolean };
    const agree = marginsA.filter((a, k) => a >= 0 === marginsB[k] >= 0).length;
    expect(j.n).toBe(80);
    expect(j.agree).toBe(agree);
    expect(j.agreement).toBeCloseTo(agree / 80, 12);
    expect(j.disagreements.total).toBe(80 - agree);
    expect(j.disagreements.items.every((d) => d.marginA >= 0 !== d.marginB >= 0)).toBe(true);
    expect(j.sameSae).toBe(true);
    // Latent 3 only in A, 4 only in B: each differs by its model's mean |margin|.
    const meanAbs = (m: number[]) => m.reduce((s, v) => s + Math.abs(v), 0) / m.length;
    expect(j.latents.find((l) => l.latent === 3)!.meanAbsDiff).toBeCloseTo(meanAbs(marginsA), 9);
    expect(j.latents.find((l) => l.latent === 4)!.meanAbsDiff).toBeCloseTo(meanAbs(marginsB), 9);
    const text = await runCli('compare', '--dataset', 'cmp', '--a', 'rm-a', '--b', 'rm-b', '--db', db);
    expect(text.out).toMatch(new RegExp(`agreement \\(same verdict, margin ≥ 0 = keep\\): ${agree}/80`));
  });

  it('names an unknown model', async () => {
    const r = await runCli('compare', '--dataset', 'cmp', '--a', 'rm-a', '--b', 'nope', '--db', db);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nope/);
  });
});

describe('sparserm dedupe and export --one-per-group', () => {
  it('groups each prompt with its re-typed copy and exports one pair per group', async () => {
    const bad = await runCli('dedupe', '--dataset', 'cmp', '--threshold', '1.5', '--db', db);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--threshold/);
    const r = await runCli('dedupe', '--dataset', 'cmp', '--db', db, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { pairs: number; prompts: number; groups: number; crossedUnderExactSplit: { groups: number; crossed: number } };
    expect(j.pairs).toBe(80);
    expect(j.prompts).toBe(80);
    expect(j.groups).toBeLessThanOrEqual(40);
    // Re-typed copies normalise to the same text: not "near" groups, but the exact-text split treated them as 2 prompts.
    const store = openStore(db);
    const ids = store.pairs.ids({ datasetId: store.datasets.resolve('cmp').id });
    for (let i = 0; i < 40; i++) expect(store.promptGroups.groupOf(ids[2 * i + 1])).toBe(store.promptGroups.groupOf(ids[2 * i]));
    store.close();
    const out = path.join(dir, 'one.jsonl');
    const e = await runCli('export', '--dataset', 'cmp', '--out', out, '--include-undecided', '--one-per-group', '--db', db, '--json');
    expect(e.code).toBe(0);
    const res = JSON.parse(e.out) as { counts: { exported: number; groupDuplicates: number } };
    expect(res.counts.exported).toBe(j.groups);
    expect(res.counts.groupDuplicates).toBe(80 - j.groups);
    expect(fs.readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(j.groups);
  });
});
