/**
 * The SparseRM workflows, shared by the CLI, the HTTP/IPC API and the demo pipeline (docs/sparserm.md):
 * train a reward model on pairs, score pairs, explain a response or a pair, evaluate with baselines, list
 * token-level latents; plus store-backed variants (dataset in, scoring run out).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { openBackbone, loadTokenizer, parsePrecision, readModelConfig, type Precision } from '../backbone';
import { InputError, throwIfAborted } from '../errors';
import { rewardModelsHome } from '../paths';
import type { EpRequest } from '../runtime/ort';
import { loadSae, SaeEncoder, checkSaeForBackbone, type SaeEncoding } from '../sae';
import type { NewScore, Store } from '../store';
import { extractFeatures, type Pooling, type Progress } from './features';
import { resolveMaxTokens } from './length-policy';
import { controlStringsIn } from './prompt-encoding';
import { fitSparseRm, DEFAULT_FIT_OPTIONS, type FitOptions, type SplitMetrics } from './fit';
import { headParamCount, type Loss } from './head';
import { ATTRIBUTION_DESCRIPTION, MANIFEST_FORMAT, type RewardModelManifest } from './manifest';
import { accuracyStats, sigmoid, type AccuracyStats } from './metrics';
import { readRewardModel, writeRewardModel, type RewardModel } from './model-folder';
import { pairsHash, type PairInput } from './pairs-file';
import { registerRewardModel } from './registry';
import { recordSeenPrompts } from './seen-prompts';
import { decisionTrainingSet, type DecisionPoint, type LabelOptions } from './decision-labels';

import { keptPairs, modelSae, pairRefs, pairTruncation, pooledFor, responsesOf, SCORE_CHUNK_ROWS, scoresAndContributions, scoringChunks, skipMessage, skippedPairs, truncatedCount, type JobHooks, type PairTruncation, type SkippedPair } from './pair-jobs';

export type { PairInput } from './pairs-file';
export { allContributions, scoreRepresentations, skipMessage, type JobHooks, type PairTruncation, type SkippedPair } from './pair-jobs';
export type { Pooling, Progress } from './features';

export interface BackboneSpec {
  checkpoint: string;
  layer: number;
  /** params.npz file, SAELens folder or Llama Scope folder. */
  sae: string;
  /** Llama Scope only: 'saelens' (default) or 'authors' (sae/llama-scope.ts); recorded in the manifest. */
  saeEncoding?: SaeEncoding;
  ep?: EpRequest;
  /** Backbone precision (default f32): int8 / int4 use less memory and run faster on CPU; recorded in the manifest. */
  precision?: Precision;
}

export interface TrainRequest extends BackboneSpec, JobHooks {
  pairs: PairInput[];
  /** Output folder (default: <data home>/reward-models/<id>). Must not exist or be empty. */
  outDir?: string;
  k?: number;
  loss?: Loss;
  margin?: number;
  pooling?: Pooling;
  seed?: number;
  hidden?: number;
  lr?: number;
  batchSize?: number;
  maxEpochs?: number;
  patience?: number;
  valFraction?: number;
  testFraction?: number;
  /** Recorded in the manifest (the store dataset's name). */
  datasetName?: string;
  /** Neuronpedia ids the latent labels are keyed by (recorded so explanations can show labels). */
  labelSet?: { modelId: string; saeId: string };
  /** Max tokens per response sequence (default 1,024; never above the checkpoint's max_position_embeddings). */
  maxTokens?: number;
  /** Trained on the curators' decisions: the history point, recorded in the manifest (decision-labels.ts). */
  decisionPoint?: DecisionPoint;
}

export interface TrainResult {
  modelDir: string;
  manifest: RewardModelManifest;
  features: { responsesComputed: number; responsesCached: number; tokensComputed: number };
  /** Pairs left out (text the tokenizer refuses); the model is trained on the rest. */
  skipped: SkippedPair[];
  /** Pairs (of those trained on) with at least one response cut to the max-token setting. */
  truncated: number;
  /** Control-token strings in the trained pairs' text, encoded as ordinary text (per response sequence). */
  controlStrings: number;
}

/**
 * sha256 of the checkpoint's small files (config, tokenizer, chat template). The weights are covered by the
 * content hash (exactly the tensors resid_post(L) depends on), which scoring checks.
 */
