/**
 * Decoder session: token ids in, sampled continuations out, through the full-depth KV-cache graph (kv-graph.ts).
 * A batch of prompts is LEFT-padded, prefilled in one run, then every row advances one token per run with the
 * cache; a row that stopped keeps a masked slot (attention_mask 0) until the batch ends. Each candidate draws from
 * its own seeded RNG stream (sampler.ts), so batching never changes what a seeded candidate gets.
 *
 * With `captureLayer`, the graph also returns resid_post of that block for every new token, and each candidate
 * carries the rows of its generated tokens (score while generating, capture.ts pools them): a content token's row
 * arrives in the run that feeds it, i.e. the next step; after the loop one extra run feeds the tokens still unseen
 * (the last token of a row cut at max tokens, the stop token of an empty response, which is what the two-pass
 * feature path pools then).
 */
import { CancelledError, InputError, throwIfAborted } from '../errors';
import { createSession, type EpRequest, type OrtSession, type TensorValue } from '../runtime/ort';
import { loadCheckpoint, type Checkpoint } from '../backbone/checkpoint';
import { ensureKvGraph } from '../backbone/graph-cache';
import { KV_INPUT_EMBEDS, KV_INPUT_MASK, KV_OUTPUT_CAPTURE, KV_OUTPUT_LOGITS, kvInputName, kvOutputName } from '../backbone/kv-graph';
import { readHeadSpec } from '../backbone/lm-head';
import { assertMemoryFor } from '../backbone/memory';
import type { Precision } from '../backbone/linear-weights';
import { loadTokenizer, type ChatTokenizer } from '../backbone/tokenizer';
import { candidateRng, checkSamplingParams, chooseToken, logProbOf } from './sampler';
import { logSoftmax, topK, type TokenLogprob } from './token-logprobs';
import type { FinishReason, SamplingParams } from './types';

