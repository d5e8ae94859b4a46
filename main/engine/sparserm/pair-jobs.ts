/**
 * What every pair workflow (train, score, explain, evaluate) shares: job hooks and skip reports, the pair → response
 * rows of the feature table, a reward model's pooled features (backbone hash checked), its SAE, and head scoring.
 * Its own module so the workflows (service.ts, explain.ts, evaluate.ts) depend on it, not on each other.
 */
import path from 'node:path';

import { parsePrecision, type Precision } from '../backbone';
import { InputError } from '../errors';
import { createSession, type EpRequest } from '../runtime/ort';
import { loadSae, type Sae } from '../sae';
import { extractFeatures, type Progress, type RejectedResponse, type ZChunks } from './features';
import type { Truncation } from './length-policy';
import type { PairRef } from './fit';
import { standardize, toParamsT } from './head';
import { contributionsBatch, forwardScores, matmul, type HeadParamsT } from './head-graphs';
import { transpose } from './head-onnx';
import type { RewardModel } from './model-folder';
import type { PairInput } from './pairs-file';

export interface JobHooks {
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onWarning?: (message: string) => void;
  /** Root of the feature cache (default cacheDirs.features()). */
  cacheRoot?: string;
  /** Run backbone / SAE / scoring sessions in ORT worker threads so the caller's event loop stays responsive. */
  worker?: boolean;
  /** Each pair left out because its text cannot be encoded (default: reported through onWarning). */
  onSkip?: (s: SkippedPair) => void;
  /** Feature extraction runs a prompt shared by responses once (default true; features.ts, prefix-share.ts). */
  prefixShare?: boolean;
  /** Stream z in chunks instead of materialising the table (features.ts ExtractOptions.zChunks). */
  zChunks?: ZChunks;
}

/** A pair left out of a job (the rest go on): its position, ids, and what is wrong with it. */
export interface SkippedPair {
  /** 0-based index in the pairs given. */
  index: number;
  /** The pair's own id (PairInput.id), if any. */
  id?: string;
  /** The store's pair id (store-backed workflows). */
  pairId?: number;
  reason: string;
}

export function skipMessage(s: SkippedPair): string {
  const who = s.pairId !== undefined ? `pair ${s.pairId}` : `pair #${s.index}${s.id !== undefined ? ` (id ${s.id})` : ''}`;
  return `skipped ${who}: ${s.reason}`;
}

/** Pairs whose responses the tokenizer refused (a refused prompt fails both sides: reported once). */
export function skippedPairs(pairs: PairInput[], rejected: RejectedResponse[], hooks: Pick<JobHooks, 'onSkip' | 'onWarning'>, pairIds?: number[]): SkippedPair[] {
  const reasons = new Map<number, string[]>();
  for (const r of rejected) {
    const i = r.index >> 1;
    const where = r.field === 'prompt' ? 'prompt' : r.index % 2 === 0 ? 'chosen response' : 'rejected response';
    const reason = `${where}: expected ${r.expected}${r.got !== undefined ? `, got ${r.got}` : ''}`;
    const list = reasons.get(i) ?? [];
    if (!list.includes(reason)) list.push(reason);
    reasons.set(i, list);
  }
  const out = [...reasons.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, rs]): SkippedPair => ({ index, ...(pairs[index].id !== undefined ? { id: pairs[index].id } : {}), ...(pairIds ? { pairId: pairIds[index] } : {}), reason: rs.join('; ') }));
  for (const sp of out) (hooks.onSkip ? hooks.onSkip(sp) : hooks.onWarning?.(skipMessage(sp)));
  return out;
}

/** What the length policy cut from a pair's two sequences (a side is absent when it fit). */
export interface PairTruncation {
  chosen?: Truncation;
  rejected?: Truncation;
}

/** Pair i's truncation from the per-response list (rows 2i chosen, 2i + 1 rejected); undefined when nothing was cut. */
export function pairTruncation(truncation: Array<Truncation | undefined>, i: number): PairTruncation | undefined {
  const [c, r] = [truncation[2 * i], truncation[2 * i + 1]];
  return c || r ? { ...(c ? { chosen: c } : {}), ...(r ? { rejected: r } : {}) } : undefined;
}

