/**
 * Curation store bench: import and export of N pairs (default 100,000) through the same code paths as the CLI.
 * Targets (issue 4): import < 10 s, export < 5 s. Run: npx tsx bench/store-import-export.ts [N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { exportDataset, importFile } from '../main/engine/data';
import { openStore } from '../main/engine/store';

const N = Number(process.argv[2] ?? 100_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-'));
try {
  const file = path.join(dir, 'pairs.jsonl');
  const fd = fs.openSync(file, 'w');
  let buf: string[] = [];
  for (let i = 0; i < N; i++) {
    // ~TruthfulQA-sized rows (≈ 250 bytes)
    buf.push(JSON.stringify({ id: `b-${i}`, prompt: `Question ${i}: what happens if you eat ${i} watermelon seeds?`, chosen: `Nothing much happens; the ${i} seeds pass through your digestive system.`, rejected: `You grow ${i} watermelons in your stomach.`, source: i % 3 ? 'gen-a' : 'gen-b' }));
    if (buf.length === 10_000) {
      fs.writeSync(fd, buf.join('\n') + '\n');
      buf = [];
    }
  }
  if (buf.length) fs.writeSync(fd, buf.join('\n') + '\n');
  fs.closeSync(fd);
  const mb = fs.statSync(file).size / 1e6;

  const store = openStore(path.join(dir, 'bench.db'));
  let t = performance.now();
  let cpu0 = process.cpuUsage();
  const stamps: number[] = [];
  const r = await importFile(store, file, { dataset: 'bench', onProgress: () => stamps.push(performance.now()) });
  // The last progress call comes after COMMIT, the one before it at the end of parsing: the gap is the copy
  // transaction, during which the process is busy and the store write-locked.
  const copyS = (stamps.at(-1)! - stamps.at(-2)!) / 1000;
  const importS = (performance.now() - t) / 1000;
  let c = process.cpuUsage(cpu0);
  const importCpuS = (c.user + c.system) / 1e6;
  if (r.imported !== N) throw new Error(`imported ${r.imported}, expected ${N}`);

  store.decisions.decide({ datasetId: r.datasetId }, 'keep');
  t = performance.now();
  cpu0 = process.cpuUsage();
  const e = await exportDataset(store, { dataset: 'bench', out: path.join(dir, 'out.jsonl') });
  const exportS = (performance.now() - t) / 1000;
  c = process.cpuUsage(cpu0);
  const exportCpuS = (c.user + c.system) / 1e6;
  if (e.counts.exported !== N) throw new Error(`exported ${e.counts.exported}`);

  t = performance.now();
  const page = store.pairs.list({ datasetId: r.datasetId, sort: 'id', offset: Math.floor(N / 2), limit: 50 });
  const listMs = performance.now() - t;
  t = performance.now();
  const search = store.pairs.list({ datasetId: r.datasetId, text: 'watermelons stomach', limit: 50 });
  const searchMs = performance.now() - t;
  t = performance.now();
  store.decisions.undo(r.datasetId);
  const undoS = (performance.now() - t) / 1000;
  store.close();

  console.log(
    JSON.stringify({
      pairs: N,
      fileMB: +mb.toFixed(1),
      importSeconds: +importS.toFixed(2),
      importCpuSeconds: +importCpuS.toFixed(2),
      importCopyTransactionSeconds: +copyS.toFixed(2),
      importPairsPerSecond: Math.round(N / importS),
      exportSeconds: +exportS.toFixed(2),
      exportCpuSeconds: +exportCpuS.toFixed(2),
      loadAverage: os.loadavg()[0]!.toFixed(1),
      listPageMs: +listMs.toFixed(1),
      listTotal: page.total,
      ftsSearchMs: +searchMs.toFixed(1),
      ftsHits: search.total,
      undoBulkSeconds: +undoS.toFixed(2),
      node: process.version,
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
      date: new Date().toISOString(),
    }),
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
