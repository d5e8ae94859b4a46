/**
 * Length policy (docs/sparserm.md, "Length policy"): the backbone never sees more than a reward model's
 * `maxTokens` tokens per response. Attention memory grows with T², and Gemma Scope SAEs were trained on 1,024-token
 * contexts, so activations past that are out of distribution anyway.
 *
 * A sequence that is too long loses, in this order:
 *   1. the OLDEST prompt tokens — those right after BOS and the first turn header (`<bos><start_of_turn>user\n`),
 *      so the question's end, the model-turn markup and the response (what is pooled) stay intact;
 *   2. then the END of the response (its `<end_of_turn>` and anything after it stay), keeping at least one token.
 * Everything here works on token ids: the tokenizer runs once over the full text (linear), then the cut is a slice.
 */
import type { ChatEncoding } from '../backbone/tokenizer';
import type { ModelConfig } from '../backbone/config';
import { InputError } from '../errors';

/** Bumped whenever what is cut changes (it names the feature cache's text index, which remembers the cut ids). */
export const LENGTH_POLICY_VERSION = 2;

/** The default max-token setting: the context length Gemma Scope SAEs were trained on. */
export const DEFAULT_MAX_TOKENS = 1024;

/** What a cut removed from one encoded response (token counts). */
export interface Truncation {
  /** Prompt tokens dropped (oldest first). */
  prompt: number;
  /** Response tokens dropped (from its end). */
  response: number;
  /** Sequence length before the cut (after it: exactly maxTokens). */
  original: number;
}

export type SpanEncoding = Pick<ChatEncoding, 'ids' | 'promptStart' | 'promptEnd' | 'responseStart' | 'responseEnd' | 'poolStart' | 'poolEnd' | 'empty'>;

/** The chat template's turn delimiters (tokenizer.specialIds), so a cut through a multi-turn history keeps turns whole. */
export interface TurnMarkers {
  startOfTurn: number;
  endOfTurn: number;
}

/**
 * Cuts an encoded prompt + response to at most `maxTokens` ids (pure; the input is not modified). Returns the
 * encoding itself when it fits. The spans of the result index the cut ids; `text` / `responseText` (if any) still
 * describe the full rendering. Throws InputError (field maxTokens) when even BOS + markup + one response token
 * do not fit.
 *
 * With `turns`, a cut that would leave the tail of an earlier MODEL turn (or of the markup between turns) right
 * after the first `<start_of_turn>user` header — mislabelling it as user text — moves forward to the start of the
 * next user turn's content: the result is then a few tokens shorter than maxTokens. A cut inside a user turn (always
 * the case for a single-turn prompt) stays exact.
 */