/** How many of the given pairs had at least one side cut. */
export function truncatedCount(truncation: Array<Truncation | undefined>, indices: number[]): number {
  return indices.filter((i) => pairTruncation(truncation, i) !== undefined).length;
}

/** Indices of the pairs that were not skipped. */
export function keptPairs(n: number, skipped: SkippedPair[]): number[] {
  const bad = new Set(skipped.map((s) => s.index));
  return Array.from({ length: n }, (_, i) => i).filter((i) => !bad.has(i));
}

export function responsesOf(pairs: PairInput[]) {
  return pairs.flatMap((p) => [
    { prompt: p.prompt, response: p.chosen },
    { prompt: p.prompt, response: p.rejected },
  ]);
}

/** Feature-table rows of pairs (2i chosen, 2i + 1 rejected), for the given pair indices (default all). */
export function pairRefs(pairs: PairInput[], indices: number[] = pairs.map((_, i) => i)): PairRef[] {
  return indices.map((i) => ({ chosen: 2 * i, rejected: 2 * i + 1, prompt: pairs[i].prompt, source: pairs[i].source }));
}

/** Rows of z per streamed chunk when scoring (16,384 × 2304 floats = 151 MB, reused). */
export const SCORE_CHUNK_ROWS = 16384;

/**
 * zChunks that score each chunk with the head into `scores` (row order) and hand it to `also` (e.g. contributions):
 * scoring never materialises every response's z (features.ts ExtractOptions.zChunks).
 */
export function scoringChunks(model: RewardModel, scores: Float32Array, opts: { worker?: boolean } = {}, also?: ZChunks['each']): ZChunks {
  return {
    rows: SCORE_CHUNK_ROWS,
    each: async (first, count, z) => {
      scores.set(await scoreRepresentations(model, z, count, opts), first);
      await also?.(first, count, z);
    },
  };
}

/**
 * Scores for pooled representations z [n × hidden]. When the backbone is narrow (hidden·h < hidden·2K + 2K·h, e.g.
 * the demo kit) the projection and standardisation are folded into the first layer — W = Dᵀ diag(1/std) W1ᵀ,
 * b = b1 − W1 (mean/std), exact up to float rounding — and the folded head runs in ORT; otherwise head.onnx runs.
 */
export async function scoreRepresentations(model: RewardModel, z: Float32Array, n: number, opts: { worker?: boolean } = {}): Promise<Float32Array> {
  const H = model.manifest.backbone.hiddenSize;
  const { inDim: m, hidden: h } = model.head;
  if (H * h < H * m + m * h) return forwardScores(foldedHead(model), z, n);
  const session = await createSession(path.join(model.dir, model.manifest.head.onnx), { ep: 'cpu', worker: opts.worker });
  try {
    const out = new Float32Array(n);
    const chunk = 16384;
    for (let r = 0; r < n; r += chunk) {
      const k = Math.min(chunk, n - r);
      const res = await session.run({ z: { type: 'float32', data: z.subarray(r * H, (r + k) * H), dims: [k, H] } }, { outputs: ['score'] });
      out.set(res.score.data as Float32Array, r);
    }
    return out;
  } finally {
    await session.close();
  }
}

/** Exact per-latent contributions [n × 2K] for raw z rows (the batch form of `decompose`). */
export async function allContributions(model: RewardModel, z: Float32Array, n: number): Promise<Float32Array> {
  const { head } = model;
  return contributionsBatch(toParamsT(head), head.W1, await standardizedProjections(model, z, n), n);
}

/**
 * Scores and exact contributions of z rows from ONE projection z·Dᵀ (the costly GEMM: hidden × 2K per row), for
 * dataset scoring, which stores both; scoring alone goes through scoreRepresentations.
 */
