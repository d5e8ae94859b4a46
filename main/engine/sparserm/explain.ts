/**
 * Explanations that add up (docs/sparserm.md, "Attribution method" and "Token decomposition"): with the head's ReLU
 * pattern of this response fixed, score = bias + Σ_j c_j, and since the head sees the mean over the pooled tokens of
 * ⟨h_t, d_j⟩, each c_j splits exactly over those tokens. Whether the SAE latent fired (JumpReLU) is reported apart:
 * it is not what the head reads. Re-exported by service.ts (callers import it from there).
 */
import { loadTokenizer, openBackbone } from '../backbone';
import type { EpRequest } from '../runtime/ort';
import { jumpReluSubset, type Sae } from '../sae';
import { poolHidden } from './features';
import type { HeadWeights } from './head';
import { truncateEncoding, type Truncation } from './length-policy';
import type { RewardModelManifest } from './manifest';
import { sigmoid } from './metrics';
import { readRewardModel, type RewardModel } from './model-folder';
import { encodePromptResponse } from './prompt-encoding';
import { modelSae, pooledFor, type JobHooks } from './pair-jobs';

export interface LatentFiring {
  /** JumpReLU activation f_j(z) of the pooled representation (0 = the SAE latent does not fire on it). */
  pooledActivation: number;
  /** Response tokens on which the latent fires (token-level JumpReLU > 0). */
  tokensFired: number;
  /** The token where it fires most (index into ResponseExplanation.tokens); null when it fires on none. */
  peak: { token: number; text: string; activation: number } | null;
}

export interface LatentContribution {
  latent: number;
  side: 'positive' | 'negative';
  label?: string;
  /** p_j = ⟨z, W_dec[j]⟩ = mean over the pooled tokens of ⟨h_t, W_dec[j]⟩: what the head reads. */
  projection: number;
  /** μ_j and σ_j of the projection over the training responses (the head's standardisation). */
  trainingMean: number;
  trainingStd: number;
  /** g_j: score change per σ_j of projection, with this response's ReLU pattern fixed. */
  weight: number;
  /** Exact share of the score: c_j = g_j · (p_j − μ_j) / σ_j. */
  contribution: number;
  /** Per token (aligned with ResponseExplanation.tokens; 0 outside the pooled tokens); sums to `contribution`. */
  tokenContributions: number[];
  /** Pooled JumpReLU activation (= firing.pooledActivation; kept for older callers). */
  activation: number;
  /** Whether and where the SAE latent fired: separate from the contribution, which needs no firing. */
  firing: LatentFiring;
  /** Response tokens where the latent fires, strongest first (index = position in the full sequence). */
  tokens: Array<{ index: number; text: string; activation: number }>;
}

export interface ResponseExplanation {
  score: number;
  /** score − Σ contributions: the bias term of the active ReLU pattern. */
  bias: number;
  method: RewardModelManifest['attribution']['method'];
  /** Llama Scope SAEs: the encoding the firing values use ('saelens' or 'authors', from the manifest). */
  saeEncoding?: 'saelens' | 'authors';
  /** Display strings of the response tokens, and their span in the full sequence. */
  tokens: string[];
  responseSpan: [number, number];
  /** The tokens the head pools, as [start, end) into `tokens` (all of them for mean pooling; the last for 'last'). */
  pooledSpan: [number, number];
  /** Per token, its total contribution over all selected latents; bias + Σ = score. */
  tokenContributions: number[];
  /** The top latents by |contribution|. */
  contributions: LatentContribution[];
  /** Present when the length policy cut this sequence (the tokens and span are of the cut sequence). */
  truncation?: Truncation;
}

export interface ExplainRequest extends JobHooks {
  modelDir: string;
  prompt: string;
  response: string;
  /** How many latents (by |contribution|); default 10. */
  top?: number;
  labels?: Map<number, string>;
  checkpoint?: string;
  ep?: EpRequest;
}

export interface MarginLatent {
  latent: number;
  side: 'positive' | 'negative';
  label?: string;
  chosen: number;
  rejected: number;
  /** chosen − rejected: this latent's effect on the margin. */
  delta: number;
}

export interface PairExplanation {
  chosen: ResponseExplanation;
  rejected: ResponseExplanation;
  margin: number;
  pChosen: number;
  /** margin = biasDelta + Σ latents[].delta + rest (rest: the latents not listed). */
  marginDecomposition: { biasDelta: number; latents: MarginLatent[]; rest: number };
  /** One line naming the latents that move the margin most. */
  why: string;
}

