/**
 * The backend of `sparserm serve --policy DIR`'s OpenAI endpoint: candidates from a CandidateSource on the
 * checkpoint (the local KV-cache decoder), and per-token log-probabilities + the first token's top alternatives
 * from a teacher-forced pass (the full-depth backbone session over prompt + candidate, then final norm, LM head
 * and final softcap here). The second pass is independent of the decoder, so the logprobs an endpoint client
 * sums are the policy's temperature-1 distribution whatever sampling produced the tokens.
 */
import path from 'node:path';

import { loadCheckpoint, openBackbone, type BackboneSession, type Checkpoint } from '../engine/backbone';
import type { ChatMessage } from '../engine/backbone/chat-template';
import { readHeadSpec, type HeadSpec } from '../engine/backbone/lm-head';
import { loadTokenizer, type ChatTokenizer } from '../engine/backbone/tokenizer';
import type { EpRequest } from '../engine/runtime/ort';
import { throwIfAborted } from '../engine/errors';
import type { Candidate, CandidateSource, SamplingParams } from '../engine/generate/types';
import { mulberry32 } from '../engine/sparserm/rng';
import type { CompatBackend, CompatCandidate, TopToken } from './openai-compat';

/** Log-softmax of one logits row, in f64 (a 256k vocabulary sums badly in f32). */
function logSoftmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of logits) if (v > m) m = v;
  let s = 0;
  for (const v of logits) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (v) => v - lse);
}

/** The k most likely ids (ties to the lower id). */
function topK(lp: Float64Array, k: number): TopToken[] {
  if (k <= 0) return [];
  const order = Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b);
  return order.slice(0, k).map((id) => ({ id, logprob: lp[id]! }));
}

export class TeacherForced {
  private constructor(
    readonly tokenizer: ChatTokenizer,
    private readonly session: BackboneSession,
    private readonly head: HeadSpec,
    private readonly norm: Float32Array,
    private readonly W: Float32Array,
    private readonly H: number,
    private readonly V: number,
    private readonly eps: number,
  ) {}

  static async open(dir: string, ep: EpRequest = 'cpu'): Promise<TeacherForced> {
    const ckpt: Checkpoint = await loadCheckpoint(dir);
    try {
      const c = ckpt.config;
      const head = readHeadSpec(ckpt);
      const g = ckpt.readF32(head.finalNorm, [c.hiddenSize]);
      const norm = c.arch.normStyle === 'one_plus_weight' ? g.map((v) => 1 + v) : g;
      const W = ckpt.readF32(head.lmHead, [c.vocabSize, c.hiddenSize]);
      const session = await openBackbone({ checkpoint: dir, layer: c.numLayers - 1, ep, worker: true });
      const tokenizer = await loadTokenizer(dir);
      return new TeacherForced(tokenizer, session, head, norm, W, c.hiddenSize, c.vocabSize, c.rmsNormEps);
    } finally {
      ckpt.close();
    }
  }

  get eosIds(): number[] {
    return this.head.eosIds;
  }

  /** The chat-templated prompt up to where the assistant's reply starts (what the decoder is fed). */
  promptIds(messages: readonly ChatMessage[]): number[] {
    const enc = this.tokenizer.encodeConversation(messages, '');
    return enc.ids.slice(0, enc.responseStart);
  }

  private logitsOf(x: Float32Array, off: number): Float32Array {
    const { H, V, W } = this;
    let ms = 0;
    for (let d = 0; d < H; d++) ms += x[off + d]! * x[off + d]!;
    const r = 1 / Math.sqrt(ms / H + this.eps);
    const xn = new Float32Array(H);
    for (let d = 0; d < H; d++) xn[d] = x[off + d]! * r * this.norm[d]!;
    const out = new Float32Array(V);
    for (let v = 0; v < V; v++) {
      let acc = 0;
      const row = v * H;
      for (let d = 0; d < H; d++) acc += W[row + d]! * xn[d]!;
      out[v] = acc;
    }
    const cap = this.head.finalSoftcap;
    if (cap !== null) for (let v = 0; v < V; v++) out[v] = cap * Math.tanh(out[v]! / cap);
    return out;
  }

  /** Per continuation token: log p(token | prompt + previous tokens) (temperature 1) and the k likeliest there. */
  async tokenLogprobs(prompt: number[], tokens: number[], k: number, signal?: AbortSignal): Promise<{ logprob: number; top: TopToken[] }[]> {
    if (tokens.length === 0) return [];
    const [hidden] = await this.session.hidden([[...prompt, ...tokens.slice(0, -1)]], { signal });
    return tokens.map((tok, i) => {
      const lp = logSoftmax(this.logitsOf(hidden!, (prompt.length - 1 + i) * this.H));
      return { logprob: lp[tok]!, top: topK(lp, k) };
    });
  }

