/** Helpers every engine-ops part uses: demo-kit detection, one row per path, the required rows, job progress. */
import path from 'node:path';
import type { Store } from '../../engine/store';
import type { JobContext } from '../../engine/jobs';
import { InputError } from '../../engine/errors';
import { demoKitDir } from '../../engine/paths';
import type { Progress, SkippedPair } from '../../engine/sparserm/service';
import type { TrainResult } from '../contract';
import type { EngineContext } from '../engine-ops';

export const underDemoKit = (p: string | null) => !!p && (path.resolve(p) + path.sep).startsWith(path.resolve(demoKitDir) + path.sep);
export const isDemoMeta = (m: Record<string, unknown>, p: string | null = null) => m.demo === true || underDemoKit(p);

/**
 * Registration merges rows of the same checkpoint folder / SAE (engine/sparserm/registry.ts); a database written
 * before that may still hold two. Show one entry per path: the one with the richest metadata.
 */
export function dedupeByPath<T extends { path: string | null; metadata: Record<string, unknown> }>(rows: T[]): T[] {
  const byPath = new Map<string, T>();
  for (const r of rows) {
    const key = r.path ? path.resolve(r.path) : `#${byPath.size}`;
    const prev = byPath.get(key);
    if (!prev || Object.keys(r.metadata).length > Object.keys(prev.metadata).length) byPath.set(key, r);
  }
  return [...byPath.values()];
}
export const scalar = (v: unknown): string | number | boolean | null => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : v === null || v === undefined ? null : JSON.stringify(v));

/** The registered checkpoint / SAE an operation names, or an InputError pointing at the Models screen. */
export function modelRows(store: Store) {
  const requireBackbone = (id: string) => store.models.backbone(id) ?? (() => { throw new InputError({ field: 'checkpointId', expected: 'a registered checkpoint (add it on the Models screen)', got: id }); })();
  const requireSae = (id: string) => store.models.sae(id) ?? (() => { throw new InputError({ field: 'saeId', expected: 'a registered SAE (add it on the Models screen)', got: id }); })();
  return { requireBackbone, requireSae };
}


/** Pairs a job left out (text the tokenizer refuses), for its result: the first 1000 and how many in all. */
export const skippedView = (skipped: SkippedPair[], pairIds?: number[]) => ({
  skipped: skipped.slice(0, 1000).map((x) => {
    const id = x.pairId ?? pairIds?.[x.index];
    return { pairId: id !== undefined ? String(id) : null, index: x.index, reason: x.reason };
  }),
  skippedTotal: skipped.length,
});
// ORT runs (backbone, SAE, head) go to worker threads: the Node binding runs inference synchronously, and this
// process must keep answering IPC/HTTP (listing pairs, job snapshots) while a job extracts features or scores.
export const offThread = { worker: true } as const;
const phaseText: Record<string, string> = { tokenize: 'tokenizing', backbone: 'running the backbone', features: 'extracting features', sae: 'SAE latents', train: 'training the head', store: 'saving scores', baselines: 'baselines' };
/** The progress callback of a train / score / precision-check job (the train job also streams its curve into ctx.partials). */
export const progressReporter = (ctx: Pick<EngineContext, 'partials'>) => (job: JobContext, partialCurve?: TrainResult['curve']) => (p: Progress) => {
  // The live curve goes into the job's partial result BEFORE the progress event, so a snapshot taken on that
  // event (getJob, the UI's poll) already shows this epoch.
  if (partialCurve && p.phase === 'train' && p.stats) {
    const st = p.stats;
    partialCurve.push({ epoch: st.epoch, trainLoss: st.trainLoss, valLoss: st.valLoss ?? null, valAccuracy: st.valAccuracy ?? null });
    ctx.partials.set(job.id, { curve: [...partialCurve] });
  }
  job.progress(p.done, p.total, `${phaseText[p.phase] ?? p.phase}: ${p.done}/${p.total}`);
};
