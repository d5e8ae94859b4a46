import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

import { InputError } from '../errors';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';

export type Db = Database.Database;

/**
 * Opens (creating if needed) the SQLite database and brings its schema to SCHEMA_VERSION.
 * WAL so the UI can read while a job writes; synchronous=NORMAL is durable across process crashes in WAL mode
 * (only an OS crash can lose the last commits, never corrupt); a busy timeout so the CLI and the app can share
 * the file.
 */
export function openDatabase(file: string, opts: { readonly?: boolean } = {}): Db {
  if (file !== ':memory:') {
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) {
      throw new InputError({ file, expected: 'a SQLite database file', got: 'a folder' });
    }
    if (!opts.readonly) fs.mkdirSync(path.dirname(file), { recursive: true });
  }
  let db: Db;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new InputError({ file, expected: 'a SQLite database file that can be opened', got: (err as Error).message }, err);
  }
  try {
    db.pragma('busy_timeout = 10000');
    // Refuse a newer database before changing anything in it (even the journal mode).
    refuseNewer(db, file);
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      // 64 MiB page cache (default 2 MiB): bulk imports update several indexes per row.
      db.pragma('cache_size = -65536');
      // After a big import the WAL can reach gigabytes; let checkpoints truncate it back.
      db.pragma('journal_size_limit = 67108864');
    }
    db.pragma('foreign_keys = ON');
    migrate(db, file);
  } catch (err) {
    db.close();
    if (err instanceof Error && /file is not a database|malformed/i.test(err.message)) {
      throw new InputError({ file, expected: 'a SparseRM Studio SQLite database', got: err.message }, err);
    }
    throw err;
  }
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Runs every pending migration in one transaction; refuses a database written by a newer version. */
function refuseNewer(db: Db, file: string): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new InputError({
      file,
      expected: `a database at schema version ${SCHEMA_VERSION} or older (this SparseRM Studio is too old for it: upgrade the app; the database was left untouched)`,
      got: `schema version ${current}`,
    });
  }
}

export function migrate(db: Db, file = 'database'): void {
  refuseNewer(db, file);
  const current = schemaVersion(db);
  const pending = MIGRATIONS.filter((m) => m.version > current);
  if (pending.length === 0) return;
  db.transaction(() => {
    for (const m of pending) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  }).immediate();
}
