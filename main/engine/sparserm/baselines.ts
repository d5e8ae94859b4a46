/**
 * The paper's comparisons on the same cached features and the same prompt-grouped splits (method.md):
 *  - dense linear probe on z (hidden + 1 parameters);
 *  - the same head on the raw SAE activations f_j(z) of the selected latents instead of projections;
 *  - the same head on 2K random unit directions instead of the selected decoder rows.
 * The caller chooses the rows: evaluate.ts passes the model's own training pairs and exactly the pairs the model
 * is evaluated on, so a baseline and SparseRM are never compared on different data.
 */
import { CancelledError } from '../errors';
import { fitStandardizer, standardize, trainHead, headScoresOrt, headParamCount, type TrainHeadOptions, type Loss } from './head';
import { gatherRows, projector, splitMetrics, type FeatureTable, type PairRef, type SplitMetrics } from './fit';
import { gaussian, mulberry32, shuffle } from './rng';

export interface BaselineResult {
  name: 'dense-linear-probe' | 'raw-sae-activations' | 'random-directions';
  description: string;
  trainableParams: number;
  /** Pairs it was trained on (early stopping on the val pairs given). */
  trainN: number;
  /** Accuracy (n, ties, 95 % Wilson interval) and AUC on the test pairs given. */
  test: SplitMetrics;
}

/** Linear s = w·x + b on standardised z, same pairwise loss, Adam; small enough for plain TypeScript. */
function linearProbe(train: { w: Float32Array; l: Float32Array; n: number }, test: { w: Float32Array; l: Float32Array; n: number }, d: number, opts: TrainHeadOptions): Float32Array {
  const { mean, std } = fitStandardizer([train.w, train.l], d);
  const tw = standardize(train.w, d, mean, std);
  const tl = standardize(train.l, d, mean, std);
  const w = new Float64Array(d);
  const m = new Float64Array(d);
  const v = new Float64Array(d);
  const rand = mulberry32(opts.seed);
  const order = Array.from({ length: train.n }, (_, i) => i);
  let step = 0;
  const epochs = Math.min(opts.maxEpochs, 20);
  for (let e = 0; e < epochs; e++) {
    if (opts.signal?.aborted) throw new CancelledError();
    shuffle(order, rand);
    for (let b0 = 0; b0 < train.n; b0 += opts.batchSize) {
      const g = new Float64Array(d);
      const b1 = Math.min(train.n, b0 + opts.batchSize);
      for (let t = b0; t < b1; t++) {
        const i = order[t];
        let dd = 0;
        for (let k = 0; k < d; k++) dd += w[k] * (tw[i * d + k] - tl[i * d + k]);
        const c = lossGrad(opts.loss, opts.margin, dd) / (b1 - b0);
        if (c === 0) continue;
        for (let k = 0; k < d; k++) g[k] += c * (tw[i * d + k] - tl[i * d + k]);
      }
      step++;
      for (let k = 0; k < d; k++) {
        m[k] = 0.9 * m[k] + 0.1 * g[k];
        v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
        w[k] -= (opts.lr * (m[k] / (1 - 0.9 ** step))) / (Math.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8);
      }
    }
  }
  const xw = standardize(test.w, d, mean, std);
  const xl = standardize(test.l, d, mean, std);
  const margins = new Float32Array(test.n);
  for (let i = 0; i < test.n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += w[k] * (xw[i * d + k] - xl[i * d + k]);
    margins[i] = s;
  }
  return margins;
}

function lossGrad(loss: Loss, margin: number, d: number): number {
  if (loss === 'margin') return margin - d > 0 ? -1 : 0;
  return -1 / (1 + Math.exp(d));
}

export async function runBaselines(
  table: FeatureTable,
  train: PairRef[],
  val: PairRef[],
  test: PairRef[],
  selected: number[],
  opts: TrainHeadOptions,
): Promise<BaselineResult[]> {
  if (train.length === 0 || test.length === 0) throw new Error(`runBaselines: needs training and test pairs (got ${train.length} and ${test.length})`);
  const H = table.hiddenSize;
  const m = selected.length;
  const out: BaselineResult[] = [];
  const trainN = train.length;
  const headRun = async (featurize: (z: Float32Array, n: number, rows: number[]) => Promise<Float32Array>) => {
    const mat = async (ps: PairRef[]) => ({
      n: ps.length,
      w: await featurize(gatherRows(table, ps.map((p) => p.chosen)), ps.length, ps.map((p) => p.chosen)),
      l: await featurize(gatherRows(table, ps.map((p) => p.rejected)), ps.length, ps.map((p) => p.rejected)),
    });
    const res = await trainHead(await mat(train), val.length ? await mat(val) : undefined, m, opts);
    const t = await mat(test);
    const sw = await headScoresOrt(res.weights, t.w, t.n);
    const sl = await headScoresOrt(res.weights, t.l, t.n);
    return splitMetrics(sw.map((v, i) => v - sl[i]));
  };

  // Dense linear probe on z.
  const dense = (ps: PairRef[]) => ({ n: ps.length, w: gatherRows(table, ps.map((p) => p.chosen)), l: gatherRows(table, ps.map((p) => p.rejected)) });
  out.push({
    name: 'dense-linear-probe',
    description: 'linear score on the standardised pooled representation z',
    trainableParams: H + 1,
    trainN,
    test: splitMetrics(linearProbe(dense(train), dense(test), H, opts)),
  });

  // Raw SAE activations of the selected latents.
  const col = new Map(selected.map((j, c) => [j, c]));
  out.push({
    name: 'raw-sae-activations',
    description: 'same head on f_j(z) (JumpReLU activations) of the selected latents instead of projections',
    trainableParams: headParamCount(m, opts.hidden),
    trainN,
    test: await headRun(async (_z, n, rows) => {
      const x = new Float32Array(n * m);
      rows.forEach((r, i) => {
        const lat = table.latents[r];
        for (let q = 0; q < lat.idx.length; q++) {
          const c = col.get(lat.idx[q]);
          if (c !== undefined) x[i * m + c] = lat.val[q];
        }
      });
      return x;
    }),
  });

  // Random unit directions.
  const normal = gaussian(mulberry32(opts.seed + 7919));
  const dirs = new Float32Array(m * H);
  for (let c = 0; c < m; c++) {
    let s = 0;
    for (let i = 0; i < H; i++) s += (dirs[c * H + i] = normal()) ** 2;
    for (let i = 0; i < H; i++) dirs[c * H + i] /= Math.sqrt(s);
  }
  const proj = projector(dirs, H, m);
  out.push({
    name: 'random-directions',
    description: `same head on ${m} random unit directions (seeded) instead of the selected decoder rows`,
    trainableParams: headParamCount(m, opts.hidden),
    trainN,
    test: await headRun((z, n) => proj(z, n)),
  });
  return out;
}
