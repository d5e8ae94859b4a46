/**
 * SparseRM training on already-extracted features (no backbone here): split by prompt → activation frequencies
 * on the training split → top-K selection → projection onto the selected decoder rows → reward head.
 * Everything the CLI/service does after feature extraction, so tests can drive it with synthetic features.
 */
import { latentStats, selectLatents, project, gatherDirections, type SelectedLatent, type SparseRow } from './selection';
import { trainHead, headScores, DEFAULT_HEAD_OPTIONS, type HeadWeights, type EpochStats, type Loss, type PairMatrix } from './head';
import { splitByPrompt, type SplitName } from './splits';
import { pairAccuracy, marginAuc } from './metrics';

/** One row per response: pooled representation z and its active SAE latents. */
export interface FeatureTable {
  hiddenSize: number;
  n: number;
  /** [n × hiddenSize] row-major. */
  z: Float32Array;
  latents: SparseRow[];
}

export interface PairRef {
  chosen: number;
  rejected: number;
  prompt: string;
  source?: string;
}

export interface FitOptions {
  k: number;
  loss: Loss;
  margin: number;
  hidden: number;
  lr: number;
  batchSize: number;
  maxEpochs: number;
  patience: number;
  seed: number;
  valFraction: number;
  testFraction: number;
  signal?: AbortSignal;
  onEpoch?: (e: EpochStats) => void;
}

export const DEFAULT_FIT_OPTIONS: FitOptions = {
  ...DEFAULT_HEAD_OPTIONS,
  k: 128,
  seed: 0,
  valFraction: 0.1,
  testFraction: 0.1,
};

export interface SplitMetrics {
  n: number;
  accuracy: number;
  auc: number;
}

export interface FitResult {
  selected: SelectedLatent[];
  /** [2K × hiddenSize]: decoder rows of the selected latents, positive first. */
  directions: Float32Array;
  head: HeadWeights;
  curve: EpochStats[];
  bestEpoch: number;
  epochsRun: number;
  splits: SplitName[];
  metrics: Record<SplitName, SplitMetrics>;
}

export interface SaeDecoder {
  dIn: number;
  dSae: number;
  W_dec: Float32Array;
}

/** Rows of `table.z` for the given response indices, stacked. */
export function gatherRows(table: FeatureTable, rows: number[]): Float32Array {
  const h = table.hiddenSize;
  const out = new Float32Array(rows.length * h);
  rows.forEach((r, i) => out.set(table.z.subarray(r * h, (r + 1) * h), i * h));
  return out;
}

/** Builds chosen/rejected input matrices for a featurizer (z rows → m features per response). */
export function pairMatrix(table: FeatureTable, pairs: PairRef[], featurize: (z: Float32Array, n: number) => Float32Array): PairMatrix {
  return {
    n: pairs.length,
    w: featurize(gatherRows(table, pairs.map((p) => p.chosen)), pairs.length),
    l: featurize(gatherRows(table, pairs.map((p) => p.rejected)), pairs.length),
  };
}

export function splitMetrics(margins: Float32Array | number[]): SplitMetrics {
  return { n: margins.length, accuracy: pairAccuracy(margins), auc: marginAuc(margins) };
}

export function fitSparseRm(table: FeatureTable, pairs: PairRef[], sae: SaeDecoder, options: Partial<FitOptions> = {}): FitResult {
  const opts = { ...DEFAULT_FIT_OPTIONS, ...options };
  if (sae.dIn !== table.hiddenSize) throw new Error(`fitSparseRm: SAE d_in ${sae.dIn} vs features ${table.hiddenSize}`);
  const splits = splitByPrompt(pairs.map((p) => p.prompt), opts);
  const bySplit = (s: SplitName) => pairs.filter((_, i) => splits[i] === s);
  const train = bySplit('train');
  const val = bySplit('val');
  const test = bySplit('test');
  if (train.length === 0) throw new Error('fitSparseRm: no training pairs after the split');

  const stats = latentStats(sae.dSae, train.map((p) => table.latents[p.chosen]), train.map((p) => table.latents[p.rejected]));
  const selected = selectLatents(stats, opts.k);
  const directions = gatherDirections(sae.W_dec, sae.dIn, selected.map((s) => s.index));
  const m = selected.length;
  const featurize = (z: Float32Array, n: number) => project(z, n, table.hiddenSize, directions, m);

  const res = trainHead(pairMatrix(table, train, featurize), val.length ? pairMatrix(table, val, featurize) : undefined, m, opts);
  const metricsFor = (ps: PairRef[]): SplitMetrics => {
    if (ps.length === 0) return { n: 0, accuracy: NaN, auc: NaN };
    const pm = pairMatrix(table, ps, featurize);
    const sw = headScores(res.weights, pm.w, pm.n);
    const sl = headScores(res.weights, pm.l, pm.n);
    return splitMetrics(sw.map((v, i) => v - sl[i]));
  };
  return {
    selected,
    directions,
    head: res.weights,
    curve: res.curve,
    bestEpoch: res.bestEpoch,
    epochsRun: res.epochsRun,
    splits,
    metrics: { train: metricsFor(train), val: metricsFor(val), test: metricsFor(test) },
  };
}
