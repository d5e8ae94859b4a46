/**
 * The reward head (method.md step 6): x = (p − mean) / std, s = w2 · relu(W1 x + b1) + b2, trained on pairs with
 * the margin loss max(0, γ − (s_w − s_l)) or Bradley–Terry −log σ(s_w − s_l); Adam; early stopping on the
 * validation loss (best epoch restored); fixed seed. The optimiser is hand-written (the head is ~132k parameters);
 * the GEMMs of forward/backward run as ONNX graphs in ONNX Runtime (head-graphs.ts), which is what makes
 * 1,000 pairs train in well under 2 s on 2 cores. The TypeScript forward below serves single-response
 * explanations, where it is exact and cheaper than a session call.
 */
import { CancelledError } from '../errors';
import { mulberry32, shuffle } from './rng';
import { pairGrad, trainStep, newAdamState, forwardScores, type HeadParamsT } from './head-graphs';

export type Loss = 'margin' | 'bt';

export interface HeadWeights {
  inDim: number;
  hidden: number;
  /** [hidden × inDim] row-major. */
  W1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: number;
  /** Feature standardisation fitted on the training responses (stored with the head). */
  mean: Float32Array;
  std: Float32Array;
}

export interface TrainHeadOptions {
  loss: Loss;
  /** γ of the margin loss. */
  margin: number;
  hidden: number;
  lr: number;
  batchSize: number;
  maxEpochs: number;
  patience: number;
  seed: number;
  signal?: AbortSignal;
  onEpoch?: (e: EpochStats) => void;
}

export const DEFAULT_HEAD_OPTIONS: Omit<TrainHeadOptions, 'seed'> = {
  loss: 'margin',
  margin: 1,
  hidden: 512,
  lr: 1e-3,
  batchSize: 64,
  maxEpochs: 40,
  patience: 5,
};

/** Pair inputs: row i of `w` is the chosen response's features, row i of `l` the rejected one's. */
export interface PairMatrix {
  n: number;
  w: Float32Array;
  l: Float32Array;
}

export interface EpochStats {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainHeadResult {
  weights: HeadWeights;
  curve: EpochStats[];
  bestEpoch: number;
  epochsRun: number;
}

export function headParamCount(inDim: number, hidden: number): number {
  return inDim * hidden + hidden + hidden + 1;
}

export function fitStandardizer(rows: Float32Array[], inDim: number): { mean: Float32Array; std: Float32Array } {
  const mean = new Float64Array(inDim);
  const sq = new Float64Array(inDim);
  let n = 0;
  for (const x of rows) {
    const m = x.length / inDim;
    n += m;
    for (let r = 0; r < m; r++)
      for (let i = 0; i < inDim; i++) {
        const v = x[r * inDim + i];
        mean[i] += v;
        sq[i] += v * v;
      }
  }
  const outMean = new Float32Array(inDim);
  const outStd = new Float32Array(inDim);
  for (let i = 0; i < inDim; i++) {
    const mu = n ? mean[i] / n : 0;
    const variance = n ? Math.max(sq[i] / n - mu * mu, 0) : 0;
    outMean[i] = mu;
    // A constant feature (e.g. a latent direction orthogonal to all data) must not blow up: std 1 leaves it at 0.
    outStd[i] = Math.sqrt(variance) > 1e-6 ? Math.sqrt(variance) : 1;
  }
  return { mean: outMean, std: outStd };
}

export function standardize(x: Float32Array, inDim: number, mean: Float32Array, std: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const i = k % inDim;
    out[k] = (x[k] - mean[i]) / std[i];
  }
  return out;
}

/** Scores for already-standardised rows; `hiddenOut` (optional) receives the post-ReLU activations. */
function forwardRow(wt: HeadWeights, x: Float32Array, xOff: number, h: Float32Array): number {
  const { inDim, hidden, W1, b1, w2 } = wt;
  let s = wt.b2;
  for (let u = 0; u < hidden; u++) {
    let a = b1[u];
    const base = u * inDim;
    for (let i = 0; i < inDim; i++) a += W1[base + i] * x[xOff + i];
    const hu = a > 0 ? a : 0;
    h[u] = hu;
    s += w2[u] * hu;
  }
  return s;
}

/** Scores for raw (unstandardised) feature rows. */
export function headScores(wt: HeadWeights, raw: Float32Array, n: number): Float32Array {
  const x = standardize(raw, wt.inDim, wt.mean, wt.std);
  const h = new Float32Array(wt.hidden);
  const out = new Float32Array(n);
  for (let r = 0; r < n; r++) out[r] = forwardRow(wt, x, r * wt.inDim, h);
  return out;
}

export function toParamsT(wt: HeadWeights): HeadParamsT {
  return { m: wt.inDim, h: wt.hidden, W1T: transposeMat(wt.W1, wt.hidden, wt.inDim), b1: wt.b1, w2: wt.w2, b2: wt.b2 };
}

