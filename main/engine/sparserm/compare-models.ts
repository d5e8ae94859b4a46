/**
 * Two reward models on one dataset, from their stored scoring runs: how often they give the same verdict (margin ≥ 0
 * = chosen preferred, the paper's rule), how their margins correlate (Pearson, Spearman), the pairs where they
 * disagree, and the SAE latents whose contributions to the margin differ most. Reads only the store: a model that
 * has not scored the dataset is reported as missing (the CLI and the API score it first).
 */
import fs from 'node:fs';
import path from 'node:path';

import { InputError } from '../errors';
import type { Store } from '../store';
import { RewardModelManifest } from './manifest';
import { wilsonInterval } from './metrics';
import { pearson, spearman } from './correlation';

export { averageRanks, pearson, spearman } from './correlation';

export interface CompareRequest {
  store: Store;
  datasetId: number;
  modelA: string;
  modelB: string;
  /** Disagreements listed (largest |margin_A − margin_B| first). Default 200. */
  disagreementLimit?: number;
  /** Latents listed. Default 15. */
  topLatents?: number;
}

export interface LatentDifference {
  latent: number;
  /** Mean over the compared pairs of |contribution_A − contribution_B| (0 where a model did not store the latent). */
  meanAbsDiff: number;
  meanA: number;
  meanB: number;
}

export interface ModelLatent {
  latent: number;
  /** Mean |contribution| over the compared pairs. */
  meanAbs: number;
  mean: number;
}

export interface Comparison {
  datasetId: number;
  modelA: string;
  modelB: string;
  runA: number;
  runB: number;
  /** Pairs scored by both runs. */
  n: number;
  /** Pairs with the same verdict, their share and its 95 % Wilson interval. */
  agree: number;
  agreement: number;
  ci95: [number, number];
  pearson: number;
  spearman: number;
  /** Both verdicts per pair: A keeps & B keeps, … (keep = margin ≥ 0). */
  table: { keepKeep: number; keepDrop: number; dropKeep: number; dropDrop: number };
  disagreements: { total: number; items: { pairId: number; marginA: number; marginB: number }[] };
  /** Both models read the same SAE (its latents are comparable one to one). */
  sameSae: boolean;
  saeA: string | null;
  saeB: string | null;
  /** Same SAE: latents by mean |contribution_A − contribution_B|. Different SAEs: empty (see perModel). */
  latents: LatentDifference[];
  /** Each model's own top latents by mean |contribution| (always filled; the only latent view when SAEs differ). */
  perModel: { a: ModelLatent[]; b: ModelLatent[] };
  /** Where the contributions come from: the top latents stored per pair when the dataset was scored. */
  latentSource: string;
  /** Margins of both models for the scatter (at most 5,000 pairs, every k-th, in pair id order). */
  scatter: { pairId: number; a: number; b: number }[];
}

/** The latest finished scoring run of `model` on the dataset, or undefined. */
export function latestRunOf(store: Store, datasetId: number, model: string): number | undefined {
  const runs = store.runs.list(datasetId).filter((r) => r.rewardModelId === model && r.status === 'done');
  return runs.length ? runs[runs.length - 1].id : undefined;
}

/** Per-latent stored contributions of a run: latent → (pair → contribution). */
function contributions(store: Store, runId: number): Map<number, Map<number, number>> {
  const rows = store.db
    .prepare("SELECT latent, pair_id, contribution FROM score_latents WHERE run_id = ? AND side = 'diff' AND contribution IS NOT NULL")
    .raw()
    .all(runId) as [number, number, number][];
  const out = new Map<number, Map<number, number>>();
  for (const [latent, pair, c] of rows) {
    let m = out.get(latent);
    if (!m) out.set(latent, (m = new Map()));
    m.set(pair, c);
  }
  return out;
}

function topOwn(c: Map<number, Map<number, number>>, pairs: Set<number>, n: number, top: number): ModelLatent[] {
  const out: ModelLatent[] = [];
  for (const [latent, m] of c) {
    let abs = 0;
    let sum = 0;
    for (const [p, v] of m) {
      if (!pairs.has(p)) continue;
      abs += Math.abs(v);
      sum += v;
    }
    if (abs > 0) out.push({ latent, meanAbs: abs / n, mean: sum / n });
  }
  return out.sort((a, b) => b.meanAbs - a.meanAbs || a.latent - b.latent).slice(0, top);
}

