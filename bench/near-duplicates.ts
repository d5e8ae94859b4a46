/**
 * Near-duplicate grouping (issue 14 item 5): time per prompt must stay flat as the data grows (linear), including a
 * hostile case where every prompt is the same text (one huge LSH bucket). Prompts are real HH-RLHF prompts from the
 * test fixture, made into N distinct prompts by appending a number word-set (so most are NOT near-duplicates) plus
 * 10 % re-typed copies. Run: npx tsx bench/near-duplicates.ts [maxN=20000]
 */
import fs from 'node:fs';
import path from 'node:path';

import { groupNearDuplicates } from '../main/engine/sparserm/near-duplicates';
import { dataDir } from '../tests/helpers/paths';

const base = fs
  .readFileSync(path.join(dataDir, 'hh-rlhf-harmless-base-test', 'pairs.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
const maxN = Number(process.argv[2] ?? 20000);
const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
const tag = (i: number) => String(i).split('').map((d) => words[Number(d)]).join(' ');

function prompts(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const p = `${tag(i)}: ${base[i % base.length]}`;
    out.push(p);
    if (i % 10 === 0 && out.length < n) out.push(p.replace(/ /g, '  ') + '?');
  }
  return out;
}

const rows: string[] = [];
for (const n of [2500, 5000, 10000, maxN].filter((x, i, a) => x <= maxN && a.indexOf(x) === i)) {
  const ps = prompts(n);
  const chars = ps.reduce((s, p) => s + p.length, 0);
  const t = performance.now();
  const g = groupNearDuplicates(ps);
  const s = (performance.now() - t) / 1000;
  rows.push(`| ${n} | ${(chars / n).toFixed(0)} | ${s.toFixed(2)} s | ${((1e6 * s) / n).toFixed(0)} µs | ${g.groups} | ${g.nearGroups} |`);
}
const same = Array.from({ length: 10000 }, () => base[0]);
const t = performance.now();
groupNearDuplicates(same);
const sameS = (performance.now() - t) / 1000;
const mixed = Array.from({ length: 10000 }, (_, i) => `${base[0]} ${tag(i)}`);
const t2 = performance.now();
const gm = groupNearDuplicates(mixed);
const mixedS = (performance.now() - t2) / 1000;
console.log('| prompts | mean chars | time | per prompt | groups | near groups |\n|---|---|---|---|---|---|\n' + rows.join('\n'));
console.log(`10,000 copies of one prompt: ${sameS.toFixed(2)} s; 10,000 near-identical prompts (one long prompt + a number in words; one huge LSH bucket): ${mixedS.toFixed(2)} s, ${gm.groups} group(s)`);
console.log(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB, load ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