function smallFileHashes(checkpoint: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors.index.json']) {
    const p = path.join(checkpoint, f);
    if (fs.existsSync(p)) out[f] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

const nullable = (m: SplitMetrics) => ({ n: m.n, accuracy: Number.isFinite(m.accuracy) ? m.accuracy : null, auc: Number.isFinite(m.auc) ? m.auc : null });

export async function trainRewardModel(req: TrainRequest): Promise<TrainResult> {
  if (req.pairs.length < 2) throw new InputError({ field: 'pairs', expected: 'at least 2 preference pairs to train on', got: String(req.pairs.length) });
  const started = Date.now();
  const sae = await loadSae(req.sae, { encoding: req.saeEncoding });
  const pooling = req.pooling ?? 'mean';
  const feats = await extractFeatures(responsesOf(req.pairs), {
    checkpoint: req.checkpoint,
    layer: req.layer,
    sae,
    pooling,
    ep: req.ep,
    precision: req.precision,
    cacheRoot: req.cacheRoot,
    signal: req.signal,
    onProgress: req.onProgress,
    onWarning: req.onWarning,
    worker: req.worker,
    skipBadText: true,
    maxTokens: req.maxTokens,
    prefixShare: req.prefixShare,
  });
  throwIfAborted(req.signal);
  const skipped = skippedPairs(req.pairs, feats.rejected, req);
  const kept = keptPairs(req.pairs.length, skipped);
  if (kept.length < 2) {
    throw new InputError({ field: 'pairs', expected: 'at least 2 preference pairs the tokenizer accepts', got: `${kept.length} of ${req.pairs.length}${skipped[0] ? ` (${skipMessage(skipped[0])})` : ''}` });
  }
  const opts: FitOptions = {
    ...DEFAULT_FIT_OPTIONS,
    ...Object.fromEntries(
      Object.entries({
        k: req.k, loss: req.loss, margin: req.margin, hidden: req.hidden, lr: req.lr, batchSize: req.batchSize,
        maxEpochs: req.maxEpochs, patience: req.patience, seed: req.seed, valFraction: req.valFraction, testFraction: req.testFraction,
      }).filter(([, v]) => v !== undefined),
    ),
    signal: req.signal,
    onEpoch: (e) => req.onProgress?.({ phase: 'train', done: e.epoch, total: opts.maxEpochs, stats: { ...e } }),
  };
  if (opts.k > Math.floor(sae.dSae / 2)) {
    req.onWarning?.(`K = ${opts.k} exceeds half the SAE's ${sae.dSae} latents; using K = ${Math.floor(sae.dSae / 2)} per side so the sides do not overlap`);
  }
  const fit = await fitSparseRm(feats.table, pairRefs(req.pairs, kept), sae, opts);
  const truncated = truncatedCount(feats.truncation, kept);
  const counts = { train: 0, val: 0, test: 0 };
  fit.splits.forEach((s) => counts[s]++);
  const dataHash = pairsHash(req.pairs);
  const created = new Date().toISOString();
  const id = `srm-${created.replace(/[-:T]/g, '').slice(0, 14)}-${crypto.createHash('sha256').update(dataHash + sae.hash + feats.backboneHash + JSON.stringify([opts.k, opts.loss, opts.seed, pooling, req.layer])).digest('hex').slice(0, 8)}`;
  const manifest: RewardModelManifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    id,
    created,
    backbone: { checkpoint: path.resolve(req.checkpoint), contentHash: feats.backboneHash, layer: req.layer, hiddenSize: feats.table.hiddenSize, files: smallFileHashes(req.checkpoint), precision: parsePrecision(req.precision) },
    sae: { id: sae.id, hash: sae.hash, path: path.resolve(sae.path), format: sae.format, ...(sae.encoding ? { encoding: sae.encoding } : {}), dSae: sae.dSae, hookLayer: sae.hookLayer, ...(req.labelSet ? { labels: req.labelSet } : {}) },
    pooling,
    maxTokens: feats.maxTokens,
    k: fit.selected.length / 2,
    selected: fit.selected,
    head: {
      onnx: 'head.onnx',
      weights: 'head.npz',
      input: 'z',
      output: 'score',
      inDim: fit.head.inDim,
      hidden: fit.head.hidden,
      activation: 'relu',
      trainableParams: headParamCount(fit.head.inDim, fit.head.hidden),
      standardization: 'per-feature mean/std of the training responses, inside head.onnx and head.npz',
    },
    training: {
      loss: opts.loss,
      margin: opts.margin,
      optimizer: 'adam',
      lr: opts.lr,
      batchSize: opts.batchSize,
      maxEpochs: opts.maxEpochs,
      patience: opts.patience,
      epochsRun: fit.epochsRun,
      bestEpoch: fit.bestEpoch,
      seed: opts.seed,
      splitBy: 'prompt',
      valFraction: opts.valFraction,
      testFraction: opts.testFraction,
      pairs: counts,
      dataHash,
      dataset: req.datasetName,
      prompts: recordSeenPrompts(kept.map((i) => req.pairs[i].prompt), fit.splits),
      ...(skipped.length ? { skippedPairs: skipped.length } : {}),
      ...(truncated ? { truncatedPairs: truncated } : {}),
      ...(req.decisionPoint ? { decisions: req.decisionPoint } : {}),
      seconds: (Date.now() - started) / 1000,
    },
    metrics: { train: nullable(fit.metrics.train), val: nullable(fit.metrics.val), test: nullable(fit.metrics.test) },
    attribution: { method: 'gradient-x-input-fixed-relu-pattern', description: ATTRIBUTION_DESCRIPTION },
    tokenActivations: 'on-demand',
  };
  const modelDir = path.resolve(req.outDir ?? path.join(rewardModelsHome(), id));
  await writeRewardModel(modelDir, { manifest, head: fit.head, directions: fit.directions, curve: fit.curve });
  return {
    modelDir,
    manifest,
    features: { responsesComputed: feats.responsesComputed, responsesCached: feats.responsesCached, tokensComputed: feats.tokensComputed },
    skipped,
    truncated,
    controlStrings: controlStringsIn(feats.controlStrings, kept),
  };
}

