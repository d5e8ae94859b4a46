/**
 * The backend of `sparserm serve --policy DIR`'s OpenAI endpoint: candidates from the KV-cache decoder
 * (decoder.ts, exactly as localSource makes them), and — when a request asks for logprobs — per-token
 * log-probabilities and the top alternatives at each position from a teacher-forced pass over the same decoder
 * (Decoder.tokenLogprobs: prompt once, then one cached step per token, temperature 1), so the logprobs a client sums
 * are the policy's distribution whatever sampling produced the tokens, with no second session in memory.
 */
import path from 'node:path';

import type { EpRequest } from '../engine/runtime/ort';
import { InputError } from '../engine/errors';
import { openDecoder, type Decoder } from '../engine/generate/decoder';
import { generationPromptIds } from '../engine/generate/local-source';
import type { CompatBackend, CompatCandidate } from './openai-compat';

export interface LocalBackendOptions {
  id: string;
  decoder: Decoder;
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
      for (const g of gen) {
        const scored = [...g.tokens, ...(g.stopToken !== undefined ? [g.stopToken] : [])];
        out.push({
          text: tok.decode(g.tokens, { skipSpecialTokens: true }),
          tokens: g.tokens,
          logprob: g.logprob,
          finishReason: g.finishReason,
          stopToken: g.stopToken,
          ...(logprobs ? { tokenLogprobs: await o.decoder.tokenLogprobs(prompt, scored, logprobs.top, req.signal) } : {}),
        });
      }
      return out;
    },
    // Each token's own text: decode one id at a time, specials kept (an OpenAI client sums or matches these).
    tokenText: (ids) => ids.map((id) => tok.decode([id])),
    promptTokens: (messages) => generationPromptIds(tok, messages).length,
    async close() {
      await o.decoder.close();
    },
  };
}

/** `sparserm serve --policy DIR`: the checkpoint's KV-cache decoder and teacher-forced logprobs behind one model id. */
export async function openPolicyBackend(dir: string, opts: { id?: string; ep?: EpRequest } = {}): Promise<CompatBackend> {
  const decoder = await openDecoder({ checkpoint: dir, ep: opts.ep ?? 'cpu' });
  return localBackend({ id: opts.id ?? path.basename(path.resolve(dir)), decoder });
}
