/**
 * Curation store bench: peak RSS while importing a 1 GB JSONL (target < 300 MB), measured in a separate process
 * (the CLI's code path, tsx included). The file is generated in a temp dir and deleted after.
 * Run: npx tsx bench/store-rss.ts [sizeMB=1024]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

if (process.argv[2] === '--child') {
  const [, , , file, db] = process.argv;
  const { openStore } = await import('../main/engine/store');
  const { importFile } = await import('../main/engine/data');
  const store = openStore(db);
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await importFile(store, file!, { dataset: 'rss' });
  const cpu = process.cpuUsage(cpu0);
  store.close();
  console.log(JSON.stringify({ imported: r.imported, seconds: (performance.now() - t) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  process.exit(0);
}

const sizeMB = Number(process.argv[2] ?? 1024);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-rss-'));
try {
  const file = path.join(dir, 'big.jsonl');
  const fd = fs.openSync(file, 'w');
  const para = 'The answer depends on context; a careful assistant explains the trade-offs, cites what it knows and says what it does not. ';
  let bytes = 0;
  let i = 0;
  // ~8 KB rows (long multi-paragraph answers, like HH dialogues), so 1 GB ≈ 130k pairs.
  while (bytes < sizeMB * 1024 * 1024) {
    const lines: string[] = [];
    for (let k = 0; k < 1000; k++, i++) {
      lines.push(JSON.stringify({ id: `r${i}`, prompt: `Prompt ${i}: ${para.repeat(4)}`, chosen: `Chosen ${i}. ${para.repeat(30)}`, rejected: `Rejected ${i}. ${para.repeat(28)}`, source: 'bench' }));
    }
    const chunk = lines.join('\n') + '\n';
    fs.writeSync(fd, chunk);
    bytes += Buffer.byteLength(chunk);
  }
  fs.closeSync(fd);
  const res = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', file, path.join(dir, 'rss.db')], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (res.status !== 0) throw new Error(`child failed: ${res.stderr}`);
  const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
  if (out.imported !== i) throw new Error(`imported ${out.imported}, expected ${i}`);
  const dbMB = ['rss.db', 'rss.db-wal'].map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f)).reduce((a, f) => a + fs.statSync(f).size, 0) / 1e6;
  console.log(JSON.stringify({ fileMB: +(bytes / 1e6).toFixed(0), pairs: i, ...out, dbMB: +dbMB.toFixed(0), node: process.version, cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`, date: new Date().toISOString() }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
