import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';

import { exportDataset, importFile } from '../../../main/engine/data';
import { JobRunner } from '../../../main/engine/jobs';
import { openStore } from '../../../main/engine/store';
import { repoRoot, tempDir } from '../../helpers/paths';

const ROWS = 150_000;

function writeLargeFile(file: string, rows: number): void {
  const fd = fs.openSync(file, 'w');
  let buf: string[] = [];
  for (let i = 0; i < rows; i++) {
    buf.push(JSON.stringify({ id: `row-${i}`, prompt: `Question ${i}: what is ${i} plus ${i}? Explain the steps carefully.`, chosen: `It is ${2 * i}. Adding a number to itself doubles it.`, rejected: `It is ${2 * i + 1}, probably.`, source: 'synthetic' }));
    if (buf.length === 5000) {
      fs.writeSync(fd, buf.join('\n') + '\n');
      buf = [];
    }
  }
  if (buf.length) fs.writeSync(fd, buf.join('\n') + '\n');
  fs.closeSync(fd);
}

function cli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [path.join(repoRoot, 'bin/sparserm.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function killed(child: ChildProcess): Promise<void> {
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await done;
}

describe('crash safety (kill -9 of the CLI mid-way)', () => {
  it('import: the dataset is absent or complete, integrity ok, the job shows as interrupted', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'big.jsonl');
    writeLargeFile(file, ROWS);
    const db = path.join(dir, 'db.sqlite');
    // A dataset imported before the crash must survive untouched.
    const s0 = openStore(db);
    fs.writeFileSync(path.join(dir, 'small.jsonl'), JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
    await importFile(s0, path.join(dir, 'small.jsonl'), { dataset: 'before' });
    s0.close();

    const child = cli(['import', file, '--dataset', 'big', '--db', db]);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await waitFor(() => /import: [1-9]\d*%/.test(stderr) || child.exitCode !== null, 90_000, 'import progress');
    expect(child.exitCode).toBeNull(); // still running: we kill it mid-way
    await killed(child);

    const raw = new Database(db);
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    raw.close();
    const s = openStore(db);
    const big = s.datasets.byName('big');
    if (big) expect(s.pairs.count({ datasetId: big.id })).toBe(ROWS);
    expect(big).toBeUndefined(); // killed at ≥10% of a single transaction: nothing committed
    expect(s.db.prepare('SELECT count(*) FROM pairs WHERE dataset_id NOT IN (SELECT id FROM datasets)').pluck().get()).toBe(0);
    expect(s.db.prepare("INSERT INTO pairs_fts(pairs_fts) VALUES ('integrity-check')").run()).toBeDefined();
    expect(s.pairs.count({ datasetId: s.datasets.byName('before')!.id })).toBe(1);
    const runner = new JobRunner(s);
    const interrupted = runner.recoverInterrupted();
    expect(interrupted).toHaveLength(1);
    expect(s.jobs.get(interrupted[0]!)).toMatchObject({ kind: 'import', status: 'interrupted' });
    s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);

  it('import killed inside its transaction (all rows written, before COMMIT): nothing committed, staging file cleaned by the next import', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'big.jsonl');
    writeLargeFile(file, 20_000);
    const db = path.join(dir, 'db.sqlite');
    const marker = path.join(dir, 'in-transaction');
    const child = cli(['import', file, '--dataset', 'big', '--db', db], { SPARSERM_TEST_COMMIT_MARKER: marker });
    await waitFor(() => fs.existsSync(marker) || child.exitCode !== null, 90_000, 'the import transaction');
    expect(child.exitCode).toBeNull();
    await killed(child);
    const s = openStore(db);
    expect(s.db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(s.datasets.byName('big')).toBeUndefined();
    expect(s.db.prepare('SELECT count(*) FROM pairs').pluck().get()).toBe(0);
    expect(s.db.prepare('SELECT count(*) FROM imports').pluck().get()).toBe(0);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.staging.db'))).toHaveLength(1); // left by the killed process
    fs.writeFileSync(path.join(dir, 'small.jsonl'), JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
    await importFile(s, path.join(dir, 'small.jsonl'), { dataset: 'small' });
    expect(fs.readdirSync(dir).filter((f) => f.includes('.staging.db'))).toEqual([]);
    s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);

  it('export: no partial file under the export name; the previous export stays intact', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'big.jsonl');
    writeLargeFile(file, ROWS);
    const db = path.join(dir, 'db.sqlite');
    const s = openStore(db);
    await importFile(s, file, { dataset: 'big' });
    s.close();
    const out = path.join(dir, 'out.jsonl');
    fs.writeFileSync(out, 'previous export\n');
    const child = cli(['export', '--dataset', 'big', '--out', out, '--include-undecided', '--force', '--db', db]);
    const tmpOf = () => fs.readdirSync(dir).find((f) => f.startsWith('.out.jsonl.tmp-'));
    await waitFor(() => {
      const t = tmpOf();
      return (t !== undefined && fs.statSync(path.join(dir, t)).size > 1_000_000) || child.exitCode !== null;
    }, 90_000, 'export temp file');
    expect(child.exitCode).toBeNull();
    await killed(child);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous export\n');
    expect(fs.existsSync(out + '.provenance.json')).toBe(false);
    // the leftover is only the hidden temp file, never the real name
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('out.jsonl'))).toEqual(['out.jsonl']);
    // the killed writer's hidden temp file is removed by the next export in that folder (its pid is gone)
    expect(tmpOf()).toBeDefined();
    const s2 = openStore(db);
    await exportDataset(s2, { dataset: 'big', out: path.join(dir, 'other.jsonl') });
    s2.close();
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);
});