export interface OpenDecoderOptions {
  checkpoint: string;
  precision?: Precision;
  ep?: EpRequest;
  /** Also capture resid_post of this block while decoding. */
  captureLayer?: number;
  cacheDir?: string;
  intraOpThreads?: number;
  /** Prompt tokens per prefill run (default: as many as keep one run's attention scores under 256 MiB, ≤ 512):
   *  long prompts are prefilled in chunks on the cache, so memory stays bounded for any prompt length. */
  prefillChunkTokens?: number;
  onProgress?: (event: { phase: 'hash' | 'build'; done: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface DecoderInfo {
  checkpointDir: string;
  /** Content hash of every tensor (the policy's identity in a generation run). */
  checkpointHash: string;
  /** Content hash of blocks 0..captureLayer: equal to a reward model's backboneHash when it reads this layer. */
  captureHash?: string;
  captureLayer?: number;
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  /** Ids that end a candidate: eos ids of config.json / generation_config.json, the tokenizer's eos and end-of-turn. */
  stopIds: number[];
  precision: Precision;
  ep: string;
  epReason: string;
  graphPath: string;
}

export interface GenerateIdsParams extends SamplingParams {
  signal?: AbortSignal;
  onTokens?: (newTokens: number) => void;
  /** RNG stream of the first prompt (candidate i uses streamOffset + i): lets callers split a request in batches. */
  streamOffset?: number;
}

export interface GeneratedIds {
  /** Generated ids, the stop token excluded. */
  tokens: number[];
  /** The stop id that ended it (finishReason 'stop'). */
  stopToken?: number;
  /** Sum of the tokens' log-probabilities under the temperature-1 distribution (the stop token included). */
  logprob: number;
  finishReason: FinishReason;
  /** With captureLayer: resid_post rows [n × hidden] of the generated tokens; for an empty response, the stop
   *  token's row (n = 1). */
  captured?: Float32Array;
}

export interface Decoder {
  readonly info: DecoderInfo;
  readonly tokenizer?: ChatTokenizer;
  generateIds(promptIds: number[][], params: GenerateIdsParams): Promise<GeneratedIds[]>;
  /** Sum of log p(continuation tokens | prompt) per continuation (teacher-forced). */
  continuationLogprobs(promptIds: number[], continuations: number[][], signal?: AbortSignal): Promise<number[]>;
  /**
   * Teacher-forced, per token of `tokens`: log p(token | prompt + the tokens before it) at temperature 1 and the k
   * likeliest ids there, from the decoder's own KV-cache graph (one step per token, no second session).
   */
  tokenLogprobs(promptIds: number[], tokens: number[], k: number, signal?: AbortSignal): Promise<TokenLogprob[]>;
  close(): Promise<void>;
}

export async function openDecoder(opts: OpenDecoderOptions): Promise<Decoder> {
  const ckpt = await loadCheckpoint(opts.checkpoint);
  let ort: OrtSession | undefined;
  try {
    const c = ckpt.config;
    const precision = opts.precision ?? 'f32';
    if (opts.captureLayer !== undefined && (!Number.isInteger(opts.captureLayer) || opts.captureLayer < 0 || opts.captureLayer >= c.numLayers)) {
      throw new InputError({ file: ckpt.dir, field: 'captureLayer', expected: `a block index 0..${c.numLayers - 1}`, got: String(opts.captureLayer) });
    }
    const head = readHeadSpec(ckpt);
    // Before hashing and building: refuse up front rather than be OOM-killed (blocks only; the LM head comes on top).
    assertMemoryFor(c, c.numLayers - 1, precision, ckpt.dir);
    const graph = await ensureKvGraph(ckpt, { depth: 'full', logits: 'last', captureLayer: opts.captureLayer, precision, cacheDir: opts.cacheDir, onProgress: opts.onProgress, signal: opts.signal });
    throwIfAborted(opts.signal);
    ort = await createSession(graph.graphPath, { ep: opts.ep ?? 'auto', intraOpThreads: opts.intraOpThreads });
    let tokenizer: ChatTokenizer | undefined;
    try {
      tokenizer = await loadTokenizer(ckpt.dir);
    } catch {
      tokenizer = undefined; // raw-id checkpoints (tests, --ids) need none
    }
    const stop = new Set(head.eosIds);
    if (tokenizer) {
      stop.add(tokenizer.specialIds.eos);
      if (tokenizer.hasChatTemplate) stop.add(tokenizer.specialIds.endOfTurn);
    }
    const info: DecoderInfo = {
      checkpointDir: ckpt.dir,
      checkpointHash: graph.manifest.checkpointHash,
      captureHash: opts.captureLayer !== undefined ? await ckpt.contentHash(opts.captureLayer) : undefined,
      captureLayer: opts.captureLayer,
      architecture: c.arch.id,
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      stopIds: [...stop].sort((a, b) => a - b),
      precision,
      ep: ort.ep,
      epReason: ort.epReason,
      graphPath: graph.graphPath,
    };
    return makeDecoder(ckpt, ort, info, tokenizer, opts.prefillChunkTokens);
  } catch (err) {
    await ort?.close();
    ckpt.close();
    throw err;
  }
}

type Cache = Record<string, TensorValue>;

function makeDecoder(ckpt: Checkpoint, ort: OrtSession, info: DecoderInfo, tokenizer: ChatTokenizer | undefined, chunkTokens?: number): Decoder {
  const c = ckpt.config;
  const H = c.hiddenSize;
  const V = c.vocabSize;
  const stopIds = new Set(info.stopIds);
  let closed = false;

  const checkIds = (ids: number[], field: string) => {
    if (!Array.isArray(ids) || ids.length === 0) throw new InputError({ field, expected: 'a non-empty list of token ids', got: Array.isArray(ids) ? 'an empty list' : typeof ids });
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new InputError({ field, expected: `token ids in 0..${V - 1} (vocab_size)`, got: String(id) });
  };

  /** One run: `ids` [B × T] (null = padding slot), mask [B × (P + T)]. */
  async function run(ids: Array<Array<number | null>>, mask: Uint8Array[], past: Cache | undefined, signal?: AbortSignal) {
    const B = ids.length;
    const T = ids[0].length;
    const emb = new Float32Array(B * T * H); // padding slots stay zero (masked anyway)
    ids.forEach((row, r) => {
      const real = row.map((id, t) => [id, t] as const).filter(([id]) => id !== null) as Array<readonly [number, number]>;
      if (!real.length) return;
      const rows = ckpt.embeddingRows(real.map(([id]) => id));
      real.forEach(([, t], k) => emb.set(rows.subarray(k * H, (k + 1) * H), (r * T + t) * H));
    });
    const S = mask[0].length;
    const am = new BigInt64Array(B * S);
    mask.forEach((m, r) => m.forEach((v, j) => (am[r * S + j] = BigInt(v))));
    const feeds: Cache = {
      [KV_INPUT_EMBEDS]: { type: 'float32', data: emb, dims: [B, T, H] },
      [KV_INPUT_MASK]: { type: 'int64', data: am, dims: [B, S] },
    };
    for (let i = 0; i < c.numLayers; i++) {
      for (const kind of ['key', 'value'] as const) {
        feeds[kvInputName(i, kind)] = past?.[kvOutputName(i, kind)] ?? { type: 'float32', data: new Float32Array(0), dims: [B, c.numKvHeads, 0, c.headDim] };
      }
    }
    return ort.run(feeds, { signal });
  }

  const grow = (mask: Uint8Array[], cols: number[]) => mask.map((m, r) => Uint8Array.from([...m, cols[r]]));

  /** Runs left-padded prompts [B × T] (null = padding) in chunks on the cache; returns the last chunk's outputs. */
  async function prefill(ids: Array<Array<number | null>>, mask: Uint8Array[], signal?: AbortSignal) {
    const B = ids.length;
    const T = ids[0].length;
    const budget = 256 * 1024 * 1024;
    const C = Math.max(1, chunkTokens ?? Math.min(512, Math.floor(budget / (B * c.numHeads * T * 4))));
    let res: Record<string, TensorValue> | undefined;
    for (let s = 0; s < T; s += C) {
      throwIfAborted(signal);
      const e = Math.min(T, s + C);
      res = await run(ids.map((row) => row.slice(s, e)), mask.map((m) => m.subarray(0, e)), res, signal);
    }
    return res!;
  }

  /** One prompt, no padding: its cache and the logits of its last position. */
  async function prefillOne(promptIds: number[], signal?: AbortSignal) {
    const mask = [Uint8Array.from(promptIds, () => 1)];
    return { mask, res: await prefill([promptIds], mask, signal) };
  }

  /** Feeds `tokens` one cached step at a time after a prefilled prompt; `onLogits(row, t)` sees the logits that predict tokens[t]. */
  async function teacherForce(pre: { mask: Uint8Array[]; res: Record<string, TensorValue> }, tokens: number[], onLogits: (logits: Float32Array, t: number) => void, signal?: AbortSignal) {
    let { mask, res } = pre;
    for (let t = 0; t < tokens.length; t++) {
      onLogits(res[KV_OUTPUT_LOGITS].data as Float32Array, t);
      if (t === tokens.length - 1) break;
      mask = grow(mask, [1]);
      res = await run([[tokens[t]]], mask, res, signal);
    }
  }

  return {
    info,
    tokenizer,
    async generateIds(promptIds, params) {
      if (closed) throw new Error('decoder is closed');
      checkSamplingParams(params);
      promptIds.forEach((p, i) => checkIds(p, `promptIds[${i}]`));
      const B = promptIds.length;
      if (B === 0) return [];
      const Tp = Math.max(...promptIds.map((p) => p.length));
      // The cache grows by one position per token: bound it by what the checkpoint was trained for.
      const maxPos = c.maxPositionEmbeddings ?? 131072;
      if (Tp + params.maxNewTokens > maxPos) {
        throw new InputError({
          file: ckpt.dir,
          field: 'maxNewTokens',
          expected: `prompt (${Tp} tokens) + max new tokens at most ${maxPos} (max_position_embeddings${c.maxPositionEmbeddings ? '' : ', or 131072 when absent'})`,
          got: String(params.maxNewTokens),
        });
      }
      const rngs = promptIds.map((_, i) => candidateRng(params.seed, (params.streamOffset ?? 0) + i));
      const out: GeneratedIds[] = promptIds.map(() => ({ tokens: [], logprob: 0, finishReason: 'length' as FinishReason }));
      const capture = info.captureLayer !== undefined;
      const rows: number[][][] = promptIds.map(() => []); // captured resid rows per candidate (as number arrays)
      const active = promptIds.map(() => true);
      let mask = promptIds.map((p) => Uint8Array.from({ length: Tp }, (_, t) => (t >= Tp - p.length ? 1 : 0)));
      let res = await prefill(
        promptIds.map((p) => [...Array<null>(Tp - p.length).fill(null), ...p]),
        mask,
        params.signal,
      );
      let fed: Array<number | null> = promptIds.map(() => null); // what the last run fed per row (for capture)
      for (;;) {
        const logits = res[KV_OUTPUT_LOGITS].data as Float32Array;
        if (capture) collect(res, fed, rows);
        const next: Array<number | null> = promptIds.map(() => null);
        let produced = 0;
        for (let r = 0; r < B; r++) {
          if (!active[r]) continue;
          const row = logits.subarray(r * V, (r + 1) * V);
          const id = chooseToken(row, params, rngs[r]);
          const lp = logProbOf(row, id);
          if (!Number.isFinite(lp)) {
            throw new Error(`the ${info.precision} decoder produced non-finite logits (candidate ${r}, step ${out[r].tokens.length}): activations overflow at this precision; use f32`);
          }
          out[r].logprob += lp;
          produced++;
          if (stopIds.has(id)) {
            out[r].finishReason = 'stop';
            out[r].stopToken = id;
            active[r] = false;
            continue;
          }
          out[r].tokens.push(id);
          if (out[r].tokens.length >= params.maxNewTokens) active[r] = false;
          else next[r] = id;
        }
        if (produced) params.onTokens?.(produced);
        if (!next.some((id) => id !== null)) break;
        throwIfAborted(params.signal);
        mask = grow(mask, next.map((id) => (id === null ? 0 : 1)));
        res = await run(next.map((id) => [id]), mask, res, params.signal);
        fed = next;
      }
      if (capture) {
        // Tokens whose row was never produced: a cut row's last token; an empty response's stop token.
        const extra = out.map((o) => (o.finishReason === 'length' ? o.tokens[o.tokens.length - 1] : o.tokens.length === 0 ? o.stopToken! : null));
        if (extra.some((id) => id !== null && id !== undefined)) {
          mask = grow(mask, extra.map((id) => (id === null ? 0 : 1)));
          const last = await run(extra.map((id) => [id]), mask, res, params.signal);
          collect(last, extra, rows);
        }
        out.forEach((o, r) => (o.captured = Float32Array.from(rows[r].flat())));
      }
      if (params.signal?.aborted) throw new CancelledError();
      return out;
    },
    async continuationLogprobs(promptIds, continuations, signal) {
      if (closed) throw new Error('decoder is closed');
      checkIds(promptIds, 'promptIds');
      continuations.forEach((cont, i) => checkIds(cont, `continuations[${i}]`));
      const out: number[] = [];
      const pre = await prefillOne(promptIds, signal); // the prompt once, shared by every continuation
      for (const cont of continuations) {
        let lp = 0;
        await teacherForce(pre, cont, (logits, t) => (lp += logProbOf(logits, cont[t])), signal);
        out.push(lp);
      }
      return out;
    },
    async tokenLogprobs(promptIds, tokens, k, signal) {
      if (closed) throw new Error('decoder is closed');
      checkIds(promptIds, 'promptIds');
      if (tokens.length === 0) return [];
      checkIds(tokens, 'tokens');
      const out: TokenLogprob[] = [];
      await teacherForce(await prefillOne(promptIds, signal), tokens, (logits, t) => {
        const lp = logSoftmax(logits);
        out.push({ logprob: lp[tokens[t]]!, top: topK(lp, k) });
      }, signal);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await ort.close();
      ckpt.close();
    },
  };

  function collect(res: Record<string, TensorValue>, fed: Array<number | null | undefined>, rows: number[][][]): void {
    const y = res[KV_OUTPUT_CAPTURE].data as Float32Array;
    fed.forEach((id, r) => {
      if (id !== null && id !== undefined) rows[r].push(Array.from(y.subarray(r * H, (r + 1) * H)));
    });
  }
}
