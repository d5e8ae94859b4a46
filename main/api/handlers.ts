/**
 * The one place that maps contract operations to engine calls. Owns the store (one SQLite connection) and the job
 * runner for the process (Electron main or `sparserm serve`); long work runs as jobs the UI polls with getJob.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../engine/errors';
import { openStore, type Store } from '../engine/store';
import { JobRunner } from '../engine/jobs';
import type { ApiHandlers, OpParsedInput } from './contract';
import { datasetSummary, intId, toHistory, toJob, toPairRow, toStoreFilter, toStoreSort } from './store-mapping';
import { chartData } from './charts';
import { createGenerationOps } from './generation-ops';
import { createLearnOps } from './learn-ops';
import { createCompareOps } from './compare-ops';
import { createEngineOps, type EngineOps } from './engine-ops';
import { defaultActor } from '../engine/store/decisions';
import { textToPromptMessages } from '../engine/data/formats';
import { NotFoundError, UnavailableError } from './dispatch';

export interface HandlerOptions {
  /** Database file (':memory:' for tests). */
  dbPath: string;
  /** Who decisions are attributed to (default: the OS user). */
  actor?: string;
  /** Replace engine operations (tests of the API layer without the ONNX engine). */
  engine?: (ctx: { store: Store; runner: JobRunner; partials: Map<string, unknown> }) => EngineOps;
  /** The native file dialog (Electron's main process supplies it; without it pickPath answers kind 'unavailable'). */
  pickPath?: ApiHandlers['pickPath'];
}

export interface Handlers extends ApiHandlers {
  /** Closes the database; running jobs are cancelled. */
  close(): void;
  readonly store: Store;
  readonly runner: JobRunner;
}