export async function scoresAndContributions(model: RewardModel, z: Float32Array, n: number): Promise<{ scores: Float32Array; contributions: Float32Array }> {
  const { head } = model;
  const x = await standardizedProjections(model, z, n);
  const params = toParamsT(head);
  return { scores: await forwardScores(params, x, n), contributions: await contributionsBatch(params, head.W1, x, n) };
}

async function standardizedProjections(model: RewardModel, z: Float32Array, n: number): Promise<Float32Array> {
  const H = model.manifest.backbone.hiddenSize;
  const { head } = model;
  const p = await matmul(z, n, H, transpose(model.directions, head.inDim, H), head.inDim);
  return standardize(p, head.inDim, head.mean, head.std);
}

const folded = new WeakMap<RewardModel, HeadParamsT>();

function foldedHead(model: RewardModel): HeadParamsT {
  const cached = folded.get(model);
  if (cached) return cached;
  const H = model.manifest.backbone.hiddenSize;
  const { inDim: m, hidden: h, W1, b1, w2, b2, mean, std } = model.head;
  // A[c][u] = W1[u][c] / std[c]; W[i][u] = Σ_c D[c][i] · A[c][u]; b[u] = b1[u] − Σ_c A[c][u] · mean[c]
  const W = new Float64Array(H * h);
  const b = Float64Array.from(b1);
  const A = new Float64Array(h);
  for (let c = 0; c < m; c++) {
    for (let u = 0; u < h; u++) {
      A[u] = W1[u * m + c] / std[c];
      b[u] -= A[u] * mean[c];
    }
    for (let i = 0; i < H; i++) {
      const d = model.directions[c * H + i];
      if (d === 0) continue;
      const row = i * h;
      for (let u = 0; u < h; u++) W[row + u] += d * A[u];
    }
  }
  const p: HeadParamsT = { m: H, h, W1T: Float32Array.from(W), b1: Float32Array.from(b), w2, b2 };
  folded.set(model, p);
  return p;
}

export async function pooledFor(model: RewardModel, responses: Array<{ prompt: string; response: string }>, hooks: JobHooks & { checkpoint?: string; ep?: EpRequest; precision?: Precision; sae?: Sae; skipBadText?: boolean }) {
  const m = model.manifest;
  const checkpoint = hooks.checkpoint ?? m.backbone.checkpoint;
  // Features at another precision are other numbers than the head was trained on: allowed, but said.
  const trained = m.backbone.precision ?? 'f32';
  const precision = parsePrecision(hooks.precision ?? trained);
  if (precision !== trained) {
    hooks.onWarning?.(`reward model ${m.id} was trained on ${trained} backbone features; scoring at ${precision} (scores may differ slightly; \`precision-check\` measures how much)`);
  }
  const feats = await extractFeatures(responses, {
    checkpoint,
    layer: m.backbone.layer,
    sae: hooks.sae,
    pooling: m.pooling,
    ep: hooks.ep,
    precision,
    cacheRoot: hooks.cacheRoot,
    signal: hooks.signal,
    onProgress: hooks.onProgress,
    onWarning: hooks.onWarning,
    worker: hooks.worker,
    skipBadText: hooks.skipBadText,
    maxTokens: m.maxTokens,
    prefixShare: hooks.prefixShare,
    zChunks: hooks.zChunks,
  });
  if (feats.backboneHash !== m.backbone.contentHash) {
    throw new InputError({
      file: checkpoint,
      expected: `the backbone this reward model was trained on (content hash ${m.backbone.contentHash.slice(0, 16)}…, manifest ${path.join(model.dir, 'manifest.json')})`,
      got: `content hash ${feats.backboneHash.slice(0, 16)}…`,
    });
  }
  return feats;
}

export async function modelSae(model: RewardModel): Promise<Sae> {
  const m = model.manifest;
  const sae = await loadSae(m.sae.path, { encoding: m.sae.encoding });
  if (sae.hash !== m.sae.hash) throw new InputError({ file: m.sae.path, expected: `the SAE this model was trained with (hash ${m.sae.hash.slice(0, 16)}…)`, got: `hash ${sae.hash.slice(0, 16)}…` });
  return sae;
}
