/**
 * Versioned schema migrations. Each runs once, in order, inside one transaction together with the
 * `PRAGMA user_version` bump, so a database is always at exactly one known version.
 * Never edit a shipped migration: add a new one.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'datasets, pairs, imports, models, scoring runs, scores, filters, verdicts, decisions, labels, jobs, FTS5',
    sql: /* sql */ `
CREATE TABLE datasets (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  description TEXT,
  demo        INTEGER NOT NULL DEFAULT 0,
  created_at  TEXT NOT NULL
);

-- One row per import of one file into one dataset: the report a curator can audit later.
CREATE TABLE imports (
  id           INTEGER PRIMARY KEY,
  dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  file         TEXT NOT NULL,
  file_sha256  TEXT NOT NULL,
  file_bytes   INTEGER NOT NULL,
  format       TEXT NOT NULL,
  options_json TEXT NOT NULL DEFAULT '{}',
  imported     INTEGER NOT NULL,
  duplicates   INTEGER NOT NULL,
  skipped      INTEGER NOT NULL,
  report_json  TEXT NOT NULL,
  started_at   TEXT NOT NULL,
  finished_at  TEXT NOT NULL
);
CREATE INDEX imports_dataset ON imports(dataset_id);

-- A pair as imported (immutable content) plus the denormalised current state that the review queries
-- filter and sort on. The state columns are a cache of the append-only history (decisions, verdicts)
-- and are only ever written in the same transaction as the history rows they summarise.
CREATE TABLE pairs (
  id                INTEGER PRIMARY KEY,
  dataset_id        INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  import_id         INTEGER REFERENCES imports(id) ON DELETE SET NULL,
  line              INTEGER,
  source            TEXT,
  external_id       TEXT,
  prompt            TEXT NOT NULL,
  chosen            TEXT NOT NULL,
  rejected          TEXT NOT NULL,
  prompt_messages   TEXT,
  chosen_messages   TEXT,
  rejected_messages TEXT,
  metadata_json     TEXT,
  raw_json          TEXT,
  content_hash      TEXT NOT NULL,
  -- current state (cache of history)
  filter_id         INTEGER,
  auto_verdict      TEXT CHECK (auto_verdict IN ('keep','drop','uncertain')),
  margin            REAL,
  doubt             REAL,
  human_decision    TEXT CHECK (human_decision IN ('keep','drop','swap')),
  note              TEXT,
  effective         TEXT GENERATED ALWAYS AS (coalesce(human_decision, auto_verdict, 'undecided')) VIRTUAL
);
CREATE UNIQUE INDEX pairs_dataset_hash ON pairs(dataset_id, content_hash);
CREATE INDEX pairs_dataset_effective ON pairs(dataset_id, effective, id);
CREATE INDEX pairs_dataset_margin ON pairs(dataset_id, margin);
CREATE INDEX pairs_dataset_doubt ON pairs(dataset_id, doubt);
CREATE INDEX pairs_dataset_verdict ON pairs(dataset_id, auto_verdict);
CREATE INDEX pairs_dataset_source ON pairs(dataset_id, source);
CREATE INDEX pairs_dataset_human ON pairs(dataset_id, human_decision);

CREATE VIRTUAL TABLE pairs_fts USING fts5(
  prompt, chosen, rejected, content='pairs', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER pairs_fts_ai AFTER INSERT ON pairs BEGIN
  INSERT INTO pairs_fts(rowid, prompt, chosen, rejected) VALUES (new.id, new.prompt, new.chosen, new.rejected);
END;
CREATE TRIGGER pairs_fts_ad AFTER DELETE ON pairs BEGIN
  INSERT INTO pairs_fts(pairs_fts, rowid, prompt, chosen, rejected) VALUES ('delete', old.id, old.prompt, old.chosen, old.rejected);
END;
CREATE TRIGGER pairs_fts_au AFTER UPDATE OF prompt, chosen, rejected ON pairs BEGIN
  INSERT INTO pairs_fts(pairs_fts, rowid, prompt, chosen, rejected) VALUES ('delete', old.id, old.prompt, old.chosen, old.rejected);
  INSERT INTO pairs_fts(rowid, prompt, chosen, rejected) VALUES (new.id, new.prompt, new.chosen, new.rejected);
END;

CREATE TABLE backbones (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  path          TEXT,
  config_hash   TEXT,
  architecture  TEXT,
  metadata_json TEXT NOT NULL DEFAULT '{}',
  created_at    TEXT NOT NULL
);

CREATE TABLE saes (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  path          TEXT,
  hash          TEXT,
  backbone_id   TEXT,
  layer         INTEGER,
  d_sae         INTEGER,
  metadata_json TEXT NOT NULL DEFAULT '{}',
  created_at    TEXT NOT NULL
);

CREATE TABLE reward_models (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  folder        TEXT NOT NULL,
  manifest_hash TEXT NOT NULL,
  backbone_id   TEXT,
  sae_id        TEXT,
  layer         INTEGER,
  metrics_json  TEXT NOT NULL DEFAULT '{}',
  demo          INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL
);

CREATE TABLE scoring_runs (
  id              INTEGER PRIMARY KEY,
  dataset_id      INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  reward_model_id TEXT NOT NULL REFERENCES reward_models(id),
  status          TEXT NOT NULL CHECK (status IN ('running','done','failed','cancelled')),
  rule            TEXT,
  threshold       REAL,
  params_json     TEXT NOT NULL DEFAULT '{}',
  job_id          TEXT,
  created_at      TEXT NOT NULL,
  finished_at     TEXT
);
CREATE INDEX scoring_runs_dataset ON scoring_runs(dataset_id, id);

CREATE TABLE scores (
  run_id           INTEGER NOT NULL REFERENCES scoring_runs(id) ON DELETE CASCADE,
  pair_id          INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  score_chosen     REAL NOT NULL,
  score_rejected   REAL NOT NULL,
  margin           REAL NOT NULL,
  p_chosen         REAL,
  explanation_json TEXT,
  PRIMARY KEY (run_id, pair_id)
) WITHOUT ROWID;
CREATE INDEX scores_pair ON scores(pair_id);

-- Latents that fired for a scored pair (what the "latent" filter of the review list searches).
CREATE TABLE score_latents (
  run_id       INTEGER NOT NULL REFERENCES scoring_runs(id) ON DELETE CASCADE,
  pair_id      INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  latent       INTEGER NOT NULL,
  side         TEXT NOT NULL CHECK (side IN ('chosen','rejected','diff')),
  activation   REAL,
  contribution REAL,
  PRIMARY KEY (run_id, latent, pair_id, side)
) WITHOUT ROWID;
CREATE INDEX score_latents_pair ON score_latents(pair_id);

-- One application of the filtering rule to a scoring run; its verdicts are suggestions.
CREATE TABLE filters (
  id          INTEGER PRIMARY KEY,
  dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  run_id      INTEGER NOT NULL REFERENCES scoring_runs(id) ON DELETE CASCADE,
  rule        TEXT NOT NULL CHECK (rule IN ('paper','margin')),
  threshold   REAL NOT NULL,
  band        REAL NOT NULL,
  counts_json TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE INDEX filters_dataset ON filters(dataset_id, id);

CREATE TABLE verdicts (
  filter_id INTEGER NOT NULL REFERENCES filters(id) ON DELETE CASCADE,
  pair_id   INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  verdict   TEXT NOT NULL CHECK (verdict IN ('keep','drop','uncertain')),
  margin    REAL NOT NULL,
  PRIMARY KEY (filter_id, pair_id)
) WITHOUT ROWID;
CREATE INDEX verdicts_pair ON verdicts(pair_id);

-- Append-only decision history. A group is one user action (a single decision, a bulk action, an undo
-- or a redo); undo/redo are new groups that point at the group they revert.
CREATE TABLE decision_groups (
  id           INTEGER PRIMARY KEY,
  dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  kind         TEXT NOT NULL CHECK (kind IN ('do','undo','redo')),
  target_group INTEGER REFERENCES decision_groups(id),
  action       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  description  TEXT,
  count        INTEGER NOT NULL,
  created_at   TEXT NOT NULL
);
CREATE INDEX decision_groups_dataset ON decision_groups(dataset_id, id);

CREATE TABLE decisions (
  id              INTEGER PRIMARY KEY,
  group_id        INTEGER NOT NULL REFERENCES decision_groups(id) ON DELETE CASCADE,
  pair_id         INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
  action          TEXT NOT NULL CHECK (action IN ('keep','drop','swap','note','clear','revert')),
  old_decision    TEXT,
  new_decision    TEXT,
  old_note        TEXT,
  new_note        TEXT,
  auto_verdict    TEXT,
  filter_id       INTEGER,
  run_id          INTEGER,
  reward_model_id TEXT,
  threshold       REAL,
  reverts         INTEGER REFERENCES decisions(id),
  actor           TEXT NOT NULL,
  created_at      TEXT NOT NULL
);
CREATE INDEX decisions_pair ON decisions(pair_id, id);
CREATE INDEX decisions_group ON decisions(group_id);

CREATE TABLE latent_labels (
  model_id       TEXT NOT NULL,
  sae_id         TEXT NOT NULL,
  latent_index   INTEGER NOT NULL,
  description    TEXT NOT NULL,
  explanation_model TEXT,
  score          REAL,
  source_file    TEXT,
  raw_json       TEXT,
  imported_at    TEXT NOT NULL,
  PRIMARY KEY (model_id, sae_id, latent_index, description)
) WITHOUT ROWID;

CREATE TABLE jobs (
  id              TEXT PRIMARY KEY,
  kind            TEXT NOT NULL,
  params_json     TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('queued','running','done','failed','cancelled','interrupted')),
  done            REAL NOT NULL DEFAULT 0,
  total           REAL,
  message         TEXT,
  checkpoint_json TEXT,
  result_json     TEXT,
  error           TEXT,
  created_at      TEXT NOT NULL,
  started_at      TEXT,
  updated_at      TEXT NOT NULL,
  finished_at     TEXT
);
CREATE INDEX jobs_status ON jobs(status, created_at);
`,
  },
  {
    version: 2,
    description: 'bulk-load switch for the FTS insert trigger',
    // FTS5 flushes its pending index at every statement savepoint, so a per-row trigger makes bulk imports ~8x
    // slower. Importers set bulk_fts = 1 inside their transaction, insert the rows, index them with one
    // INSERT … SELECT and reset it before COMMIT, so no other connection ever sees it set.
    sql: /* sql */ `
CREATE TABLE fts_control (id INTEGER PRIMARY KEY CHECK (id = 1), bulk_fts INTEGER NOT NULL DEFAULT 0);
INSERT INTO fts_control(id, bulk_fts) VALUES (1, 0);
DROP TRIGGER pairs_fts_ai;
CREATE TRIGGER pairs_fts_ai AFTER INSERT ON pairs WHEN (SELECT bulk_fts FROM fts_control WHERE id = 1) = 0 BEGIN
  INSERT INTO pairs_fts(rowid, prompt, chosen, rejected) VALUES (new.id, new.prompt, new.chosen, new.rejected);
END;
`,
  },
  {
    version: 3,
    description: 'job owner (pid + host) so a process only marks jobs of dead processes as interrupted',
    sql: /* sql */ `
ALTER TABLE jobs ADD COLUMN owner_pid INTEGER;
ALTER TABLE jobs ADD COLUMN owner_host TEXT;
`,
  },
  {
    version: 4,
    description: 'index (dataset_id) ordered by rowid, so id-ordered pages and counts of a dataset use a covering index',
    sql: /* sql */ `
CREATE INDEX pairs_dataset_id ON pairs(dataset_id);
`,
  },
  {
    version: 5,
    description: 'indexes for sorting the review list by effective decision (drop first) and by source, id as tie-breaker',
    // The ORDER BY of pairs.ts (DECISION_RANK, 'source IS NULL, source') must match these expressions exactly for
    // SQLite to walk the index instead of sorting. One index per direction because the tie-breaker stays id ASC.
    sql: /* sql */ `
CREATE INDEX pairs_dataset_decision_asc ON pairs(dataset_id,
  (CASE effective WHEN 'drop' THEN 0 WHEN 'swap' THEN 1 WHEN 'uncertain' THEN 2 WHEN 'keep' THEN 3 ELSE 4 END), id);
CREATE INDEX pairs_dataset_decision_desc ON pairs(dataset_id,
  (CASE effective WHEN 'drop' THEN 0 WHEN 'swap' THEN 1 WHEN 'uncertain' THEN 2 WHEN 'keep' THEN 3 ELSE 4 END) DESC, id);
CREATE INDEX pairs_dataset_source_asc ON pairs(dataset_id, source IS NULL, source, id);
CREATE INDEX pairs_dataset_source_desc ON pairs(dataset_id, source IS NULL, source DESC, id);
`,
  },
  {
    version: 6,
    description: 'per scored pair: what the length policy cut (tokens dropped from prompt / response, per side)',
    // NULL = nothing cut (and every score written before the length policy existed). JSON rather than four integer
    // columns: nobody filters on it, and it mirrors the engine's PairTruncation object exactly.
    sql: /* sql */ `
ALTER TABLE scores ADD COLUMN truncation_json TEXT;
`,
  },
  {
    version: 7,
    description: "index decision groups by curator, for each curator's own undo / redo stack",
    sql: /* sql */ `
CREATE INDEX decision_groups_dataset_actor ON decision_groups(dataset_id, actor, id);
`,
  },
  {
    version: 8,
    description: 'generation runs (policy, sampling, prompts, progress), their candidates, and the lineage of generated datasets',
    // Prompts are frozen into generation_prompts when a run starts, so a resumed run sees exactly the same list;
    // a prompt is done when all its candidates (per instruction variant) are in. dataset_lineage has one row per
    // generated dataset: what made it (run, recipe, policy, round, parent), what Datasets and Export show.
    sql: /* sql */ `
CREATE TABLE generation_runs (
  id                 INTEGER PRIMARY KEY,
  name               TEXT NOT NULL,
  policy_kind        TEXT NOT NULL CHECK (policy_kind IN ('local','endpoint')),
  policy             TEXT NOT NULL,
  policy_label       TEXT NOT NULL,
  policy_json        TEXT NOT NULL,
  sampling_json      TEXT NOT NULL,
  n                  INTEGER NOT NULL,
  prompts_source     TEXT NOT NULL,
  prompts_dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  recipe             TEXT NOT NULL,
  recipe_json        TEXT NOT NULL DEFAULT '{}',
  reward_model_id    TEXT,
  round              INTEGER NOT NULL DEFAULT 1,
  parent_dataset_id  INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  dataset_id         INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  status             TEXT NOT NULL CHECK (status IN ('running','done','failed','cancelled')),
  prompts_total      INTEGER NOT NULL DEFAULT 0,
  prompts_done       INTEGER NOT NULL DEFAULT 0,
  tokens             INTEGER NOT NULL DEFAULT 0,
  job_id             TEXT,
  created_at         TEXT NOT NULL,
  finished_at        TEXT
);
CREATE INDEX generation_runs_dataset ON generation_runs(dataset_id);

CREATE TABLE generation_prompts (
  run_id          INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
  prompt_index    INTEGER NOT NULL,
  prompt          TEXT NOT NULL,
  prompt_messages TEXT NOT NULL,
  done            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, prompt_index)
) WITHOUT ROWID;

CREATE TABLE generation_candidates (
  id              INTEGER PRIMARY KEY,
  run_id          INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
  prompt_index    INTEGER NOT NULL,
  variant         TEXT NOT NULL DEFAULT '',
  candidate_index INTEGER NOT NULL,
  text            TEXT NOT NULL,
  tokens_json     TEXT,
  logprob         REAL,
  finish_reason   TEXT NOT NULL CHECK (finish_reason IN ('stop','length')),
  score           REAL,
  UNIQUE (run_id, prompt_index, variant, candidate_index)
);

CREATE TABLE dataset_lineage (
  dataset_id         INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
  generation_run_id  INTEGER REFERENCES generation_runs(id) ON DELETE SET NULL,
  recipe             TEXT NOT NULL,
  recipe_json        TEXT NOT NULL DEFAULT '{}',
  policy             TEXT NOT NULL,
  policy_label       TEXT NOT NULL,
  round              INTEGER NOT NULL,
  parent_dataset_id  INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  prompts_dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
  prompts_source     TEXT NOT NULL
);
`,
  },
  {
    version: 9,
    description: 'near-duplicate prompt groups per dataset (MinHash + LSH), for the review group filter and one-pair-per-group export',
    // group_id = the smallest pair id of the group. prompt_group_sets records how the groups were made and for how
    // many pairs: pairs imported later have no row (the groups are stale until recomputed).
    sql: /* sql */ `
CREATE TABLE prompt_groups (
  pair_id    INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  group_id   INTEGER NOT NULL
);
CREATE INDEX prompt_groups_dataset_group ON prompt_groups(dataset_id, group_id, pair_id);
CREATE TABLE prompt_group_sets (
  dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
  scheme      TEXT NOT NULL,
  threshold   REAL NOT NULL,
  pairs       INTEGER NOT NULL,
  groups      INTEGER NOT NULL,
  near_groups INTEGER NOT NULL,
  created_at  TEXT NOT NULL
);
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