// ------------------------------------------------------------------------------------------------------------
// scoring

export interface PairScore {
  index: number;
  id?: string;
  source?: string;
  chosen: number;
  rejected: number;
  margin: number;
  /** P(chosen ≻ rejected) = σ(margin). */
  pChosen: number;
  /** Present when the length policy cut the pair's prompt or a response. */
  truncation?: PairTruncation;
  /** Present when the pair's text holds control-token strings (encoded as ordinary text; per response sequence). */
  controlStrings?: number;
}

export interface ScoreRequest extends JobHooks {
  modelDir: string;
  pairs: PairInput[];
  /** Override the checkpoint folder recorded in the manifest (e.g. the model moved machines). */
  checkpoint?: string;
  ep?: EpRequest;
  /** Backbone precision (default: the one the model was trained at; another one warns). */
  precision?: Precision;
}

/** Scores every pair the tokenizer accepts; the others are reported through onSkip / onWarning and left out. */
export async function scorePairs(req: ScoreRequest): Promise<PairScore[]> {
  const model = await readRewardModel(req.modelDir);
  const s = new Float32Array(2 * req.pairs.length);
  const feats = await pooledFor(model, responsesOf(req.pairs), { ...req, skipBadText: true, zChunks: scoringChunks(model, s, { worker: req.worker }) });
  const skipped = skippedPairs(req.pairs, feats.rejected, req);
  return keptPairs(req.pairs.length, skipped).map((i) => {
    const p = req.pairs[i];
    const margin = s[2 * i] - s[2 * i + 1];
    const truncation = pairTruncation(feats.truncation, i);
    const controlStrings = controlStringsIn(feats.controlStrings, [i]);
    return { index: i, id: p.id, source: p.source, chosen: s[2 * i], rejected: s[2 * i + 1], margin, pChosen: sigmoid(margin), ...(truncation ? { truncation } : {}), ...(controlStrings ? { controlStrings } : {}) };
  });
}

// ------------------------------------------------------------------------------------------------------------
// explanations

// Its own module: the exact per-latent and per-token decomposition, SAE firing apart, the pair's margin by latent.
export { explainResponse, explainPair, whyLine, type ExplainRequest, type LatentContribution, type LatentFiring, type MarginLatent, type PairExplanation, type ResponseExplanation } from './explain';


// ------------------------------------------------------------------------------------------------------------
// evaluation: its own module (held-out detection by prompt hashes, baselines on the same rows, intervals)

export { evaluateRewardModel, type EvalRequest, type EvalReport } from './evaluate';

// ------------------------------------------------------------------------------------------------------------
// token-level latents

export interface LatentsRequest extends BackboneSpec {
  worker?: boolean;
  ids?: number[];
  text?: string;
  top?: number;
  signal?: AbortSignal;
  onWarning?: (message: string) => void;
  /** At most this many tokens go through the backbone (default 1,024; ≤ max_position_embeddings); the rest is cut. */
  maxTokens?: number;
  /** How errors name the setting (the CLI passes '--max-tokens'). */
  maxTokensField?: string;
}

