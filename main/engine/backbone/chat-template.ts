import { Template } from '@huggingface/jinja';

import { InputError } from '../errors';

/**
 * The chat template shipped in every gemma-2-*-it `tokenizer_config.json` (verbatim). The demo kit writes it into
 * its own tokenizer_config.json; real checkpoints bring their own copy, which is what `loadTokenizer` renders.
 */
export const GEMMA2_IT_CHAT_TEMPLATE =
  "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";

// Private-use code points: never produced by `trim` and never present in real preference data, so their
// positions in a rendering tell exactly where the template puts the prompt and the response.
const PROMPT_SENTINEL = '\uE000SPARSERM_PROMPT\uE001';
const RESPONSE_SENTINEL = '\uE002SPARSERM_RESPONSE\uE003';

/** A rendered single-turn conversation cut into the template's fixed text and the two contents as inserted. */
export interface RenderedChat {
  text: string;
  /** [start, end) UTF-16 offsets into `text` of the prompt and of the response, as the template inserted them. */
  promptChars: [number, number];
  responseChars: [number, number];
}

/**
 * A checkpoint's chat template, compiled once, for one user turn followed by one model turn.
 * Known difference from Python jinja2 (what transformers uses): `| trim` is JS `String.prototype.trim` here, which
 * also strips U+FEFF but not U+001C–U+001F / U+0085 at the ends (Python's `str.strip` does the opposite). None of the
 * shipped datasets has such a character at either end; the returned offsets always describe what was really
 * rendered, so spans stay exact either way. The template is
 * rendered with @huggingface/jinja (no hand-written string formatting), so whatever it does to the content
 * (Gemma-2 applies `| trim`) is what the returned offsets describe.
 */
export class ChatTemplate {
  private readonly template: Template;
  /** Fixed text before the prompt, between prompt and response, and after the response. */
  private readonly head: string;
  private readonly mid: string;
  private readonly tail: string;

  constructor(
    source: string,
    private readonly vars: { bos_token: string; eos_token: string },
    private readonly origin: { file: string; field: string } = { file: 'tokenizer_config.json', field: 'chat_template' },
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new InputError({ ...origin, expected: 'a Jinja chat template that parses', got: errorText(err) }, err);
    }
    let probe: string;
    try {
      probe = this.renderRaw(PROMPT_SENTINEL, RESPONSE_SENTINEL);
    } catch (err) {
      throw new InputError(
        { ...origin, expected: 'a chat template that renders a user turn followed by an assistant/model turn', got: errorText(err) },
        err,
      );
    }
    const p = probe.indexOf(PROMPT_SENTINEL);
    const r = probe.indexOf(RESPONSE_SENTINEL);
    if (p < 0 || r < 0 || r < p) {
      throw new InputError({
        ...origin,
        expected: 'a chat template that renders the user message and then the assistant/model message',
        got: p < 0 || r < 0 ? 'a rendering that drops a message' : 'the response rendered before the prompt',
      });
    }
    this.head = probe.slice(0, p);
    this.mid = probe.slice(p + PROMPT_SENTINEL.length, r);
    this.tail = probe.slice(r + RESPONSE_SENTINEL.length);
  }

  /** The fixed text before the prompt (e.g. `<bos><start_of_turn>user\n`). */
  get prefix(): string {
    return this.head;
  }

  /** The fixed text between the prompt and the response (e.g. `<end_of_turn>\n<start_of_turn>model\n`). */
  get separator(): string {
    return this.mid;
  }

  /** The fixed text after the response (e.g. `<end_of_turn>\n`). */
  get suffix(): string {
    return this.tail;
  }

  render(prompt: string, response: string): RenderedChat {
    const text = this.renderRaw(prompt, response);
    // Callers reject contents holding control-token text, so `mid` (which holds `<end_of_turn>`) can't occur in
    // the prompt and its first occurrence after `head` is the real separator.
    const midAt = text.indexOf(this.mid, this.head.length);
    if (!text.startsWith(this.head) || !text.endsWith(this.tail) || midAt < 0 || midAt + this.mid.length > text.length - this.tail.length) {
      throw new Error('chat template rendered an unexpected layout for this conversation');
    }
    return {
      text,
      promptChars: [this.head.length, midAt],
      responseChars: [midAt + this.mid.length, text.length - this.tail.length],
    };
  }

  /**
   * A multi-turn conversation (`messages` alternate user/assistant, as in TRL's conversational format) followed by
   * the model's `response`. The response offsets come from a sentinel rendering of the same history; the prompt
   * range covers the whole history, from the first message's content to the last user message's end (turn markers
   * of earlier turns included). With one user message it is exactly `render(prompt, response)`.
   * A leading system message, which Gemma's template refuses, is folded into the first user message
   * ("system\n\nuser", what Gemma-3's template does itself).
   */
  renderConversation(messages: readonly ChatMessage[], response: string): RenderedChat {
    const msgs = foldSystem(messages);
    const run = (content: string) => this.renderMessages([...msgs, { role: 'assistant', content }]);
    let probe: string;
    let text: string;
    try {
      probe = run(RESPONSE_SENTINEL);
      text = run(response);
    } catch (err) {
      throw new InputError({ field: 'messages', expected: 'a conversation the chat template accepts (user/assistant turns alternating, user first)', got: errorText(err) }, err);
    }
    const r = probe.indexOf(RESPONSE_SENTINEL);
    const before = probe.slice(0, r);
    const after = probe.slice(r + RESPONSE_SENTINEL.length);
    if (r < 0 || !text.startsWith(before) || !text.endsWith(after) || before.length + after.length > text.length) {
      throw new Error('chat template rendered an unexpected layout for this conversation');
    }
    const respStart = before.length;
    // The prompt runs from the end of the template's first fixed text to the start of the fixed text between the
    // last user message and the response (the same `mid` as a single turn), as in `render`.
    const promptEnd = text.slice(0, respStart).endsWith(this.mid) ? respStart - this.mid.length : respStart;
    return { text, promptChars: [Math.min(this.head.length, promptEnd), promptEnd], responseChars: [respStart, text.length - after.length] };
  }

  private renderMessages(messages: readonly ChatMessage[]): string {
    return this.template.render({ messages: messages.map((m) => ({ ...m })), add_generation_prompt: false, ...this.vars });
  }

  private renderRaw(prompt: string, response: string): string {
    return this.template.render({
      messages: [
        { role: 'user', content: prompt },
        { role: 'assistant', content: response },
      ],
      add_generation_prompt: false,
      ...this.vars,
    });
  }
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

function foldSystem(messages: readonly ChatMessage[]): ChatMessage[] {
  if (messages[0]?.role !== 'system') return [...messages];
  const [system, ...rest] = messages;
  if (rest[0]?.role !== 'user') return [...messages]; // let the template refuse it, with its own message
  return [{ role: 'user', content: `${system.content}\n\n${rest[0].content}` }, ...rest.slice(1)];
}

function errorText(err: unknown): string {
  return JSON.stringify(err instanceof Error ? err.message : String(err));
}
