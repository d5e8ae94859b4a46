/**
 * CandidateSource on this engine's own decoder (decoder.ts) over a checkpoint folder. The prompt is the checkpoint's
 * chat template rendered exactly as the feature path renders a pair (prompt-encoding.ts's chatTurns), up to where
 * the response starts: the ids a two-pass feature extraction of (prompt, generated tokens) sees before the response.
 *
 * Score while generating: when the checkpoint's content hash through the reward model's layer equals the model's
 * backbone hash, resid_post(L) of the generated tokens is captured while decoding and pooled as features.ts pools a
 * response (mean over the response tokens, end-of-turn excluded, or the last one; an empty response pools its
 * end-of-turn token) — no second backbone pass. Equal to the two-pass features on the same token ids (test).
 */
import { loadCheckpoint } from '../backbone/checkpoint';
import type { Precision } from '../backbone/linear-weights';
import type { ChatMessage, ChatTokenizer } from '../backbone/tokenizer';
import { InputError, throwIfAborted } from '../errors';
import type { EpRequest } from '../runtime/ort';
import type { Pooling } from '../sparserm/features';
import { chatTurns } from '../sparserm/prompt-encoding';
import { openDecoder, type Decoder } from './decoder';
import type { Candidate, CandidateSource, GenerateRequest } from './types';

export interface CaptureSpec {
  /** The reward model's layer, backbone content hash and pooling (its manifest). */
  layer: number;
  backboneHash: string;
  pooling: Pooling;
  /** The precision its features were made with (default f32): captured only when the decoder runs at it. */
  precision?: Precision;
  /** Its max tokens per sequence (default 1,024): a longer prompt + response is cut by the two-pass path, so it is
   *  not captured (the workflow's second pass scores it as the feature path would). */
  maxTokens?: number;
}

export interface LocalSourceOptions {
  checkpoint: string;
  precision?: Precision;
  ep?: EpRequest;
  cacheDir?: string;
  /** Capture features while decoding when the checkpoint is this reward model's backbone. */
  capture?: CaptureSpec;
  /** Candidates decoded together (default 8). */
  batchSize?: number;
  intraOpThreads?: number;
  signal?: AbortSignal;
}

/** Pools captured rows [n × H] the way features.ts's poolHidden pools a response span (f64 sum in token order). */
export function poolCaptured(rows: Float32Array, hiddenSize: number, pooling: Pooling): Float32Array {
  const n = rows.length / hiddenSize;
  if (!Number.isInteger(n) || n < 1) throw new Error(`captured rows: ${rows.length} values for hidden size ${hiddenSize}`);
  if (pooling === 'last') return rows.slice((n - 1) * hiddenSize);
  const acc = new Float64Array(hiddenSize);
  for (let t = 0; t < n; t++) for (let k = 0; k < hiddenSize; k++) acc[k] += rows[t * hiddenSize + k];
  const z = new Float32Array(hiddenSize);
  for (let k = 0; k < hiddenSize; k++) z[k] = acc[k] / n;
  return z;
}

/** The ids of the prompt turns up to where the model's response starts (the generation prompt). */
export function generationPromptIds(tokenizer: ChatTokenizer, messages: readonly ChatMessage[]): number[] {
  const enc = tokenizer.encodeConversation(chatTurns(messages), '');
  return enc.ids.slice(0, enc.responseStart);
}

export async function localSource(opts: LocalSourceOptions): Promise<CandidateSource> {
  let captureLayer: number | undefined;
  if (opts.capture && (opts.capture.precision ?? 'f32') === (opts.precision ?? 'f32')) {
    const ckpt = await loadCheckpoint(opts.checkpoint);
    try {
      if (opts.capture.layer < ckpt.config.numLayers && (await ckpt.contentHash(opts.capture.layer, { signal: opts.signal })) === opts.capture.backboneHash) {
        captureLayer = opts.capture.layer;
      }
    } finally {
      ckpt.close();
    }
  }
  const dec: Decoder = await openDecoder({ checkpoint: opts.checkpoint, precision: opts.precision, ep: opts.ep, cacheDir: opts.cacheDir, captureLayer, intraOpThreads: opts.intraOpThreads, signal: opts.signal });
  const tok = dec.tokenizer;
  if (!tok?.hasChatTemplate) {
    await dec.close();
    throw new InputError({ file: opts.checkpoint, field: 'chat_template', expected: 'a tokenizer with a chat template (an instruction-tuned checkpoint) to generate responses to prompts' });
  }
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  return {
    description: { kind: 'local', policy: dec.info.checkpointHash, label: dec.info.checkpointDir },
    async generate(req: GenerateRequest): Promise<Candidate[]> {
      const prompt = generationPromptIds(tok, req.messages);
      // Tokens the template puts after the response (end-of-turn, newline): the two-pass sequence's length is
      // prompt + response + tail, cut when above the reward model's max tokens.
      const empty = tok.encodeConversation(chatTurns(req.messages), '');
      const tail = empty.ids.length - empty.responseStart;
      const maxTokens = opts.capture?.maxTokens ?? 1024;
      const out: Candidate[] = [];
      for (let i = 0; i < req.n; i += batchSize) {
        throwIfAborted(req.signal);
        const n = Math.min(batchSize, req.n - i);
        const gen = await dec.generateIds(Array.from({ length: n }, () => prompt), { ...req, streamOffset: i });
        for (const g of gen) {
          out.push({
            text: tok.decode(g.tokens, { skipSpecialTokens: true }),
            tokens: g.tokens,
            logprob: g.logprob,
            finishReason: g.finishReason,
            ...(g.captured && opts.capture && prompt.length + g.tokens.length + tail <= maxTokens
              ? { captured: poolCaptured(g.captured, dec.info.hiddenSize, opts.capture.pooling) }
              : {}),
          });
        }
      }
      return out;
    },
    async optionLogprobs(messages, options, signal) {
      const turns = chatTurns(messages);
      const prompt = generationPromptIds(tok, messages);
      const conts = options.map((o, i) => {
        const enc = tok.encodeConversation(turns, o);
        const ids = enc.ids.slice(enc.responseStart, enc.responseEnd);
        if (ids.length === 0 || enc.ids.slice(0, enc.responseStart).some((id, k) => id !== prompt[k])) {
          throw new InputError({ field: `options[${i}]`, expected: 'a non-empty option that tokenizes after the prompt unchanged', got: JSON.stringify(o) });
        }
        return ids;
      });
      return dec.continuationLogprobs(prompt, conts, signal);
    },
    close: () => dec.close(),
  };
}