  /** Log-probabilities of the token after `seq`. */
  async nextLogprobs(seq: number[], signal?: AbortSignal): Promise<Float64Array> {
    const [hidden] = await this.session.hidden([seq], { signal });
    return logSoftmax(this.logitsOf(hidden!, (seq.length - 1) * this.H));
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

/** One token from log-probabilities: argmax at temperature 0 (ties to the lower id), else top-k, top-p, sample. */
export function pickToken(lp: Float64Array, p: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>, rand: () => number): number {
  if (p.temperature === 0) {
    let best = 0;
    for (let i = 1; i < lp.length; i++) if (lp[i]! > lp[best]!) best = i;
    return best;
  }
  let order = Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b);
  if (p.topK > 0) order = order.slice(0, p.topK);
  const w = order.map((i) => Math.exp((lp[i]! - lp[order[0]!]!) / p.temperature));
  const total = w.reduce((s, x) => s + x, 0);
  let keep = order.length;
  if (p.topP < 1) {
    let acc = 0;
    for (let j = 0; j < order.length; j++) {
      acc += w[j]! / total;
      if (acc >= p.topP) {
        keep = j + 1;
        break;
      }
    }
  }
  const kept = w.slice(0, keep).reduce((s, x) => s + x, 0);
  let r = rand() * kept;
  for (let j = 0; j < keep; j++) if ((r -= w[j]!) <= 0) return order[j]!;
  return order[keep - 1]!;
}

/**
 * A decoder without a KV cache (every step re-runs the full-depth session over the whole sequence): O(T²), only
 * for serving when the KV-cache decoder is not available. Candidate i samples with mulberry32(seed + i).
 */
export function recomputeSource(scorer: TeacherForced, policy: string, label: string): CandidateSource {
  return {
    description: { kind: 'local', policy, label },
    async generate(req) {
      const prompt = scorer.promptIds(req.messages);
      const stop = new Set([...scorer.eosIds, scorer.tokenizer.specialIds.endOfTurn]);
      const out: Candidate[] = [];
      for (let i = 0; i < req.n; i++) {
        const rand = mulberry32((req.seed + i) >>> 0);
        const tokens: number[] = [];
        let logprob = 0;
        let finish: Candidate['finishReason'] = 'length';
        while (tokens.length < req.maxNewTokens) {
          throwIfAborted(req.signal);
          const lp = await scorer.nextLogprobs([...prompt, ...tokens], req.signal);
          const t = pickToken(lp, req, rand);
          if (stop.has(t)) {
            finish = 'stop';
            break;
          }
          tokens.push(t);
          logprob += lp[t]!;
          req.onTokens?.(1);
        }
        out.push({ text: scorer.tokenizer.decode(tokens, { skipSpecialTokens: true }), tokens, logprob, finishReason: finish });
      }
      return out;
    },
    async optionLogprobs() {
      return null;
    },
    async close() {},
  };
}

export interface LocalBackendOptions {
  id: string;
  source: CandidateSource;
  scorer: TeacherForced;
  maxNewTokens?: number;
}

export function localBackend(o: LocalBackendOptions): CompatBackend {
  const tok = o.scorer.tokenizer;
  return {
    id: o.id,
    maxNewTokens: o.maxNewTokens ?? 2048,
    async generate(req, k) {
      const cands = await o.source.generate(req);
      const prompt = o.scorer.promptIds(req.messages);
      const out: CompatCandidate[] = [];
      for (const c of cands) out.push(c.tokens ? { ...c, tokenLogprobs: await o.scorer.tokenLogprobs(prompt, c.tokens, k, req.signal) } : c);
      return out;
    },
    // Each token's own text: decode one id at a time, specials kept (an OpenAI client sums or matches these).
    tokenText: (ids) => ids.map((id) => tok.decode([id])),
    promptTokens: (messages) => o.scorer.promptIds(messages).length,
    async close() {
      await o.source.close();
      await o.scorer.close();
    },
  };
}

/** `sparserm serve --policy DIR`: the checkpoint's decoder and teacher-forced logprobs behind one model id. */
export async function openPolicyBackend(dir: string, opts: { id?: string; ep?: EpRequest } = {}): Promise<CompatBackend> {
  const scorer = await TeacherForced.open(dir, opts.ep ?? 'cpu');
  const ckpt = await loadCheckpoint(dir);
  let hash: string;
  try {
    hash = await ckpt.contentHash();
  } finally {
    ckpt.close();
  }
  const id = opts.id ?? path.basename(path.resolve(dir));
  const source = recomputeSource(scorer, hash, dir);
  return localBackend({ id, source, scorer });
}