export function createHandlers(opts: HandlerOptions): Handlers {
  const store = openStore(opts.dbPath);
  const runner = new JobRunner(store);
  // Jobs left running by a process that died are shown as interrupted, with a Resume button.
  runner.recoverInterrupted();
  /** Live partial results of running jobs (e.g. the training curve so far), keyed by job id. */
  const partials = new Map<string, unknown>();
  const engine = (opts.engine ?? createEngineOps)({ store, runner, partials });
  // A name the curator set in the app wins; else this process's --actor / SPARSERM_ACTOR / OS user.
  const who = (curator: string | undefined) => curator ?? opts.actor;

  const datasetOf = (id: string) => {
    const n = intId(id, 'datasetId');
    store.datasets.get(n); // throws InputError naming the dataset when unknown
    return n;
  };
  const jobView = (id: string) => {
    const snap = runner.snapshot(id);
    return toJob({ ...snap, result: snap.status === 'done' ? engine.resultView(snap.kind, snap.result) : snap.result }, { etaSeconds: snap.etaSeconds, partial: partials.get(id) });
  };
  const undoResult = (datasetId: number, actor: string | undefined, r: { group: { id: number; action: string; targetGroup: number | null } | null }) => {
    const st = store.decisions.state(datasetId, actor);
    const target = r.group?.targetGroup != null ? store.decisions.group(r.group.targetGroup) : null;
    return {
      pairIds: r.group ? store.decisions.entries(r.group.id).map((e) => String(e.pairId)) : [],
      action: r.group?.action ?? null,
      stepCount: target?.count ?? 0,
      canUndo: st.canUndo,
      canRedo: st.canRedo,
    };
  };
  const scoreOf = (pairId: number, filterRunId: number | undefined) => (filterRunId === undefined ? undefined : store.runs.score(filterRunId, pairId));

  const h: ApiHandlers = {
    doctor: async () => ({ ...(await engine.doctor()), dbPath: store.path }),
    listModels: async () => ({ models: engine.listModels() }),
    addCheckpoint: async ({ path }) => engine.addCheckpoint(path),
    addSae: async ({ path }) => engine.addSae(path),
    checkCompatibility: async (i) => engine.checkCompatibility(i),
    buildModel: async (i) => ({ jobId: engine.startBuild(i) }),
    demoStatus: async () => engine.demoStatus(),
    installDemo: async () => ({ jobId: engine.startInstallDemo() }),

    listDatasets: async () => ({ datasets: store.datasets.list().map((d) => datasetSummary(store, d.id)) }),
    importDataset: async (i) => ({ jobId: engine.startImport(i) }),

    queryPairs: async ({ datasetId, filter, sort, offset, limit, locate }) => {
      const ds = datasetOf(datasetId);
      const f = toStoreFilter(ds, filter);
      const page = store.pairs.list({ ...f, sort: toStoreSort(sort.by, sort.dir), offset, limit });
      const runId = store.runs.currentFilter(ds)?.runId;
      const reviewed = offset > 0 && locate === undefined ? null : f.hasOverride === false ? 0 : store.pairs.count({ ...f, hasOverride: true });
      const located = locate === undefined ? null : store.pairs.position({ ...f, sort: toStoreSort(sort.by, sort.dir) }, intId(locate, 'locate'));
      return { total: page.total, rows: page.items.map((p) => toPairRow(p, scoreOf(p.id, runId))), reviewed, located };
    },
    getPair: async ({ pairId }) => {
      const p = store.pairs.get(intId(pairId, 'pairId'));
      const current = store.runs.currentFilter(p.datasetId);
      const score = scoreOf(p.id, current?.runId);
      const run = current ? store.runs.get(current.runId) : undefined;
      const rm = run ? store.models.rewardModel(run.rewardModelId) : undefined;
      return {
        ...toPairRow(p, score),
        datasetId: String(p.datasetId),
        pChosen: score ? (score.pChosen ?? 1 / (1 + Math.exp(-score.margin))) : null,
        rewardModelId: rm?.id ?? null,
        isDemoModel: rm?.demo ?? false,
        explainable: !!rm && fs.existsSync(path.join(rm.folder, 'manifest.json')),
        explanation: score && rm ? engine.explanation(p, score, rm) : null,
        truncation: score?.truncation ?? null,
        history: store.decisions.historyWithKind(p.id).map(toHistory).reverse(),
        promptTurns: p.promptMessages ?? textToPromptMessages(p.prompt),
      };
    },
    explainPair: async ({ pairId, top }) => {
      const p = store.pairs.get(intId(pairId, 'pairId'));
      const current = store.runs.currentFilter(p.datasetId);
      const run = current ? store.runs.get(current.runId) : store.runs.latestDone(p.datasetId);
      const rm = run ? store.models.rewardModel(run.rewardModelId) : undefined;
      if (!rm) throw new InputError({ field: 'pairId', expected: 'a pair of a scored dataset (score it first)', got: pairId });
      return engine.explainPair(p, rm, top);
    },
    decide: async ({ pairId, decision, note, curator }) => {
      const actor = who(curator);
      const id = intId(pairId, 'pairId');
      if (decision === undefined && (note === undefined || note === null)) {
        if (note === null) store.decisions.decidePair(id, 'note', { actor, note: '' });
        else throw new InputError({ field: 'decision', expected: 'a decision (keep/drop/swap/null) or a note' });
      } else if (decision === undefined) store.decisions.decidePair(id, 'note', { actor, note: note ?? '' });
      else store.decisions.decidePair(id, decision === null ? 'clear' : decision, { actor, ...(note !== undefined ? { note } : {}) });
      const p = store.pairs.get(id);
      return toPairRow(p, scoreOf(id, store.runs.currentFilter(p.datasetId)?.runId));
    },
    undo: async ({ datasetId, curator }) => {
      const ds = datasetOf(datasetId);
      return undoResult(ds, who(curator), store.decisions.undo(ds, who(curator)));
    },
    redo: async ({ datasetId, curator }) => {
      const ds = datasetOf(datasetId);
      return undoResult(ds, who(curator), store.decisions.redo(ds, who(curator)));
    },
    curator: async () => ({ name: opts.actor?.trim() || defaultActor() }),
    bulkDecide: async ({ datasetId, filter, decision, expectedCount, curator }) => {
      const actor = who(curator);
      const ds = datasetOf(datasetId);
      const f = toStoreFilter(ds, filter);
      // The curator confirmed "all N": refuse if the set changed meanwhile (another window, a finished scoring job).
      const n = store.pairs.count(f);
      if (n !== expectedCount) throw new InputError({ field: 'expectedCount', expected: `${n} (the filter now matches ${n} pairs); review and confirm again`, got: String(expectedCount) });
      const r = store.decisions.decide(f, decision === null ? 'clear' : decision, { actor, description: `bulk ${decision ?? 'clear'} on ${n} pairs` });
      return { changed: r.changed };
    },

    train: async (i) => ({ jobId: engine.startTrain(i) }),
    listRuns: async (i) => ({ runs: engine.listRuns(i.datasetId === undefined ? undefined : datasetOf(i.datasetId)) }),
    score: async (i) => ({ jobId: engine.startScore({ datasetId: datasetOf(i.datasetId), rewardModelId: i.rewardModelId, ...(i.precision ? { precision: i.precision } : {}) }) }),
    precisionCheck: async (i) => ({ jobId: engine.startPrecisionCheck({ ...i, datasetId: datasetOf(i.datasetId) }) }),
    applyFilter: async ({ datasetId, threshold, band }) => {
      const ds = datasetOf(datasetId);
      const run = store.runs.latestDone(ds);
      if (!run) throw new InputError({ field: 'datasetId', expected: 'a dataset that has been scored (run Score first)', got: datasetId });
      const f = store.runs.applyFilter({ datasetId: ds, runId: run.id, rule: threshold === 0 && band === 0 ? 'paper' : 'margin', threshold, band });
      return { keep: f.counts.keep, drop: f.counts.drop, uncertain: f.counts.uncertain };
    },

    exportPreview: async (i) => engine.exportPreview({ datasetId: datasetOf(i.datasetId), format: i.format, lines: i.lines, include: i.include }),
    exportDataset: async (i) =>
      ({ jobId: engine.startExport({ datasetId: datasetOf(i.datasetId), format: i.format, path: i.path, include: i.include, overwrite: i.overwrite, allowEmpty: i.allowEmpty, ...(i.onePerGroup ? { onePerGroup: true } : {}), ...(i.droppedPath ? { droppedPath: i.droppedPath } : {}) }) }),
    pickPath: async (i) => {
      if (!opts.pickPath) throw new UnavailableError('no native file dialog here (sparserm serve): upload the file to import, and download the export');
      return opts.pickPath(i);
    },

    listJobs: async () => ({ jobs: runner.list({ limit: 50 }).map((s) => jobView(s.id)) }),
    getJob: async ({ jobId }) => {
      if (!store.jobs.find(jobId)) throw new NotFoundError(`no job "${jobId}"`);
      return jobView(jobId);
    },
    cancelJob: async ({ jobId }) => {
      if (!store.jobs.find(jobId)) throw new NotFoundError(`no job "${jobId}"`);
      runner.cancel(jobId);
      return jobView(jobId);
    },
    resumeJob: async ({ jobId }) => ({ jobId: runner.resume(jobId).id }),

    importLabels: async (i: OpParsedInput<'importLabels'>) => engine.importLabels(i),
    chartData: async ({ datasetId, bins }) => chartData(store, datasetOf(datasetId), bins, (ds) => engine.listRuns(ds)[0]?.curve ?? null),
    ...createGenerationOps({ store, runner }),
    ...createLearnOps(store),
    ...createCompareOps({ store, runner, startScore: (i) => engine.startScore(i) }),
  };
  return Object.assign(h, {
    store,
    runner,
    close: () => {
      for (const j of runner.list({ status: ['running', 'queued'] })) runner.cancel(j.id);
      store.close();
    },
  });
}
