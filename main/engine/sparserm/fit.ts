/**
 * SparseRM training on already-extracted features (no backbone here): split by prompt → activation frequencies
 * on the training split → top-K selection → projection onto the selected decoder rows → reward head.
 * Everything the CLI/service does after feature extraction, so tests can drive it with synthetic features.
 */
import { InputError } from '../errors';
import { latentStats, selectLatents, gatherDirections, type SelectedLatent, type SparseRow } from './selection';
import { trainHead, headScoresOrt, DEFAULT_HEAD_OPTIONS, type HeadWeights, type EpochStats, type PairMatrix, type TrainHeadOptions } from './head';
import { splitByPrompt, type SplitName } from './splits';
import { pairAccuracy, marginAuc, type AccuracyStats } from './metrics';
import { matmul } from './head-graphs';
import { transpose } from './head-onnx';

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

/** The head's own options plus what selection and the splits need. */
export interface FitOptions extends TrainHeadOptions {
  k: number;
  valFraction: number;
  testFraction: number;
}

export const DEFAULT_FIT_OPTIONS: FitOptions = {
  ...DEFAULT_HEAD_OPTIONS,
  k: 128,
  seed: 0,
  valFraction: 0.1,
  testFraction: 0.1,
};

/** Accuracy (n, correct, ties, 95 % Wilson interval) and ROC AUC of the margins of one split. */
export interface SplitMetrics extends AccuracyStats {
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
export type Featurize = (z: Float32Array, n: number) => Promise<Float32Array>;

export async function pairMatrix(table: FeatureTable, pairs: PairRef[], featurize: Featurize): Promise<PairMatrix> {
  return {
    n: pairs.length,
    w: await featurize(gatherRows(table, pairs.map((p) => p.chosen)), pairs.length),
    l: await featurize(gatherRows(table, pairs.map((p) => p.rejected)), pairs.length),
  };
}

/** p = z · Dᵀ for m directions D [m × hiddenSize] (ONNX Runtime GEMM). */
export function projector(directions: Float32Array, hiddenSize: number, m: number): Featurize {
  const dT = transpose(directions, m, hiddenSize);
  return (z, n) => matmul(z, n, hiddenSize, dT, m);
}

export function splitMetrics(margins: Float32Array | number[]): SplitMetrics {
  return { ...pairAccuracy(margins), auc: marginAuc(margins) };
}

export async function fitSparseRm(table: FeatureTable, pairs: PairRef[], sae: SaeDecoder, options: Partial<FitOptions> = {}): Promise<FitResult> {
  const opts = { ...DEFAULT_FIT_OPTIONS, ...options };
  if (sae.dIn !== table.hiddenSize) throw new Error(`fitSparseRm: SAE d_in ${sae.dIn} vs features ${table.hiddenSize}`);
  const splits = splitByPrompt(pairs.map((p) => p.prompt), opts);
  const bySplit = (s: SplitName) => pairs.filter((_, i) => splits[i] === s);
  const train = bySplit('train');
  const val = bySplit('val');
  const test = bySplit('test');
  if (train.length === 0) {
    throw new InputError({
      field: 'pairs',
      expected: `enough distinct prompts that a training split remains (pairs are split by prompt; ${new Set(pairs.map((p) => p.prompt.trim())).size} distinct prompt(s) here) — add data or lower the val/test fractions`,
      got: `${pairs.length} pair(s), all in val/test`,
    });
  }

  const stats = latentStats(sae.dSae, train.map((p) => table.latents[p.chosen]), train.map((p) => table.latents[p.rejected]));
  const selected = selectLatents(stats, opts.k);
  const directions = gatherDirections(sae.W_dec, sae.dIn, selected.map((s) => s.index));
  const m = selected.length;
  const featurize = projector(directions, table.hiddenSize, m);

  const trainM = await pairMatrix(table, train, featurize);
  const valM = val.length ? await pairMatrix(table, val, featurize) : undefined;
  const res = await trainHead(trainM, valM, m, opts);
  const metricsFor = async (ps: PairRef[], pm?: PairMatrix): Promise<SplitMetrics> => {
    if (ps.length === 0) return splitMetrics([]);
    pm ??= await pairMatrix(table, ps, featurize);
    const sw = await headScoresOrt(res.weights, pm.w, pm.n);
    const sl = await headScoresOrt(res.weights, pm.l, pm.n);
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
    metrics: { train: await metricsFor(train, trainM), val: await metricsFor(val, valM), test: await metricsFor(test) },
  };
}
