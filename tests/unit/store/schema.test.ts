import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { openStore, SCHEMA_VERSION } from '../../../main/engine/store';
import { MIGRATIONS } from '../../../main/engine/store/migrations';
import { tempDir } from '../../helpers/paths';

describe('store schema', () => {
  it('creates the database with WAL, foreign keys and the latest schema version', () => {
    const file = path.join(tempDir(), 'nested', 'db.sqlite');
    const s = openStore(file);
    expect(fs.existsSync(file)).toBe(true);
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.at(-1)!.version);
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(s.db.pragma('integrity_check', { simple: true })).toBe('ok');
    s.close();
    // Re-opening runs no migration again and keeps the data.
    const s2 = openStore(file);
    expect(s2.schemaVersion).toBe(SCHEMA_VERSION);
    s2.close();
  });

  it('migrates an older database step by step inside one transaction', () => {
    const file = path.join(tempDir(), 'old.db');
    const raw = new Database(file);
    raw.exec(MIGRATIONS[0]!.sql);
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO datasets(name, created_at) VALUES ('kept', 'x')").run();
    raw.close();
    const s = openStore(file);
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    expect(s.datasets.byName('kept')).toBeDefined();
    // migration 2 added the FTS bulk switch, migration 3 the job owner columns
    expect(s.db.prepare('SELECT bulk_fts FROM fts_control').pluck().get()).toBe(0);
    expect((s.db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[]).map((c) => c.name)).toContain('owner_pid');
    // migration 5: the decision / source sort indexes
    const indexes = s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pairs'").pluck().all();
    expect(indexes).toEqual(expect.arrayContaining(['pairs_dataset_decision_asc', 'pairs_dataset_decision_desc', 'pairs_dataset_source_asc', 'pairs_dataset_source_desc']));
    s.close();
  });

  it('refuses a database written by a newer version, with a clear message, and leaves it untouched', () => {
    const file = path.join(tempDir(), 'newer.db');
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    raw.close();
    const before = fs.readFileSync(file);
    let err: unknown;
    try {
      openStore(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(new RegExp(`schema version ${SCHEMA_VERSION} or older.*upgrade`));
    expect((err as Error).message).toContain(`schema version ${SCHEMA_VERSION + 5}`);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('refuses a folder and a non-database file with an InputError naming the path', () => {
    const dir = tempDir();
    expect(() => openStore(dir)).toThrow(/got a folder/);
    const junk = path.join(dir, 'junk.db');
    fs.writeFileSync(junk, 'this is not sqlite at all, just text '.repeat(200));
    expect(() => openStore(junk)).toThrow(InputError);
  });

  it('uses SPARSERM_DB when no path is given', () => {
    const file = path.join(tempDir(), 'env.db');
    const prev = process.env.SPARSERM_DB;
    process.env.SPARSERM_DB = file;
    try {
      const s = openStore();
      expect(s.path).toBe(file);
      s.close();
      expect(fs.existsSync(file)).toBe(true);
    } finally {
      if (prev === undefined) delete process.env.SPARSERM_DB;
      else process.env.SPARSERM_DB = prev;
    }
  });

  it('rejects rows that break the schema contract (zod at the boundary)', () => {
    const s = openStore(':memory:');
    s.db.prepare("INSERT INTO datasets(name, created_at, demo) VALUES ('d', 'x', 0)").run();
    s.db.prepare("INSERT INTO reward_models(id, name, folder, manifest_hash, metrics_json, created_at) VALUES ('m','m','/f','h','not json','x')").run();
    expect(() => s.models.rewardModel('m')).toThrow(/invalid JSON column/);
    s.close();
  });
});