/** The whole linearisation of one response, every selected latent (not only the top ones). */
interface Linearised {
  ex: ResponseExplanation;
  contributions: Float64Array;
}

export async function explainResponse(req: ExplainRequest): Promise<ResponseExplanation> {
  const model = await readRewardModel(req.modelDir);
  return (await explainWith(model, req)).ex;
}

export async function explainPair(req: Omit<ExplainRequest, 'response'> & { chosen: string; rejected: string }): Promise<PairExplanation> {
  const model = await readRewardModel(req.modelDir);
  const sae = await modelSae(model); // once for both sides: a Gemma Scope SAE can be GBs
  const c = await explainWith(model, { ...req, response: req.chosen }, sae);
  const r = await explainWith(model, { ...req, response: req.rejected }, sae);
  const margin = c.ex.score - r.ex.score;
  const top = req.top ?? 10;
  const latents = model.manifest.selected.map((s) => s.index);
  const order = Array.from({ length: latents.length }, (_, j) => j).sort(
    (a, b) => Math.abs(c.contributions[b] - r.contributions[b]) - Math.abs(c.contributions[a] - r.contributions[a]) || a - b,
  );
  const listed = order.slice(0, top).map((j): MarginLatent => {
    const label = req.labels?.get(latents[j]);
    return { latent: latents[j], side: model.manifest.selected[j].side, ...(label ? { label } : {}), chosen: c.contributions[j], rejected: r.contributions[j], delta: c.contributions[j] - r.contributions[j] };
  });
  let rest = 0;
  for (const j of order.slice(top)) rest += c.contributions[j] - r.contributions[j];
  const marginDecomposition = { biasDelta: c.ex.bias - r.ex.bias, latents: listed, rest };
  return { chosen: c.ex, rejected: r.ex, margin, pChosen: sigmoid(margin), marginDecomposition, why: whyLine(margin, marginDecomposition) };
}

const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

/** "Chosen scores +0.412 over rejected, mostly through latent 12 “…” (+0.300), …" — the three largest effects. */
export function whyLine(margin: number, d: PairExplanation['marginDecomposition']): string {
  const named = d.latents.slice(0, 3).map((l) => `latent ${l.latent}${l.label ? ` “${l.label.length > 40 ? `${l.label.slice(0, 39)}…` : l.label}”` : ''} (${signed(l.delta)})`);
  const lead = margin >= 0 ? `Chosen scores ${signed(margin)} over rejected` : `Rejected scores ${signed(-margin)} over chosen`;
  const bias = Math.abs(d.biasDelta) >= 0.0005 ? `; the bias terms differ by ${signed(d.biasDelta)}` : '';
  return named.length ? `${lead}, mostly through ${named.join(', ')}${bias}.` : `${lead}${bias}.`;
}

/**
 * score, bias and g in float64 with the ReLU pattern of x fixed: pre_u = b1_u + W1[u]·x; a_u = [pre_u > 0];
 * score = b2 + Σ_u a_u w2_u pre_u = bias + g·x with bias = b2 + Σ a_u w2_u b1_u, g = W1ᵀ (a ⊙ w2).
 */
export function linearise(head: HeadWeights, x: Float64Array): { score: number; bias: number; g: Float64Array } {
  const { inDim: m, hidden: h, W1, b1, w2, b2 } = head;
  const g = new Float64Array(m);
  let score = b2;
  let bias = b2;
  for (let u = 0; u < h; u++) {
    let pre = b1[u];
    const row = u * m;
    for (let i = 0; i < m; i++) pre += W1[row + i] * x[i];
    if (pre <= 0) continue;
    score += w2[u] * pre;
    bias += w2[u] * b1[u];
    for (let i = 0; i < m; i++) g[i] += w2[u] * W1[row + i];
  }
  return { score, bias, g };
}

