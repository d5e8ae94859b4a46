/**
 * The reward head (method.md step 6): x = (p − mean) / std, s = w2 · relu(W1 x + b1) + b2, trained on pairs with
 * the margin loss max(0, γ − (s_w − s_l)) or Bradley–Terry −log σ(s_w − s_l); Adam; early stopping on the
 * validation loss (best epoch restored); fixed seed. Hand-written on Float32Arrays: the head is ~132k parameters,
 * and a library would cost more than it saves. Loops run over contiguous rows; backward skips inactive ReLUs.
 */
import { CancelledError } from '../errors';
import { mulberry32, shuffle } from './rng';

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
  batchSize: 32,
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

/** dL/d(s_w − s_l) for one pair, and the loss. */
function pairGrad(loss: Loss, margin: number, d: number): { loss: number; g: number } {
  if (loss === 'margin') {
    const v = margin - d;
    return v > 0 ? { loss: v, g: -1 } : { loss: 0, g: 0 };
  }
  // −log σ(d) = softplus(−d), computed stably; its derivative is −σ(−d).
  const lossV = d > 0 ? Math.log1p(Math.exp(-d)) : -d + Math.log1p(Math.exp(d));
  return { loss: lossV, g: -1 / (1 + Math.exp(d)) };
}

function evalPairs(wt: HeadWeights, xs: { w: Float32Array; l: Float32Array; n: number }, loss: Loss, margin: number): { loss: number; accuracy: number } {
  const h = new Float32Array(wt.hidden);
  let total = 0;
  let correct = 0;
  for (let i = 0; i < xs.n; i++) {
    const d = forwardRow(wt, xs.w, i * wt.inDim, h) - forwardRow(wt, xs.l, i * wt.inDim, h);
    total += pairGrad(loss, margin, d).loss;
    if (d > 0) correct++;
  }
  return { loss: xs.n ? total / xs.n : 0, accuracy: xs.n ? correct / xs.n : 0 };
}

export function trainHead(train: PairMatrix, val: PairMatrix | undefined, inDim: number, opts: TrainHeadOptions): TrainHeadResult {
  const { hidden, lr, batchSize, loss, margin } = opts;
  const rand = mulberry32(opts.seed);
  const { mean, std } = fitStandardizer([train.w, train.l], inDim);
  const tr = { n: train.n, w: standardize(train.w, inDim, mean, std), l: standardize(train.l, inDim, mean, std) };
  const va = val && val.n > 0 ? { n: val.n, w: standardize(val.w, inDim, mean, std), l: standardize(val.l, inDim, mean, std) } : undefined;

  // He-uniform for the ReLU layer, Glorot-uniform for the output.
  const lim1 = Math.sqrt(6 / inDim);
  const lim2 = Math.sqrt(6 / (hidden + 1));
  const wt: HeadWeights = {
    inDim,
    hidden,
    W1: Float32Array.from({ length: hidden * inDim }, () => (rand() * 2 - 1) * lim1),
    b1: new Float32Array(hidden),
    w2: Float32Array.from({ length: hidden }, () => (rand() * 2 - 1) * lim2),
    b2: 0,
    mean,
    std,
  };
  const params = [wt.W1, wt.b1, wt.w2];
  const grads = params.map((p) => new Float32Array(p.length));
  const m1 = params.map((p) => new Float32Array(p.length));
  const m2 = params.map((p) => new Float32Array(p.length));
  const [gW1, gb1, gw2] = grads;
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  let step = 0;

  const hw = new Float32Array(hidden);
  const hl = new Float32Array(hidden);
  const order = Array.from({ length: tr.n }, (_, i) => i);
  const curve: EpochStats[] = [];
  let best: { loss: number; epoch: number; W1: Float32Array; b1: Float32Array; w2: Float32Array; b2: number } | undefined;
  let sinceBest = 0;
  let epochsRun = 0;

  const backward = (x: Float32Array, off: number, h: Float32Array, ds: number) => {
    for (let u = 0; u < hidden; u++) {
      if (h[u] <= 0) continue;
      gw2[u] += ds * h[u];
      const gu = ds * wt.w2[u];
      gb1[u] += gu;
      const base = u * inDim;
      for (let i = 0; i < inDim; i++) gW1[base + i] += gu * x[off + i];
    }
  };

  for (let epoch = 1; epoch <= opts.maxEpochs; epoch++) {
    if (opts.signal?.aborted) throw new CancelledError();
    shuffle(order, rand);
    let epochLoss = 0;
    let epochCorrect = 0;
    for (let b0 = 0; b0 < tr.n; b0 += batchSize) {
      const b1 = Math.min(tr.n, b0 + batchSize);
      for (const g of grads) g.fill(0);
      let any = false;
      for (let t = b0; t < b1; t++) {
        const i = order[t];
        const off = i * inDim;
        const d = forwardRow(wt, tr.w, off, hw) - forwardRow(wt, tr.l, off, hl);
        const { loss: lv, g } = pairGrad(loss, margin, d);
        epochLoss += lv;
        if (d > 0) epochCorrect++;
        if (g === 0) continue;
        any = true;
        const scale = g / (b1 - b0);
        backward(tr.w, off, hw, scale);
        backward(tr.l, off, hl, -scale);
      }
      if (!any) continue;
      step++;
      const c1 = 1 - beta1 ** step;
      const c2 = 1 - beta2 ** step;
      for (let p = 0; p < params.length; p++) {
        const P = params[p];
        const G = grads[p];
        const M = m1[p];
        const V = m2[p];
        for (let k = 0; k < P.length; k++) {
          const g = G[k];
          M[k] = beta1 * M[k] + (1 - beta1) * g;
          V[k] = beta2 * V[k] + (1 - beta2) * g * g;
          P[k] -= (lr * (M[k] / c1)) / (Math.sqrt(V[k] / c2) + eps);
        }
      }
      // b2 gets no gradient from a pairwise loss (it cancels in s_w − s_l); it stays 0.
    }
    epochsRun = epoch;
    const stats: EpochStats = { epoch, trainLoss: tr.n ? epochLoss / tr.n : 0, trainAccuracy: tr.n ? epochCorrect / tr.n : 0 };
    const monitor = va ? evalPairs(wt, va, loss, margin) : undefined;
    if (monitor) {
      stats.valLoss = monitor.loss;
      stats.valAccuracy = monitor.accuracy;
    }
    curve.push(stats);
    opts.onEpoch?.(stats);
    const watched = monitor ? monitor.loss : stats.trainLoss;
    if (!best || watched < best.loss - 1e-7) {
      best = { loss: watched, epoch, W1: wt.W1.slice(), b1: wt.b1.slice(), w2: wt.w2.slice(), b2: wt.b2 };
      sinceBest = 0;
    } else if (++sinceBest >= opts.patience) {
      break;
    }
    if (watched === 0) break; // every pair beyond the margin: nothing left to learn
  }
  if (best) {
    wt.W1.set(best.W1);
    wt.b1.set(best.b1);
    wt.w2.set(best.w2);
    wt.b2 = best.b2;
  }
  return { weights: wt, curve, bestEpoch: best?.epoch ?? 0, epochsRun };
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
