import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';

import type { Store } from '../../../main/engine/store';

/** A logical dump of every table (rows in primary-key order), hashed: equal hashes = same database content. */
export function dumpHash(dbFile: string): string {
  const db = new Database(dbFile, { readonly: true });
  try {
    const h = createHash('sha256');
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
    for (const t of tables) {
      h.update(`table ${t}\n`);
      for (const row of db.prepare(`SELECT * FROM "${t}" ORDER BY 1`).raw().all()) h.update(JSON.stringify(row, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'bigint' ? v.toString() : v)) + '\n');
    }
    h.update(`user_version ${db.pragma('user_version', { simple: true })}`);
    return h.digest('hex');
  } finally {
    db.close();
  }
}

/** Inserts n synthetic pairs into a new dataset (fast path for query / decision tests). */
export function seedPairs(store: Store, name: string, n: number, opts: { sources?: string[] } = {}): number {
  const d = store.datasets.create(name);
  store.transaction(() => {
    for (let i = 0; i < n; i++) {
      store.pairs.insert(d.id, null, {
        line: i + 1,
        source: opts.sources ? opts.sources[i % opts.sources.length]! : 'synthetic',
        externalId: `ext-${i}`,
        prompt: `question number ${i} about ${i % 2 ? 'apples' : 'oranges'}`,
        chosen: `good answer ${i}`,
        rejected: `bad answer ${i}`,
        contentHash: `${name}-${i}`,
      });
    }
  });
  return d.id;
}

/** Registers a reward model + finished run with deterministic scores: margin of pair k (0-based) = (k % 21 − 10) / 10. */
export function seedRun(store: Store, datasetId: number, rmId = 'rm-test'): number {
  store.models.upsertRewardModel({ id: rmId, name: 'test RM', folder: '/tmp/rm', manifestHash: 'hash-' + rmId });
  const run = store.runs.create({ datasetId, rewardModelId: rmId });
  const ids = store.pairs.ids({ datasetId });
  store.runs.addScores(
    run.id,
    ids.map((pairId, k) => ({ pairId, scoreChosen: (k % 21 - 10) / 10, scoreRejected: 0, latents: [{ latent: k % 5, side: 'chosen' as const, activation: 1 }] })),
  );
  store.runs.finish(run.id);
  return run.id;
}