export function truncateEncoding<E extends SpanEncoding>(enc: E, maxTokens: number, turns?: TurnMarkers): { encoding: E; truncation?: Truncation } {
  const T = enc.ids.length;
  if (T <= maxTokens) return { encoding: enc };
  if (!(enc.promptStart <= enc.promptEnd && enc.promptEnd <= enc.responseStart && enc.responseStart <= enc.responseEnd && enc.responseEnd <= T)) {
    throw new Error(`length policy: inconsistent spans prompt [${enc.promptStart}, ${enc.promptEnd}) response [${enc.responseStart}, ${enc.responseEnd}) of ${T} ids`);
  }
  let excess = T - maxTokens;
  // BOS (position 0) is never cut, even if a prompt span were to start there.
  const p0 = Math.max(enc.promptStart, 1);
  let cutP = Math.min(excess, Math.max(0, enc.promptEnd - p0));
  if (turns && cutP > 0) cutP = userTurnCut(enc, p0, p0 + cutP, turns) - p0;
  excess = Math.max(0, excess - cutP);
  // At least one pooled token stays; an empty response pools the closing <end_of_turn>, which is never cut.
  const cutRMax = enc.empty ? 0 : Math.max(0, enc.responseEnd - enc.responseStart - 1);
  if (excess > cutRMax) {
    throw new InputError({
      field: 'maxTokens',
      expected: `at least ${maxTokens + excess - cutRMax} tokens for this response (BOS, the chat markup and one response token)`,
      got: String(maxTokens),
    });
  }
  const cutR = excess;
  const r1 = enc.responseEnd - cutR; // first dropped response token
  // Where a boundary position of the old sequence lands in the new one.
  const at = (x: number): number => {
    if (x <= p0) return x;
    if (x <= p0 + cutP) return p0;
    if (x <= r1) return x - cutP;
    if (x <= enc.responseEnd) return r1 - cutP;
    return x - cutP - cutR;
  };
  const ids = new Array<number>(T - cutP - cutR);
  let n = 0;
  for (let i = 0; i < p0; i++) ids[n++] = enc.ids[i];
  for (let i = p0 + cutP; i < r1; i++) ids[n++] = enc.ids[i];
  for (let i = enc.responseEnd; i < T; i++) ids[n++] = enc.ids[i];
  const encoding: E = {
    ...enc,
    ids,
    promptStart: at(enc.promptStart),
    promptEnd: at(enc.promptEnd),
    responseStart: at(enc.responseStart),
    responseEnd: at(enc.responseEnd),
    poolStart: at(enc.poolStart),
    poolEnd: at(enc.poolEnd),
  };
  return { encoding, truncation: { prompt: cutP, response: cutR, original: T } };
}

/**
 * First kept prompt position for a cut at `c`: `c` itself when it falls inside a user turn's content (the kept tail
 * then rightly follows the first `<start_of_turn>user\n` header), else the start of the next user turn's content.
 * The user-turn header is the one the sequence starts with: ids[1, promptStart).
 */
function userTurnCut(enc: SpanEncoding, p0: number, c: number, turns: TurnMarkers): number {
  const { ids } = enc;
  const header = ids.slice(1, enc.promptStart);
  if (header.length === 0 || header[0] !== turns.startOfTurn) return c; // not a turn-based template: plain cut
  const isHeaderAt = (k: number) => k + header.length <= ids.length && header.every((id, j) => ids[k + j] === id);
  // The turn c falls in: the last <start_of_turn> before it (position 1, the first header, at worst).
  let k = c - 1;
  while (k > 0 && ids[k] !== turns.startOfTurn) k--;
  let clean = isHeaderAt(k) && k + header.length <= c;
  for (let i = k + header.length; clean && i < c; i++) if (ids[i] === turns.endOfTurn) clean = false;
  if (clean) return c;
  // The next user header that ends at or after c (c may sit inside one), never cutting less than asked.
  for (let j = Math.max(k, p0); j + header.length <= enc.promptEnd; j++) if (j + header.length >= c && isHeaderAt(j)) return j + header.length;
  return c;
}

/**
 * The max-token setting to use with a checkpoint: `requested` (default DEFAULT_MAX_TOKENS, lowered to the
 * checkpoint's max_position_embeddings when that is smaller). An explicit value above max_position_embeddings is
 * refused: positions past it have no trained rotary embedding.
 */
export function resolveMaxTokens(requested: number | undefined, config: Pick<ModelConfig, 'maxPositionEmbeddings'>, configFile: string, field = 'maxTokens'): number {
  const limit = config.maxPositionEmbeddings;
  if (requested === undefined) return limit !== undefined ? Math.min(DEFAULT_MAX_TOKENS, limit) : DEFAULT_MAX_TOKENS;
  if (!Number.isInteger(requested) || requested < 1) {
    throw new InputError({ field, expected: 'a positive integer (tokens per response sequence, BOS included)', got: String(requested) });
  }
  if (limit !== undefined && requested > limit) {
    throw new InputError({ file: configFile, field, expected: `at most the checkpoint's max_position_embeddings (${limit})`, got: String(requested) });
  }
  return requested;
}
