/**
 * Precision check on the user's own pairs (issue 13 item 2): runs a reward model's feature path twice — once with
 * f32 backbone graphs (the reference) and once at the precision asked for — and reports how much the cheaper
 * precision changes what the model sees and decides:
 *  - cosine of the pooled representation z, per response (mean and worst);
 *  - which of the model's selected SAE latents fire on z (per-response Jaccard, and the agreement rate over all
 *    response × selected-latent cells);
 *  - Spearman rank correlation of the pair margins;
 *  - filter decisions that flip (keep = margin ≥ τ, drop otherwise; τ = 0 is the paper rule).
 * Both runs go through the same path as `score` (pair-jobs.ts → features.ts, the feature cache keyed by precision),
 * so cached features of either precision are reused.
 */
import type { Precision } from '../backbone/linear-weights';
import type { EpRequest } from '../runtime/ort';
import { keptPairs, modelSae, pooledFor, responsesOf, scoreRepresentations, skippedPairs, type JobHooks, type SkippedPair } from './pair-jobs';
import { readRewardModel } from './model-folder';
import type { PairInput } from './pairs-file';
import { spearman } from './correlation';

export { averageRanks, spearman } from './correlation';

export interface PrecisionCheckRequest extends JobHooks {
  modelDir: string;
  pairs: PairInput[];
  /** The precision to check against f32. */
  precision: Precision;
  /** Margin threshold τ of the filter decision (keep when margin ≥ τ; default 0, the paper rule). */
  threshold?: number;
  checkpoint?: string;
  ep?: EpRequest;
}

export interface PrecisionCheckReport {
  precision: Precision;
  reference: 'f32';
  /** Pairs compared (pairs whose text the tokenizer refused are left out and listed in `skipped`). */
  pairs: number;
  responses: number;
  cosine: { mean: number; min: number; /** Response row (2·pair + side) with the lowest cosine. */ minResponse: number };
  /** Largest ‖z_p − z_f32‖ / ‖z_f32‖ over the responses (0 when the two precisions agree exactly). */
  zRelError: number;
  latents: {
    /** The model's selected SAE latents (K). */
    selected: number;
    /** Mean over responses of |fire_ref ∩ fire_p| / |fire_ref ∪ fire_p| over the selected latents (1 when neither fires). */
    jaccardMean: number;
    /** Share of response × selected-latent cells whose fire / no-fire state is the same at both precisions. */
    agreement: number;
    /** Responses where at least one selected latent changes state. */
    responsesChanged: number;
  };
  margins: { spearman: number; maxAbsDiff: number; meanAbsDiff: number };
  decisions: {
    threshold: number;
    keepReference: number;
    keepChecked: number;
    flips: number;
    /** Indices (into the pairs given) of the first flipped pairs, at most 20. */
    flipped: number[];
  };
  skipped: SkippedPair[];
  seconds: number;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 && bb === 0) return 1;
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/** ‖b − a‖ / ‖a‖ (0 when both are zero). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (b[i] - a[i]) ** 2;
    n += a[i] * a[i];
  }
  return d === 0 ? 0 : n === 0 ? Infinity : Math.sqrt(d / n);
}

/** Which of the selected latents fire (activation > 0) in a sparse latent row. */
function firing(row: { idx: Int32Array; val: Float32Array }, selected: Set<number>): Set<number> {
  const s = new Set<number>();
  for (let j = 0; j < row.idx.length; j++) if (row.val[j] > 0 && selected.has(row.idx[j])) s.add(row.idx[j]);
  return s;
}

export async function precisionCheck(req: PrecisionCheckRequest): Promise<PrecisionCheckReport> {
  const t0 = performance.now();
  const model = await readRewardModel(req.modelDir);
  const sae = await modelSae(model);
  const responses = responsesOf(req.pairs);
  const run = (precision: Precision) =>
    pooledFor(model, responses, {
      ...req,
      precision,
      sae,
      skipBadText: true,
      onProgress: req.onProgress ? (p) => req.onProgress!({ ...p, phase: `${precision}: ${p.phase}` }) : undefined,
    });
  const ref = await run('f32');
  const chk = await run(req.precision);
  // The tokenizer decides what is refused, not the precision: both runs reject the same responses.
  const skipped = skippedPairs(req.pairs, ref.rejected, req);
  const kept = keptPairs(req.pairs.length, skipped);
  const H = model.manifest.backbone.hiddenSize;
  const [sRef, sChk] = [await scoreRepresentations(model, ref.table.z, ref.table.n, req), await scoreRepresentations(model, chk.table.z, chk.table.n, req)];

  const selected = new Set(model.manifest.selected.map((s) => s.index));
  let relMax = 0;
  let cosSum = 0;
  let cosMin = Infinity;
  let minResponse = -1;
  let jacSum = 0;
  let agreeCells = 0;
  let changed = 0;
  const rows = kept.flatMap((i) => [2 * i, 2 * i + 1]);
  for (const r of rows) {
    const [za, zb] = [ref.table.z.subarray(r * H, (r + 1) * H), chk.table.z.subarray(r * H, (r + 1) * H)];
    const c = cosine(za, zb);
    relMax = Math.max(relMax, relativeError(za, zb));
    cosSum += c;
    if (c < cosMin) [cosMin, minResponse] = [c, r];
    const a = firing(ref.table.latents[r], selected);
    const b = firing(chk.table.latents[r], selected);
    let both = 0;
    for (const x of a) if (b.has(x)) both++;
    const union = a.size + b.size - both;
    jacSum += union === 0 ? 1 : both / union;
    agreeCells += selected.size - (union - both);
    if (union !== both) changed++;
  }

  const tau = req.threshold ?? 0;
  const mRef = kept.map((i) => sRef[2 * i] - sRef[2 * i + 1]);
  const mChk = kept.map((i) => sChk[2 * i] - sChk[2 * i + 1]);
  const flipped: number[] = [];
  let flips = 0;
  let maxAbs = 0;
  let sumAbs = 0;
  kept.forEach((pi, j) => {
    const d = Math.abs(mRef[j] - mChk[j]);
    maxAbs = Math.max(maxAbs, d);
    sumAbs += d;
    if (mRef[j] >= tau !== mChk[j] >= tau) {
      flips++;
      if (flipped.length < 20) flipped.push(pi);
    }
  });
  const n = rows.length;
  return {
    precision: req.precision,
    reference: 'f32',
    pairs: kept.length,
    responses: n,
    cosine: { mean: n ? cosSum / n : NaN, min: n ? cosMin : NaN, minResponse },
    zRelError: relMax,
    latents: { selected: selected.size, jaccardMean: n ? jacSum / n : NaN, agreement: n ? agreeCells / (n * selected.size) : NaN, responsesChanged: changed },
    margins: { spearman: spearman(mRef, mChk), maxAbsDiff: maxAbs, meanAbsDiff: kept.length ? sumAbs / kept.length : NaN },
    decisions: { threshold: tau, keepReference: mRef.filter((m) => m >= tau).length, keepChecked: mChk.filter((m) => m >= tau).length, flips, flipped },
    skipped,
    seconds: (performance.now() - t0) / 1000,
  };
}
