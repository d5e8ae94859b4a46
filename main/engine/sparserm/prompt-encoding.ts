/**
 * How a stored pair's prompt + response becomes the token sequence the backbone sees (docs/sparserm.md, "Multi-turn
 * prompts"): the ONE place that decides it, used by feature extraction and by explanations so both see the same ids.
 *
 * A prompt that is an HH-style dialogue ("Human: …\n\nAssistant: …\n\nHuman: …\n\nAssistant:") is split into its
 * turns (textToPromptMessages, lossless) and rendered as real alternating chat turns through the checkpoint's chat
 * template; anything else is one user turn. The pair's response is always the last model turn, and the stored text is
 * never changed: only the encoding is.
 */
import type { ChatEncoding, ChatMessage, ChatTokenizer } from '../backbone/tokenizer';
import { textToPromptMessages } from '../data/formats';
import { InputError } from '../errors';

/** Bumped whenever the text → ids mapping changes (it names the feature cache's text index, so text encoded the old
 *  way is tokenized again; the feature key itself is the exact ids, so the backbone reruns only for changed ids). */
export const PROMPT_ENCODING_VERSION = 2;

export function encodePromptResponse(tokenizer: ChatTokenizer, prompt: string, response: string): ChatEncoding {
  try {
    return tokenizer.encodeConversation(promptTurns(prompt), response);
  } catch (err) {
    // A prompt turn the template refuses is the pair's prompt (what a skipped pair's reason names).
    if (err instanceof InputError && err.details.field?.startsWith('messages[')) throw new InputError({ ...err.details, field: 'prompt' }, err);
    throw err;
  }
}

/**
 * The prompt's turns, shaped the way chat templates accept them (user first, then alternating, user last, no
 * system role — Gemma's template raises otherwise), without losing any text:
 * - a system turn counts as user text and is merged with the user turns beside it (a leading one gives
 *   "system\n\nuser", what encodeConversation does and Gemma-3's template does itself);
 * - consecutive turns of the same role are merged, joined by a blank line as in the HH text;
 * - a leading assistant turn, or a trailing one (the response is the next model turn), gets an empty user turn
 *   beside it, since there was no user message there;
 * - empty turns stay (empty content renders as an empty turn).
 */
export function promptTurns(prompt: string): ChatMessage[] {
  return chatTurns(textToPromptMessages(prompt));
}

/** Messages (roles "user" / "assistant" / "system"; anything else counts as user text) shaped as described above. */
export function chatTurns(messages: ReadonlyArray<{ role: string; content: string }>): ChatMessage[] {
  const turns: ChatMessage[] = [];
  for (const m of messages) {
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const prev = turns[turns.length - 1];
    if (prev && prev.role === role) prev.content = `${prev.content}\n\n${m.content}`;
    else turns.push({ role, content: m.content });
  }
  if (turns[0]?.role !== 'user') turns.unshift({ role: 'user', content: '' });
  if (turns[turns.length - 1]!.role !== 'user') turns.push({ role: 'user', content: '' });
  return turns;
}

/** Control strings encoded as text in the given pairs (per-response counts; pair i holds responses 2i and 2i + 1). */
export function controlStringsIn(perResponse: readonly number[], pairIndices: readonly number[]): number {
  return pairIndices.reduce((n, i) => n + (perResponse[2 * i] ?? 0) + (perResponse[2 * i + 1] ?? 0), 0);
}