async function explainWith(model: RewardModel, req: Omit<ExplainRequest, 'modelDir'>, saeIn?: Sae): Promise<Linearised> {
  const m = model.manifest;
  const H = m.backbone.hiddenSize;
  const checkpoint = req.checkpoint ?? m.backbone.checkpoint;
  const sae = saeIn ?? (await modelSae(model));
  // Checks the backbone hash and applies the model's length policy exactly as scoring does (cached when scored).
  const feats = await pooledFor(model, [{ prompt: req.prompt, response: req.response }], { ...req, checkpoint });
  const tokenizer = await loadTokenizer(checkpoint);
  // Cached text has no encoding in `feats`: encode again and cut exactly as extraction did (same ids, same span).
  const enc = feats.encodings[0] ?? truncateEncoding(encodePromptResponse(tokenizer, req.prompt, req.response), feats.maxTokens, tokenizer.specialIds).encoding;
  const backbone = await openBackbone({ checkpoint, layer: m.backbone.layer, ep: req.ep, signal: req.signal, worker: req.worker });
  let hidden: Float32Array;
  try {
    [hidden] = await backbone.hidden([enc.ids], { signal: req.signal });
  } finally {
    await backbone.close();
  }
  const [s0, s1] = [enc.poolStart, enc.poolEnd];
  const rows = s1 - s0;
  // The tokens the head pools (features.ts poolHidden): BOS never; 'last' = only the final one.
  const first = m.pooling === 'last' ? s1 - 1 : Math.max(s0, 1);
  const T = s1 - first;
  const { inDim, mean, std } = model.head;

  // q[t][j] = ⟨h_t, d_j⟩ per pooled token; p_j is their mean, so the score is computed from the very rows it splits over.
  const q = new Float64Array(T * inDim);
  const p = new Float64Array(inDim);
  for (let t = 0; t < T; t++) {
    const h = (first + t) * H;
    for (let j = 0; j < inDim; j++) {
      const d = j * H;
      let s = 0;
      for (let i = 0; i < H; i++) s += hidden[h + i] * model.directions[d + i];
      q[t * inDim + j] = s;
      p[j] += s / T;
    }
  }
  const x = new Float64Array(inDim);
  for (let j = 0; j < inDim; j++) x[j] = (p[j] - mean[j]) / std[j];
  const { score, bias, g } = linearise(model.head, x);
  const contributions = new Float64Array(inDim);
  for (let j = 0; j < inDim; j++) contributions[j] = g[j] * x[j];

  const latents = m.selected.map((s) => s.index);
  const pooledAct = jumpReluSubset(sae, poolHidden(hidden, H, s0, s1, m.pooling), 1, latents);
  const tokAct = jumpReluSubset(sae, hidden.subarray(s0 * H, s1 * H), rows, latents);
  const strings = tokenizer.tokenStrings(enc.ids.slice(s0, s1));
  const off = first - s0; // pooled token t is display token off + t

  /** c_{j,t} = g_j · (q_{t,j} − μ_j) / (σ_j · T) for latent j over the display tokens. */
  const perToken = (j: number): number[] => {
    const out = new Array<number>(rows).fill(0);
    for (let t = 0; t < T; t++) out[off + t] = (g[j] * (q[t * inDim + j] - mean[j])) / (std[j] * T);
    return out;
  };
  const tokenContributions = new Array<number>(rows).fill(0);
  for (let j = 0; j < inDim; j++) {
    if (g[j] === 0) continue;
    const c = perToken(j);
    for (let t = off; t < rows; t++) tokenContributions[t] += c[t];
  }

  const order = Array.from({ length: inDim }, (_, j) => j).sort((a, b) => Math.abs(contributions[b]) - Math.abs(contributions[a]) || a - b);
  const top = order.slice(0, req.top ?? 10).map((j): LatentContribution => {
    const tokens: LatentContribution['tokens'] = [];
    let peak: LatentFiring['peak'] = null;
    for (let t = 0; t < rows; t++) {
      const a = tokAct[t * inDim + j];
      if (a <= 0) continue;
      tokens.push({ index: s0 + t, text: strings[t], activation: a });
      if (!peak || a > peak.activation) peak = { token: t, text: strings[t], activation: a };
    }
    tokens.sort((a, b) => b.activation - a.activation);
    const label = req.labels?.get(latents[j]);
    return {
      latent: latents[j],
      side: m.selected[j].side,
      ...(label ? { label } : {}),
      projection: p[j],
      trainingMean: mean[j],
      trainingStd: std[j],
      weight: g[j],
      contribution: contributions[j],
      tokenContributions: perToken(j),
      activation: pooledAct[j],
      firing: { pooledActivation: pooledAct[j], tokensFired: tokens.length, peak },
      tokens,
    };
  });
  const truncation = feats.truncation[0];
  const ex: ResponseExplanation = {
    score,
    bias,
    method: m.attribution.method,
    ...(m.sae.encoding ? { saeEncoding: m.sae.encoding } : {}),
    tokens: strings,
    responseSpan: [s0, s1],
    pooledSpan: [off, rows],
    tokenContributions,
    contributions: top,
    ...(truncation ? { truncation } : {}),
  };
  return { ex, contributions };
}
