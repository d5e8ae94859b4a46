#!/usr/bin/env node
// `npm run bench`: runs every bench/*.ts, one fresh process each (so one bench's heap, ORT sessions and page cache
// don't colour the next), in a fixed order, and prints a summary. Names given on the command line pick a subset:
//   npm run bench                      # all of them
//   npm run bench -- sparserm-train    # one (or several, by name without .ts)
// Each bench prints its own numbers; bench/README.md holds the latest ones with machine, load and date.
// generate.ts also runs its PyTorch peer (bench/generate_torch.py) when a python3 with torch is found (PYTHON=…).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const all = fs
  .readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
const picked = process.argv.slice(2);
const unknown = picked.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`error: no bench named ${unknown.join(', ')}; expected one of: ${all.join(', ')}`);
  process.exit(2);
}
const names = picked.length ? picked : all;

console.error(`# ${names.length} bench(es) on ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${new Date().toISOString()}`);
const results = [];
for (const name of names) {
  console.error(`\n## ${name}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(benchDir, `${name}.ts`)], { stdio: 'inherit' });
  results.push({ name, status: r.status ?? `signal ${r.signal}`, seconds: (performance.now() - t0) / 1000 });
}
console.error('\n# summary');
for (const r of results) console.error(`${r.status === 0 ? 'ok    ' : 'FAILED'} ${r.name} (${r.seconds.toFixed(1)} s${r.status === 0 ? '' : `, exit ${r.status}`})`);
process.exit(results.every((r) => r.status === 0) ? 0 : 1);
