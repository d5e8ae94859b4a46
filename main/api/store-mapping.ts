/**
 * Maps store rows (numeric ids, store vocabulary) to contract shapes (string ids, UI vocabulary) and contract
 * filters to store filters. One place, so the UI vocabulary can differ from the schema without leaking into it.
 */
import type { Store, Pair, PairFilter as StorePairFilter, PairSort, DecisionWithKind, JobRecord } from '../engine/store';
import { InputError } from '../engine/errors';
import { failedOnBadInput } from '../engine/store/jobs';
import type { DatasetSummary, HistoryEntry, Job, PairFilter, PairRow, PairSortKey } from './contract';
import { lineageOf } from './generation-ops';

/** Parses a contract id back to the store's integer id, naming the field on failure. */
export function intId(value: string, field: string): number {
  if (!/^\d+$/.test(value)) throw new InputError({ field, expected: 'a numeric id', got: JSON.stringify(value) });
  return Number(value);
}

export function toStoreFilter(datasetId: number, f: PairFilter): StorePairFilter {
  const out: StorePairFilter = { datasetId };
  if (f.decision && f.decision !== 'any') out.human = [f.decision === 'undecided' ? 'none' : f.decision];
  if (f.verdict && f.verdict !== 'any') out.verdict = [f.verdict === 'unscored' ? 'none' : f.verdict];
  if (f.source) out.source = [f.source];
  if (f.latent !== undefined) out.latent = f.latent;
  if (f.marginMin !== undefined) out.marginMin = f.marginMin;
  if (f.marginMax !== undefined) out.marginMax = f.marginMax;
  if (f.search && f.search.trim()) out.text = f.search.trim();
  if (f.promptGroup !== undefined) out.promptGroup = intId(f.promptGroup, 'promptGroup');
  if (f.pairIds !== undefined) out.ids = f.pairIds.map((id) => intId(id, 'pairIds'));
  if (f.curated === 'overrides') out.disagrees = true;
  else if (f.curated === 'decided-uncertain') {
    out.hasOverride = true;
    // Intersect with a verdict filter already set (verdict 'keep' + decided-uncertain matches nothing).
    out.verdict = out.verdict ? out.verdict.filter((v) => v === 'uncertain') : ['uncertain'];
  }
  return out;
}

export function toStoreSort(by: PairSortKey, dir: 'asc' | 'desc'): PairSort {
  if (by === 'doubt') return 'doubt';
  if (by === 'margin') return dir === 'asc' ? 'margin' : '-margin';
  if (by === 'decision') return dir === 'asc' ? 'decision' : '-decision';
  if (by === 'source') return dir === 'asc' ? 'source' : '-source';
  return dir === 'asc' ? 'id' : '-id';
}

export function toPairRow(p: Pair, score?: { scoreChosen: number; scoreRejected: number } | undefined): PairRow {
  return {
    id: String(p.id),
    index: p.line ?? p.id,
    source: p.source ?? '',
    prompt: p.prompt,
    chosen: p.chosen,
    rejected: p.rejected,
    scoreChosen: score?.scoreChosen ?? null,
    scoreRejected: score?.scoreRejected ?? null,
    margin: p.margin,
    verdict: p.autoVerdict,
    decision: p.humanDecision,
    note: p.note,
    effective: p.effective,
  };
}

export function toHistory(d: DecisionWithKind): HistoryEntry {
  return {
    at: d.createdAt,
    who: d.actor,
    from: d.oldDecision,
    to: d.newDecision,
    note: d.newNote !== d.oldNote ? d.newNote : null,
    modelId: d.rewardModelId,
    threshold: d.threshold,
    action: d.kind,
  };
}

export function datasetSummary(store: Store, id: number): DatasetSummary {
  const s = store.datasets.summary(id);
  const imports = store.datasets.imports(id);
  const unscored = store.pairs.count({ datasetId: id, verdict: ['none'] });
  const filter = store.runs.currentFilter(id);
  const rm = filter ? store.models.rewardModel(store.runs.get(filter.runId).rewardModelId) : undefined;
  const lineage = lineageOf(store, id);
  return {
    id: String(s.id),
    name: s.name,
    format: imports[0]?.format ?? '',
    sourcePath: imports[0]?.file ?? null,
    createdAt: s.createdAt,
    isDemo: s.demo,
    counts: {
      total: s.pairs,
      scored: s.pairs - unscored,
      keep: s.counts.keep,
      drop: s.counts.drop,
      swap: s.counts.swap,
      uncertain: s.counts.uncertain,
      undecided: s.counts.undecided,
      humanDecided: s.humanDecided,
    },
    sources: store.pairs.sources(id).map((x) => x.source ?? ''),
    rewardModelId: rm?.id ?? null,
    rewardModelIsDemo: rm?.demo ?? false,
    ...(lineage ? { lineage } : {}),
  };
}

export function toJob(j: JobRecord, live?: { etaSeconds?: number | null; title?: string; partial?: unknown }): Job {
  const total = j.total ?? null;
  const progress = j.status === 'done' ? 1 : total && total > 0 ? Math.min(1, j.done / total) : null;
  return {
    id: j.id,
    kind: j.kind,
    state: j.status,
    title: live?.title ?? titleFor(j.kind),
    progress,
    done: Math.max(0, Math.floor(j.done)),
    total: total === null ? null : Math.max(0, Math.floor(total)),
    message: j.message ?? '',
    etaSeconds: live?.etaSeconds ?? null,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
    error: j.error,
    // A job failed by its input would fail the same way again: not resumable (its error says what to fix).
    resumable: j.status === 'interrupted' || (j.status === 'failed' && !failedOnBadInput(j)),
    result: j.status === 'done' ? (j.result ?? null) : (live?.partial ?? j.result ?? null),
  };
}

const titles: Record<string, string> = {
  import: 'Import',
  train: 'Train reward model',
  score: 'Score dataset',
  export: 'Export',
  features: 'Extract features',
  demo: 'Install the demo kit',
  build: 'Build backbone graph',
  generate: 'Generate preference pairs',
};
export function titleFor(kind: string): string {
  return titles[kind] ?? kind;
}
