import { databasePath } from '../paths';
import { openDatabase, schemaVersion, type Db } from './db';
import { DatasetsRepo } from './datasets';
import { DecisionsRepo } from './decisions';
import { GenerationsRepo } from './generations';
import { JobsRepo } from './jobs';
import { LabelsRepo } from './labels';
import { ModelsRepo } from './models';
import { PairsRepo } from './pairs';
import { PromptGroupsRepo } from './prompt-groups';
import { RunsRepo } from './runs';

export * from './rows';
export type { DatasetSummary, DecisionCounts } from './datasets';
export type { NewPair, PairFilter, PairQuery, PairPage, PairSort, HistogramBin } from './pairs';
export { DECISION_SORT_ORDER, pairOrderBy, PairFilterSchema, PairQuerySchema, toFtsQuery } from './pairs';
export type { DecideOptions, DecideResult, UndoState, Agreement, TimelineEntry, HistoryKind, DecisionWithKind } from './decisions';
export { cohensKappa } from './decisions';
export type { NewScore, VerdictHistoryEntry } from './runs';
export type { NewLatentLabel } from './labels';
export { SCHEMA_VERSION } from './migrations';
export type { PromptGroupSet, PromptGroupMember } from './prompt-groups';
export type { GenerationRunRecord, GenerationPrompt, StoredCandidate, DatasetLineage, NewGenerationRun, NewCandidate, GenerationSampling, PolicySpec as GenerationPolicySpec, RecipeName } from './generations';

/** The store: one SQLite database and its repositories. */
export interface Store {
  readonly path: string;
  readonly db: Db;
  readonly datasets: DatasetsRepo;
  readonly pairs: PairsRepo;
  readonly runs: RunsRepo;
  /** Alias of `runs` for scores (addScores, score, scoresForPair). */
  readonly scores: RunsRepo;
  readonly decisions: DecisionsRepo;
  readonly models: ModelsRepo;
  readonly labels: LabelsRepo;
  readonly jobs: JobsRepo;
  /** Near-duplicate prompt groups (engine/sparserm/near-duplicates.ts). */
  readonly promptGroups: PromptGroupsRepo;
  /** Generation runs, their candidates, and generated datasets' lineage. */
  readonly generations: GenerationsRepo;
  readonly schemaVersion: number;
  /** Runs `fn` in one IMMEDIATE transaction (all or nothing). */
  transaction<T>(fn: () => T): T;
  close(): void;
}

/**
 * Opens the per-user database (or `file`; `:memory:` for tests). `file` beats SPARSERM_DB beats the default
 * location from `databasePath()`. Runs pending migrations; refuses a database from a newer version.
 */
export function openStore(file?: string, opts: { readonly?: boolean } = {}): Store {
  const p = file === ':memory:' ? file : databasePath(file);
  const db = openDatabase(p, opts);
  const runs = new RunsRepo(db);
  return {
    path: p,
    db,
    datasets: new DatasetsRepo(db),
    pairs: new PairsRepo(db),
    runs,
    scores: runs,
    decisions: new DecisionsRepo(db),
    models: new ModelsRepo(db),
    labels: new LabelsRepo(db),
    jobs: new JobsRepo(db),
    promptGroups: new PromptGroupsRepo(db),
    generations: new GenerationsRepo(db),
    schemaVersion: schemaVersion(db),
    transaction: <T>(fn: () => T) => db.transaction(fn).immediate(),
    close: () => {
      if (db.open) db.close();
    },
  };
}