export interface LatentsResult {
  layer: number;
  ids: number[];
  /** Tokens cut from the end of a sequence longer than the max-token setting (absent when none). */
  truncated?: number;
  /** Per token (BOS included): [index, value] of every active latent (or the top N), largest first. */
  latents: Array<Array<[number, number]>>;
}

export async function extractLatents(req: LatentsRequest): Promise<LatentsResult> {
  if ((req.ids === undefined) === (req.text === undefined)) throw new InputError({ field: 'ids/text', expected: 'exactly one of --ids or --text' });
  const all = req.ids ?? (await loadTokenizer(req.checkpoint)).encodeText(req.text!);
  // Length policy: memory stays bounded for any input; a plain text has no prompt, so its end goes (BOS stays).
  const maxTokens = resolveMaxTokens(req.maxTokens, readModelConfig(req.checkpoint), path.join(req.checkpoint, 'config.json'), req.maxTokensField);
  const ids = all.length > maxTokens ? all.slice(0, maxTokens) : all;
  const truncated = all.length - ids.length;
  if (truncated) req.onWarning?.(`cut the last ${truncated} of ${all.length} tokens (max tokens ${maxTokens}): latents are for the first ${maxTokens}`);
  const sae = await loadSae(req.sae, { encoding: req.saeEncoding });
  const backbone = await openBackbone({ checkpoint: req.checkpoint, layer: req.layer, ep: req.ep, signal: req.signal, worker: req.worker });
  let hidden: Float32Array;
  try {
    const { warnings } = checkSaeForBackbone(sae, { checkpoint: req.checkpoint, hiddenSize: backbone.info.hiddenSize, layer: req.layer });
    warnings.forEach((w) => req.onWarning?.(w));
    [hidden] = await backbone.hidden([ids], { signal: req.signal });
  } finally {
    await backbone.close();
  }
  const enc = await SaeEncoder.open(sae, { ep: req.ep, worker: req.worker });
  try {
    return { layer: req.layer, ids, latents: await enc.encodeSparse(hidden, ids.length, { top: req.top, signal: req.signal }), ...(truncated ? { truncated } : {}) };
  } finally {
    await enc.close();
  }
}

// ------------------------------------------------------------------------------------------------------------
// store-backed workflows

/** All pairs of a store dataset (id order) as PairInput, with the store ids kept. */
export function datasetPairs(store: Store, dataset: string | number): { datasetId: number; name: string; pairs: PairInput[]; pairIds: number[] } {
  const ds = store.datasets.resolve(dataset);
  const pairs: PairInput[] = [];
  const pairIds: number[] = [];
  for (const p of store.pairs.iterate({ datasetId: ds.id })) {
    pairs.push({ id: p.externalId ?? String(p.id), prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, source: p.source ?? undefined });
    pairIds.push(p.id);
  }
  if (pairs.length === 0) throw new InputError({ field: 'dataset', expected: `a dataset with pairs`, got: `"${ds.name}" is empty` });
  return { datasetId: ds.id, name: ds.name, pairs, pairIds };
}

export interface ScoreDatasetRequest extends JobHooks {
  store: Store;
  dataset: string | number;
  modelDir: string;
  checkpoint?: string;
  ep?: EpRequest;
  /** Backbone precision (default: the one the model was trained at; another one warns). */
  precision?: Precision;
  /** Top latents by |contribution difference| stored per pair (score_latents + explanation_json). Default 8. */
  topLatents?: number;
}

/**
 * Scores every pair of a dataset into a new scoring run. Per pair it also stores the top latents by the
 * difference of their contributions (chosen − rejected), so the "latent" filter and the pair view work without
 * re-running anything; token-level firing stays on demand (explainPair).
 */
