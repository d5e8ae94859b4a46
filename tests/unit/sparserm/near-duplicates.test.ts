/**
 * Near-duplicate prompt groups on real HH-RLHF prompts (tests/fixtures/data/hh-rlhf-harmless-base-test): the MinHash
 * estimate against the exact shingle Jaccard (independent reference: plain set intersection over the shingle
 * strings), and the prompt split never putting a prompt and its near-duplicates on two sides.
 */
import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { estimatedJaccard, exactJaccard, groupNearDuplicates } from '../../../main/engine/sparserm/near-duplicates';
import { mulberry32, shuffle } from '../../../main/engine/sparserm/rng';
import { crossedUnderExactSplit, splitByPrompt } from '../../../main/engine/sparserm/splits';
import { dataDir } from '../../helpers/paths';

const prompts: string[] = fs
  .readFileSync(path.join(dataDir, 'hh-rlhf-harmless-base-test', 'pairs.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { prompt: string }).prompt);

/** HH-style variations of a prompt: whitespace, punctuation, one changed word (long prompts only). */
function variants(p: string, rand: () => number): string[] {
  const out = [p.replace(/ /g, '  ').replace(/\n\n/g, '\n'), p.replace(/\?/g, '').replace(/\./g, '!') + ' ?'];
  const words = p.split(' ');
  if (p.length >= 400 && words.length > 20) {
    const w = [...words];
    w[5 + Math.floor(rand() * (w.length - 10))] = 'banana';
    out.push(w.join(' '));
  }
  return out;
}

describe('MinHash estimate vs exact Jaccard (real HH prompts)', () => {
  it('is within 0.2 of the exact value on every pair, 0.05 on average and unbiased (64 hashes: sd ≤ 0.0625, mean |error| ≤ 0.8 sd)', () => {
    const rand = mulberry32(7);
    const pairs: [string, string][] = [];
    // Real near pairs: prompts that share their first 40 characters (same first turn, other continuation).
    const byHead = new Map<string, string[]>();
    for (const p of prompts) (byHead.get(p.slice(0, 40)) ?? byHead.set(p.slice(0, 40), []).get(p.slice(0, 40))!).push(p);
    for (const g of byHead.values()) if (g.length > 1 && g[0] !== g[1]) pairs.push([g[0], g[1]]);
    // Edited copies (a cut tail: Jaccard spread over (0, 1)) and unrelated prompts.
    for (let i = 0; i < 150; i++) {
      const p = prompts[Math.floor(rand() * prompts.length)];
      pairs.push([p, p.slice(0, Math.max(10, Math.floor(p.length * (0.3 + 0.7 * rand()))))]);
      pairs.push([p, prompts[Math.floor(rand() * prompts.length)]]);
    }
    let sumErr = 0;
    let sumSigned = 0;
    let maxErr = 0;
    const exacts: number[] = [];
    for (const [a, b] of pairs) {
      const ex = exactJaccard(a, b);
      const signed = estimatedJaccard(a, b) - ex;
      const err = Math.abs(signed);
      sumSigned += signed;
      exacts.push(ex);
      sumErr += err;
      maxErr = Math.max(maxErr, err);
    }
    expect(pairs.length).toBeGreaterThan(300);
    // The pairs span the range (a test only on J ≈ 0 or J = 1 would prove little).
    expect(exacts.filter((j) => j > 0.3 && j < 0.9).length).toBeGreaterThan(50);
    expect(maxErr).toBeLessThan(0.2);
    expect(sumErr / pairs.length).toBeLessThan(0.05);
    expect(Math.abs(sumSigned / pairs.length)).toBeLessThan(0.02);
  });
});

describe('near-duplicate groups', () => {
  it('groups whitespace / punctuation / one-word variants with their prompt, and not unrelated prompts', () => {
    const rand = mulberry32(3);
    const base = prompts.slice(0, 300);
    const all = [...base];
    const origin = base.map((_, i) => i);
    base.forEach((p, i) => {
      for (const v of variants(p, rand)) {
        all.push(v);
        origin.push(i);
      }
    });
    const g = groupNearDuplicates(all);
    all.forEach((_, j) => expect(g.groupOf[j]).toBe(g.groupOf[origin[j]]));
    // Prompts grouped together that are not variants of each other must really be near-duplicates.
    all.forEach((a, j) => {
      const b = all[g.groupOf[j]];
      if (origin[j] !== origin[g.groupOf[j]]) expect(exactJaccard(a, b)).toBeGreaterThan(0.5);
    });
    expect(g.groups).toBeGreaterThan(250);
  });

  it('does not depend on the order of the prompts', () => {
    const sample = prompts.slice(0, 400);
    const a = groupNearDuplicates(sample);
    const perm = shuffle(sample.map((_, i) => i), mulberry32(11));
    const b = groupNearDuplicates(perm.map((i) => sample[i]));
    // Same partition: two prompts share a group in one order iff they do in the other.
    const partition = (groupOf: number[], idx: number[]) => {
      const m = new Map<number, number[]>();
      groupOf.forEach((gid, j) => (m.get(gid) ?? m.set(gid, []).get(gid)!).push(idx[j]));
      return [...m.values()].map((v) => v.sort((x, y) => x - y).join(',')).sort();
    };
    expect(partition(b.groupOf, perm)).toEqual(partition(a.groupOf, sample.map((_, i) => i)));
  });
});

describe('prompt split keeps near-duplicate groups on one side', () => {
  const rand = mulberry32(5);
  const base = prompts.slice(0, 400);
  const all: string[] = [];
  const origin: number[] = [];
  base.forEach((p, i) => {
    for (const v of [p, ...variants(p, rand)]) {
      all.push(v);
      origin.push(i);
    }
  });
  const order = shuffle(all.map((_, i) => i), mulberry32(9));
  const data = order.map((i) => all[i]);
  const from = order.map((i) => origin[i]);

  it('never straddles a split, over 12 seeds', () => {
    for (let seed = 0; seed < 12; seed++) {
      const s = splitByPrompt(data, { seed, valFraction: 0.1, testFraction: 0.2 });
      const side = new Map<number, string>();
      data.forEach((_, j) => {
        const prev = side.get(from[j]);
        if (prev !== undefined) expect(s[j]).toBe(prev);
        side.set(from[j], s[j]);
      });
      expect(s.filter((x) => x === 'test').length).toBeGreaterThan(0.15 * data.length);
    }
  });

  it('the exact-text split did cross these groups (the leakage it reports)', () => {
    const r = crossedUnderExactSplit(data, { seed: 1, valFraction: 0.1, testFraction: 0.2 });
    expect(r.groups).toBeGreaterThanOrEqual(400);
    // With 1-4 distinct texts per group placed independently, ~half the groups cross.
    expect(r.crossed).toBeGreaterThan(100);
    // The same split under the near-duplicate grouping crosses none.
    const near = splitByPrompt(data, { seed: 1, valFraction: 0.1, testFraction: 0.2 });
    const sides = new Map<number, Set<string>>();
    data.forEach((_, j) => (sides.get(from[j]) ?? sides.set(from[j], new Set()).get(from[j])!).add(near[j]));
    expect([...sides.values()].filter((v) => v.size > 1)).toHaveLength(0);
  });
});

describe('stored groups: dedupe, the review group filter, export one pair per group', () => {
  it('stores the groups, filters a group, and exports one pair per group', async () => {
    const { openStore } = await import('../../../main/engine/store');
    const { dedupeDataset } = await import('../../../main/engine/sparserm/dedupe');
    const { exportDataset } = await import('../../../main/engine/data/export');
    const { tempDir } = await import('../../helpers/paths');
    const store = openStore(':memory:');
    const d = store.datasets.create('hh-variants');
    const rand = mulberry32(2);
    const origin: number[] = [];
    store.transaction(() => {
      prompts.slice(0, 60).forEach((p, i) => {
        for (const [j, v] of [p, ...variants(p, rand)].entries()) {
          store.pairs.insert(d.id, null, { line: origin.length + 1, source: null, externalId: null, prompt: v, chosen: `c${i}-${j}`, rejected: `r${i}-${j}`, contentHash: `h${i}-${j}` });
          origin.push(i);
        }
      });
    });
    const r = dedupeDataset(store, d.id);
    expect(r.pairs).toBe(origin.length);
    expect(r.groups).toBeLessThanOrEqual(60);
    expect(r.groups).toBeGreaterThan(50);
    // Whitespace / punctuation variants normalise to the same text; the changed-word ones make near groups.
    expect(r.nearGroups).toBeGreaterThan(0);
    expect(store.promptGroups.set(d.id)).toMatchObject({ pairs: origin.length, groups: r.groups });
    expect(store.promptGroups.ungrouped(d.id)).toBe(0);
    // The group filter returns exactly the pairs of one origin prompt (and any real near-duplicate of it).
    const ids = store.pairs.ids({ datasetId: d.id });
    const g = store.promptGroups.groupOf(ids[0])!;
    expect(g).toBe(ids[0]);
    const members = store.pairs.ids({ datasetId: d.id, promptGroup: g });
    expect(members).toEqual(ids.filter((_, k) => origin[k] === origin[0]));
    expect(store.promptGroups.members(g).count).toBe(members.length);

    const dir = tempDir();
    const out = `${dir}/one.jsonl`;
    const res = await exportDataset(store, { dataset: d.id, out, includeUndecided: true, onePerGroup: true, dropped: `${dir}/left.jsonl` });
    const lines = (await import('node:fs')).readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; chosen: string });
    expect(lines).toHaveLength(r.groups);
    expect(res.counts.groupDuplicates).toBe(origin.length - r.groups);
    // One per group: the exported pairs come from distinct groups, and each is its group's first pair.
    const exportedOrigins = lines.map((l) => Number(/^c(\d+)-/.exec(l.chosen)![1]));
    expect(new Set(exportedOrigins).size).toBe(lines.length);
    expect(lines.every((l) => /-0$/.test(l.chosen))).toBe(true);
    // Without the flag every pair is exported.
    const all = await exportDataset(store, { dataset: d.id, out: `${dir}/all.jsonl`, includeUndecided: true });
    expect(all.counts.exported).toBe(origin.length);
    expect(all.counts.groupDuplicates).toBeUndefined();
    store.close();
  });
});