export function compareModels(req: CompareRequest): Comparison {
  const { store, datasetId, modelA, modelB } = req;
  if (modelA === modelB) throw new InputError({ field: 'modelB', expected: 'a reward model other than modelA', got: `"${modelB}"` });
  const rmA = store.models.requireRewardModel(modelA);
  const rmB = store.models.requireRewardModel(modelB);
  const runA = latestRunOf(store, datasetId, modelA);
  const runB = latestRunOf(store, datasetId, modelB);
  for (const [m, r] of [[modelA, runA], [modelB, runB]] as const) {
    if (r === undefined) throw new InputError({ field: 'reward model', expected: `a finished scoring run of "${m}" on dataset ${datasetId} (score the dataset with it first)`, got: 'none' });
  }
  const rows = store.db
    .prepare('SELECT a.pair_id AS pairId, a.margin AS a, b.margin AS b FROM scores a JOIN scores b ON b.pair_id = a.pair_id AND b.run_id = ? WHERE a.run_id = ? ORDER BY a.pair_id')
    .all(runB, runA) as { pairId: number; a: number; b: number }[];
  const n = rows.length;
  const ma = Float64Array.from(rows, (r) => r.a);
  const mb = Float64Array.from(rows, (r) => r.b);
  const table = { keepKeep: 0, keepDrop: 0, dropKeep: 0, dropDrop: 0 };
  const dis: { pairId: number; marginA: number; marginB: number }[] = [];
  for (const r of rows) {
    const ka = r.a >= 0;
    const kb = r.b >= 0;
    if (ka && kb) table.keepKeep++;
    else if (ka) table.keepDrop++;
    else if (kb) table.dropKeep++;
    else table.dropDrop++;
    if (ka !== kb) dis.push({ pairId: r.pairId, marginA: r.a, marginB: r.b });
  }
  dis.sort((x, y) => Math.abs(y.marginA - y.marginB) - Math.abs(x.marginA - x.marginB) || x.pairId - y.pairId);
  const agree = table.keepKeep + table.dropDrop;

  const top = req.topLatents ?? 15;
  const both = new Set(rows.map((r) => r.pairId));
  const ca = contributions(store, runA!);
  const cb = contributions(store, runB!);
  const sameSae = rmA.saeId !== null && rmA.saeId === rmB.saeId;
  const latents: LatentDifference[] = [];
  if (sameSae && n > 0) {
    for (const latent of new Set([...ca.keys(), ...cb.keys()])) {
      const a = ca.get(latent);
      const b = cb.get(latent);
      let diff = 0;
      let sa = 0;
      let sb = 0;
      // A latent a model did not store for a pair contributed less than its stored top latents: counted as 0.
      for (const p of new Set([...(a?.keys() ?? []), ...(b?.keys() ?? [])])) {
        if (!both.has(p)) continue;
        const va = a?.get(p) ?? 0;
        const vb = b?.get(p) ?? 0;
        diff += Math.abs(va - vb);
        sa += va;
        sb += vb;
      }
      if (diff > 0) latents.push({ latent, meanAbsDiff: diff / n, meanA: sa / n, meanB: sb / n });
    }
    latents.sort((x, y) => y.meanAbsDiff - x.meanAbsDiff || x.latent - y.latent);
  }
  const step = Math.max(1, Math.ceil(n / 5000));
  const ci = wilsonInterval(agree, n);
  return {
    datasetId,
    modelA,
    modelB,
    runA: runA!,
    runB: runB!,
    n,
    agree,
    agreement: n ? agree / n : NaN,
    ci95: ci,
    pearson: pearson(ma, mb),
    spearman: spearman(ma, mb),
    table,
    disagreements: { total: dis.length, items: dis.slice(0, req.disagreementLimit ?? 200) },
    sameSae,
    saeA: rmA.saeId,
    saeB: rmB.saeId,
    latents: latents.slice(0, top),
    perModel: { a: n ? topOwn(ca, both, n, top) : [], b: n ? topOwn(cb, both, n, top) : [] },
    latentSource: 'the top latents by |contribution to the margin| stored per pair when each run scored the dataset (others count as 0)',
    scatter: rows.filter((_, i) => i % step === 0).map((r) => ({ pairId: r.pairId, a: r.a, b: r.b })),
  };
}

/** Every disagreeing pair id (for the Review filter), in id order. */
export function disagreementIds(store: Store, runA: number, runB: number): number[] {
  return store.db
    .prepare('SELECT a.pair_id FROM scores a JOIN scores b ON b.pair_id = a.pair_id AND b.run_id = ? WHERE a.run_id = ? AND (a.margin >= 0) <> (b.margin >= 0) ORDER BY a.pair_id')
    .pluck()
    .all(runB, runA) as number[];
}

/** Best label per latent of a reward model's SAE (its own label set, else the one attached to its SAE later). */
export function latentLabels(store: Store, rewardModelId: string, indices: number[]): Map<number, string> {
  const rm = store.models.rewardModel(rewardModelId);
  if (!rm || indices.length === 0) return new Map();
  let m: RewardModelManifest | null = null;
  try {
    m = RewardModelManifest.parse(JSON.parse(fs.readFileSync(path.join(rm.folder, 'manifest.json'), 'utf8')));
  } catch {
    m = null;
  }
  const saeRow = m ? store.models.saes().find((x) => x.hash === m.sae.hash && x.metadata.neuronpedia) : undefined;
  const set = m?.sae.labels ?? (saeRow?.metadata.neuronpedia as { modelId: string; saeId: string } | undefined);
  return set ? store.labels.best(set.modelId, set.saeId, indices) : new Map();
}