export async function scoreDatasetIntoStore(req: ScoreDatasetRequest): Promise<AccuracyStats & { runId: number; pairs: number; skipped: SkippedPair[]; truncated: number; controlStrings: number }> {
  const model = await readRewardModel(req.modelDir);
  const m = model.manifest;
  const { store } = req;
  const ds = datasetPairs(store, req.dataset);
  if (!store.models.rewardModel(m.id)) registerRewardModel(store, model.dir, m);
  const inDim = m.head.inDim;
  const s = new Float32Array(2 * ds.pairs.length);
  // Scores and exact contributions of every response from one projection per chunk, as z streams past.
  const contrib = new Float32Array(2 * ds.pairs.length * inDim);
  const feats = await pooledFor(model, responsesOf(ds.pairs), {
    ...req,
    skipBadText: true,
    zChunks: {
      rows: SCORE_CHUNK_ROWS,
      each: async (first, count, z) => {
        const r = await scoresAndContributions(model, z, count);
        s.set(r.scores, first);
        contrib.set(r.contributions, first * inDim);
      },
    },
  });
  // A pair whose text cannot be encoded is left unscored (and reported); the others are scored.
  const skipped = skippedPairs(ds.pairs, feats.rejected, req, ds.pairIds);
  const kept = keptPairs(ds.pairs.length, skipped);
  if (kept.length === 0) throw new InputError({ field: 'dataset', expected: 'pairs the tokenizer accepts', got: `none of ${ds.pairs.length} (${skipMessage(skipped[0])})` });
  const run = store.runs.create({ datasetId: ds.datasetId, rewardModelId: m.id, params: { modelDir: model.dir, pooling: m.pooling, layer: m.backbone.layer } });
  let correct = 0;
  let ties = 0;
  try {
    const top = req.topLatents ?? 8;
    const contributionsOf = (row: number) => contrib.subarray(row * inDim, (row + 1) * inDim);
    const batch: NewScore[] = [];
    for (const [k, i] of kept.entries()) {
      throwIfAborted(req.signal);
      const margin = s[2 * i] - s[2 * i + 1];
      if (margin > 0) correct++;
      else if (margin === 0) ties++;
      const cw = contributionsOf(2 * i);
      const cl = contributionsOf(2 * i + 1);
      const order = topByMagnitude(inDim, top, (c) => cw[c] - cl[c]);
      const latents = order.map((c) => ({ latent: m.selected[c].index, side: 'diff' as const, contribution: cw[c] - cl[c] }));
      const truncation = pairTruncation(feats.truncation, i);
      batch.push({
        pairId: ds.pairIds[i],
        scoreChosen: s[2 * i],
        scoreRejected: s[2 * i + 1],
        margin,
        pChosen: sigmoid(margin),
        explanation: { method: m.attribution.method, top: order.map((c) => ({ latent: m.selected[c].index, side: m.selected[c].side, chosen: cw[c], rejected: cl[c] })) },
        latents,
        ...(truncation ? { truncation } : {}),
      });
      if (batch.length >= 1000) store.runs.addScores(run.id, batch.splice(0));
      req.onProgress?.({ phase: 'store', done: k + 1, total: kept.length });
    }
    if (batch.length) store.runs.addScores(run.id, batch);
    store.runs.finish(run.id, 'done');
  } catch (err) {
    store.runs.finish(run.id, req.signal?.aborted ? 'cancelled' : 'failed');
    throw err;
  }
  return { runId: run.id, pairs: kept.length, ...accuracyStats(correct, ties, kept.length), skipped, truncated: truncatedCount(feats.truncation, kept), controlStrings: controlStringsIn(feats.controlStrings, kept) };
}

/**
 * Indices of the `top` largest |value(c)| for c < n, largest first, ties to the lower index — a bounded insertion
 * scan (O(n·top)) instead of sorting all 2K latents for each of 100k pairs.
 */
export function topByMagnitude(n: number, top: number, value: (c: number) => number): number[] {
  const idx: number[] = [];
  const mag: number[] = [];
  for (let c = 0; c < n; c++) {
    const v = Math.abs(value(c));
    if (idx.length === top && v <= mag[top - 1]) continue;
    let i = Math.min(idx.length, top - 1);
    if (idx.length < top) {
      idx.push(c);
      mag.push(v);
      i = idx.length - 1;
    }
    while (i > 0 && mag[i - 1] < v) {
      idx[i] = idx[i - 1];
      mag[i] = mag[i - 1];
      i--;
    }
    idx[i] = c;
    mag[i] = v;
  }
  return idx;
}

/** Trains on a store dataset and registers the model in the store. */
export async function trainOnDataset(req: Omit<TrainRequest, 'pairs'> & { store: Store; dataset: string | number; fromDecisions?: LabelOptions }): Promise<TrainResult> {
  // fromDecisions: the curators' decisions label the pairs (swaps flipped, drops and the hold-out left out).
  const dec = req.fromDecisions ? decisionTrainingSet(req.store, req.dataset, req.fromDecisions) : undefined;
  const ds = dec ?? datasetPairs(req.store, req.dataset);
  const res = await trainRewardModel({ ...req, pairs: ds.pairs, datasetName: ds.name, ...(dec ? { decisionPoint: dec.point } : {}) });
  registerRewardModel(req.store, res.modelDir, res.manifest);
  return res;
}

export { readRewardModel, type RewardModel } from './model-folder';
export { readPairsJsonl } from './pairs-file';
export { registerRewardModel, registerCheckpoint, registerSae } from './registry';
