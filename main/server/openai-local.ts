/**
 * The backend of `sparserm serve --policy DIR`'s OpenAI endpoint: candidates from the KV-cache decoder
 * (decoder.ts, exactly as localSource makes them), and — when a request asks for logprobs — per-token
 * log-probabilities and the top alternatives at each position from a teacher-forced pass (the full-depth backbone
 * session over prompt + candidate, then final norm, LM head and final softcap here). That pass is independent of the
 * decoder, so the logprobs a client sums are the policy's temperature-1 distribution whatever sampling produced the
 * tokens. Known cost: the LM head runs in plain TypeScript (fine for the demo kit; ~V·H MACs per token, about a
 * second per token for Gemma-2's 256k × 2304 head), so logprobs on real checkpoints are slow.
 */
import path from 'node:path';

import { loadCheckpoint, openBackbone, type BackboneSession, type Checkpoint } from '../engine/backbone';
import { readHeadSpec, type HeadSpec } from '../engine/backbone/lm-head';
import { loadTokenizer, type ChatTokenizer } from '../engine/backbone/tokenizer';
import type { EpRequest } from '../engine/runtime/ort';
import { InputError } from '../engine/errors';
import { openDecoder, type Decoder } from '../engine/generate/decoder';
import { generationPromptIds } from '../engine/generate/local-source';
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

/** The k most likely ids (ties to the lower id), by insertion into a k-long list: O(V·k), no full sort of V. */
export function topK(lp: Float64Array, k: number): TopToken[] {
  const best: TopToken[] = [];
  if (k <= 0) return best;
  for (let id = 0; id < lp.length; id++) {
    const v = lp[id]!;
    if (best.length === k && v <= best[k - 1]!.logprob) continue; // equal value: the earlier (lower) id stays
    let at = best.length;
    while (at > 0 && best[at - 1]!.logprob < v) at--;
    best.splice(at, 0, { id, logprob: v });
    if (best.length > k) best.pop();
  }
  return best;
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

  async close(): Promise<void> {
    await this.session.close();
  }
}

export interface LocalBackendOptions {
  id: string;
  decoder: Decoder;
  /** Opened on the first request that asks for logprobs (a second full-depth session: memory only when used). */
  openScorer: () => Promise<TeacherForced>;
  maxNewTokens?: number;
  /** Longest prompt + continuation served (default 8192): bounds the KV cache and the prefill's attention. */
  maxContextTokens?: number;
}

/**
 * Candidates from the KV-cache decoder exactly as localSource makes them (same generation prompt, candidate i on
 * RNG stream i), plus the stop token (OpenAI clients see it as the last logprobs entry, so the summed logprob
 * equals the decoder's, which includes it).
 */
export function localBackend(o: LocalBackendOptions): CompatBackend {
  const tok = o.decoder.tokenizer;
  if (!tok?.hasChatTemplate) throw new InputError({ file: o.decoder.info.checkpointDir, field: 'chat_template', expected: 'a tokenizer with a chat template to serve chat completions' });
  let scorer: Promise<TeacherForced> | null = null;
  return {
    id: o.id,
    maxNewTokens: o.maxNewTokens ?? 2048,
    async generate(req, logprobs) {
      const limit = o.maxContextTokens ?? 8192;
      // Checked before tokenizing: BPE without a pre-tokenizer (Gemma) is slow on huge texts and blocks the server.
      const chars = req.messages.reduce((n, m) => n + m.content.length, 0);
      if (chars > limit * 8) throw new InputError({ field: 'messages', expected: `at most ${limit * 8} characters in all (context limit ${limit} tokens)`, got: `${chars} characters` });
      const prompt = generationPromptIds(tok, req.messages);
      if (prompt.length + req.maxNewTokens > limit) {
        throw new InputError({ field: 'messages', expected: `a prompt of at most ${limit - req.maxNewTokens} tokens with max_tokens ${req.maxNewTokens} (context limit ${limit})`, got: `${prompt.length} tokens` });
      }
      const gen = await o.decoder.generateIds(Array.from({ length: req.n }, () => prompt), { ...req, streamOffset: 0 });
      const out: CompatCandidate[] = [];
      const tf = logprobs ? await (scorer ??= o.openScorer()) : null;
      for (const g of gen) {
        const scored = [...g.tokens, ...(g.stopToken !== undefined ? [g.stopToken] : [])];
        out.push({
          text: tok.decode(g.tokens, { skipSpecialTokens: true }),
          tokens: g.tokens,
          logprob: g.logprob,
          finishReason: g.finishReason,
          stopToken: g.stopToken,
          ...(tf ? { tokenLogprobs: await tf.tokenLogprobs(prompt, scored, logprobs!.top, req.signal) } : {}),
        });
      }
      return out;
    },
    // Each token's own text: decode one id at a time, specials kept (an OpenAI client sums or matches these).
    tokenText: (ids) => ids.map((id) => tok.decode([id])),
    promptTokens: (messages) => generationPromptIds(tok, messages).length,
    async close() {
      await o.decoder.close();
      if (scorer) await (await scorer).close();
    },
  };
}

/** `sparserm serve --policy DIR`: the checkpoint's KV-cache decoder and teacher-forced logprobs behind one model id. */
export async function openPolicyBackend(dir: string, opts: { id?: string; ep?: EpRequest } = {}): Promise<CompatBackend> {
  const decoder = await openDecoder({ checkpoint: dir, ep: opts.ep ?? 'cpu' });
  return localBackend({ id: opts.id ?? path.basename(path.resolve(dir)), decoder, openScorer: () => TeacherForced.open(dir, opts.ep ?? 'cpu') });
}
