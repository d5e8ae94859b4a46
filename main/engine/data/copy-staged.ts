import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

import type { Db } from '../store/db';

/** What phase 2 of an import needs (all plain data: it crosses into a worker thread). */
export interface CopyArgs {
  stagingFile: string;
  datasetName: string;
  file: string;
  sha256: string;
  bytes: number;
  format: string;
  optionsJson: string;
  reportJson: string;
  skipped: number;
  duplicates: number;
  staged: number;
  startedAt: string;
  now: string;
}

export interface CopyResult {
  datasetId: number;
  datasetName: string;
  importId: number;
  imported: number;
  duplicates: number;
}

/**
 * Phase 2 of an import as plain JavaScript source (no imports, no TypeScript), so the very same code runs in a worker
 * thread started with `eval` — no loader and no bundler entry needed, in Node as in Electron — and, for in-memory
 * stores, on the calling thread. It copies the staged rows into the store in ONE transaction.
 */
const COPY_STAGED_SOURCE = String.raw`
function copyStaged(db, a, beforeCommit) {
  db.prepare('ATTACH DATABASE ? AS staging').run(a.stagingFile);
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      // Index the rows for search in one statement (migration 2), not with the per-row trigger.
      db.exec('UPDATE main.fts_control SET bulk_fts = 1');
      const firstId = (db.prepare('SELECT max(id) AS m FROM main.pairs').get().m || 0) + 1;
      let ds = db.prepare('SELECT id, name FROM main.datasets WHERE name = ?').get(a.datasetName);
      if (!ds) {
        const id = db.prepare('INSERT INTO main.datasets(name, description, demo, created_at) VALUES (?, NULL, 0, ?)').run(a.datasetName, a.now).lastInsertRowid;
        ds = { id: Number(id), name: a.datasetName };
      }
      const importId = Number(db.prepare(
        'INSERT INTO main.imports(dataset_id, file, file_sha256, file_bytes, format, options_json, imported, duplicates, skipped, report_json, started_at, finished_at) ' +
        'VALUES (?,?,?,?,?,?,0,0,?,?,?,?)'
      ).run(ds.id, a.file, a.sha256, a.bytes, a.format, a.optionsJson, a.skipped, a.reportJson, a.startedAt, a.now).lastInsertRowid);
      const imported = db.prepare(
        'INSERT INTO main.pairs(dataset_id, import_id, line, source, external_id, prompt, chosen, rejected, prompt_messages, chosen_messages, ' +
        'rejected_messages, metadata_json, raw_json, content_hash) ' +
        'SELECT ?, ?, line, source, external_id, prompt, chosen, rejected, prompt_messages, chosen_messages, rejected_messages, metadata_json, ' +
        'raw_json, content_hash FROM staging.staged WHERE 1 ORDER BY line ON CONFLICT(dataset_id, content_hash) DO NOTHING'
      ).run(ds.id, importId).changes;
      // Another process may have added some of these pairs to the dataset between the phases.
      const duplicates = a.duplicates + (a.staged - imported);
      db.prepare('INSERT INTO main.pairs_fts(rowid, prompt, chosen, rejected) SELECT id, prompt, chosen, rejected FROM main.pairs WHERE id >= ? AND import_id = ?').run(firstId, importId);
      db.exec('UPDATE main.fts_control SET bulk_fts = 0');
      db.prepare('UPDATE main.imports SET imported = ?, duplicates = ? WHERE id = ?').run(imported, duplicates, importId);
      beforeCommit();
      db.exec('COMMIT');
      return { datasetId: ds.id, datasetName: ds.name, importId: importId, imported: imported, duplicates: duplicates };
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw e;
    }
  } finally {
    db.exec('DETACH DATABASE staging');
  }
}
`;

/**
 * Test hook for the kill -9 test: with SPARSERM_TEST_COMMIT_MARKER set, write that file and wait (synchronously,
 * SPARSERM_TEST_COMMIT_HOLD_MS, default 60 s) just before COMMIT, every row of the transaction written.
 */
const HOLD_SOURCE = String.raw`
function holdBeforeCommit(writeFile) {
  const marker = process.env.SPARSERM_TEST_COMMIT_MARKER;
  if (!marker) return;
  writeFile(marker, String(process.pid));
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.SPARSERM_TEST_COMMIT_HOLD_MS || 60000));
}
`;

const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const Database = require(workerData.betterSqlite3);
${COPY_STAGED_SOURCE}
${HOLD_SOURCE}
try {
  const db = new Database(workerData.dbFile);
  try {
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // 16 MiB: the worker's cache adds to the process's peak RSS (1 GB import: 277 MB with 64 MiB).
    db.pragma('cache_size = -16384');
    const result = copyStaged(db, workerData.args, () => holdBeforeCommit(fs.writeFileSync));
    parentPort.postMessage({ ok: true, result });
  } finally {
    db.close();
  }
} catch (e) {
  parentPort.postMessage({ ok: false, message: String(e && e.message || e), code: e && e.code });
}
`;

// eslint-disable-next-line @typescript-eslint/no-implied-eval -- the same source must also run in an eval'd worker
const inThread = new Function(`${COPY_STAGED_SOURCE}\n${HOLD_SOURCE}\nreturn { copyStaged, holdBeforeCommit };`)() as {
  copyStaged: (db: Db, a: CopyArgs, beforeCommit: () => void) => CopyResult;
  holdBeforeCommit: (writeFile: (f: string, s: string) => void) => void;
};

/** Runs phase 2 on the calling thread (in-memory stores: no other thread can open them). */
export function copyStagedHere(db: Db, args: CopyArgs): CopyResult {
  return inThread.copyStaged(db, args, () => inThread.holdBeforeCommit(fs.writeFileSync));
}

/**
 * Runs phase 2 in a worker thread with its own connection, so this thread's event loop (HTTP server, Electron IPC,
 * the UI's reads) stays responsive while the copy transaction runs.
 */
export function copyStagedInWorker(dbFile: string, args: CopyArgs): Promise<CopyResult> {
  const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { dbFile, args, betterSqlite3 } });
    let settled = false;
    w.once('message', (m: { ok: true; result: CopyResult } | { ok: false; message: string; code?: string }) => {
      settled = true;
      if (m.ok) resolve(m.result);
      else reject(Object.assign(new Error(m.message), { code: m.code }));
    });
    w.once('error', (e) => {
      settled = true;
      reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`the import copy worker exited with code ${code}`));
    });
  });
}