function transposeMat(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** Scores for raw (unstandardised) feature rows, computed by ONNX Runtime (use for many rows). */
export async function headScoresOrt(wt: HeadWeights, raw: Float32Array, n: number): Promise<Float32Array> {
  return forwardScores(toParamsT(wt), standardize(raw, wt.inDim, wt.mean, wt.std), n);
}

/**
 * Minibatch training. Gradients come from an ONNX graph (head-graphs.ts); Adam runs here. Early stopping watches
 * the validation loss (the training loss when there is no validation split) and restores the best epoch.
 */
export async function trainHead(train: PairMatrix, val: PairMatrix | undefined, inDim: number, opts: TrainHeadOptions): Promise<TrainHeadResult> {
  const { hidden, lr, batchSize, loss, margin } = opts;
  const rand = mulberry32(opts.seed);
  const { mean, std } = fitStandardizer([train.w, train.l], inDim);
  const tr = { n: train.n, w: standardize(train.w, inDim, mean, std), l: standardize(train.l, inDim, mean, std) };
  const va = val && val.n > 0 ? { n: val.n, w: standardize(val.w, inDim, mean, std), l: standardize(val.l, inDim, mean, std) } : undefined;

  // He-uniform for the ReLU layer, Glorot-uniform for the output; drawn in W1 [hidden × inDim] order.
  const lim1 = Math.sqrt(6 / inDim);
  const lim2 = Math.sqrt(6 / (hidden + 1));
  const W1 = Float32Array.from({ length: hidden * inDim }, () => (rand() * 2 - 1) * lim1);
  const p: HeadParamsT = {
    m: inDim,
    h: hidden,
    W1T: transposeMat(W1, hidden, inDim),
    b1: new Float32Array(hidden),
    w2: Float32Array.from({ length: hidden }, () => (rand() * 2 - 1) * lim2),
    b2: 0,
  };
  const adam = newAdamState(p);

  const order = Array.from({ length: tr.n }, (_, i) => i);
  const bw = new Float32Array(batchSize * inDim);
  const bl = new Float32Array(batchSize * inDim);
  const curve: EpochStats[] = [];
  let best: { loss: number; epoch: number; W1T: Float32Array; b1: Float32Array; w2: Float32Array } | undefined;
  let sinceBest = 0;
  let epochsRun = 0;

  for (let epoch = 1; epoch <= opts.maxEpochs; epoch++) {
    if (opts.signal?.aborted) throw new CancelledError();
    shuffle(order, rand);
    let epochLoss = 0;
    let epochCorrect = 0;
    for (let b0 = 0; b0 < tr.n; b0 += batchSize) {
      const n = Math.min(tr.n, b0 + batchSize) - b0;
      for (let t = 0; t < n; t++) {
        const i = order[b0 + t];
        bw.set(tr.w.subarray(i * inDim, (i + 1) * inDim), t * inDim);
        bl.set(tr.l.subarray(i * inDim, (i + 1) * inDim), t * inDim);
      }
      const r = await trainStep(loss, margin, lr, p, adam, bw.subarray(0, n * inDim), bl.subarray(0, n * inDim), n);
      epochLoss += r.lossSum;
      epochCorrect += r.correct;
      // b2 gets no gradient from a pairwise loss (it cancels in s_w − s_l); it stays 0.
    }
    epochsRun = epoch;
    const stats: EpochStats = { epoch, trainLoss: tr.n ? epochLoss / tr.n : 0, trainAccuracy: tr.n ? epochCorrect / tr.n : 0 };
    if (va) {
      const r = await pairGrad(loss, margin, p, va.w, va.l, va.n);
      stats.valLoss = r.lossSum / va.n;
      stats.valAccuracy = r.correct / va.n;
    }
    curve.push(stats);
    opts.onEpoch?.(stats);
    const watched = stats.valLoss ?? stats.trainLoss;
    if (!best || watched < best.loss - 1e-7) {
      best = { loss: watched, epoch, W1T: p.W1T.slice(), b1: p.b1.slice(), w2: p.w2.slice() };
      sinceBest = 0;
    } else if (++sinceBest >= opts.patience) {
      break;
    }
    if (watched === 0) break; // every pair beyond the margin: nothing left to learn
  }
  if (best) {
    p.W1T.set(best.W1T);
    p.b1.set(best.b1);
    p.w2.set(best.w2);
  }
  const weights: HeadWeights = { inDim, hidden, W1: transposeMat(p.W1T, inDim, hidden), b1: p.b1, w2: p.w2, b2: p.b2, mean, std };
  return { weights, curve, bestEpoch: best?.epoch ?? 0, epochsRun };
}

/**
 * Exact linear decomposition of one response's score with its ReLU pattern fixed (see docs/sparserm.md):
 * s = Σ_j x_j g_j + bias, g = W1ᵀ (a ⊙ w2), bias = w2 · (a ⊙ b1) + b2, x the standardised projection.
 */
export function decompose(wt: HeadWeights, raw: Float32Array): { score: number; bias: number; contributions: Float32Array; x: Float32Array } {
  const x = standardize(raw, wt.inDim, wt.mean, wt.std);
  const h = new Float32Array(wt.hidden);
  const score = forwardRow(wt, x, 0, h);
  const g = new Float64Array(wt.inDim);
  let bias = wt.b2;
  for (let u = 0; u < wt.hidden; u++) {
    if (h[u] <= 0) continue;
    bias += wt.w2[u] * wt.b1[u];
    const base = u * wt.inDim;
    for (let i = 0; i < wt.inDim; i++) g[i] += wt.w2[u] * wt.W1[base + i];
  }
  const contributions = new Float32Array(wt.inDim);
  for (let i = 0; i < wt.inDim; i++) contributions[i] = x[i] * g[i];
  return { score, bias, contributions, x };
}
