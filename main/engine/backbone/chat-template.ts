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

const LAYOUT_ERROR = 'chat template rendered an unexpected layout for this conversation';

/** A sentinel rendering: `markup[i]` is the fixed text before message i's content (`markup[n]` after the last). */
interface Layout {
  probe: string;
  marks: string[];
  pos: number[];
  markup: string[];
}

/** A rendered conversation: the text, and where the template put each message's content. */
export interface RenderedChat {
  text: string;
  /** [start, end) UTF-16 offsets into `text` of the prompt (from the first message's content to the end of the last
   *  prompt message's content; earlier turn markers included) and of the response, as the template inserted them. */
  promptChars: [number, number];
  responseChars: [number, number];
  /** [start, end) of every message's content as inserted (e.g. trimmed), in order, the response last. Everything
   *  outside these ranges is the template's own markup (`<start_of_turn>user\n` …). */
  contentChars: Array<[number, number]>;
}

/**
 * A checkpoint's chat template, compiled once.
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
  private readonly layouts = new Map<string, Layout>();

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
      probe = this.renderMessages([
        { role: 'user', content: PROMPT_SENTINEL },
        { role: 'assistant', content: RESPONSE_SENTINEL },
      ]);
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

  /** One user turn, then the model's response. */
  render(prompt: string, response: string): RenderedChat {
    return this.renderConversation([{ role: 'user', content: prompt }], response);
  }

  /**
   * A multi-turn conversation (`messages` alternate user/assistant, as in TRL's conversational format) followed by
   * the model's `response`. A leading system message, which Gemma's template refuses, is folded into the first user
   * message ("system\n\nuser", what Gemma-3's template does itself).
   *
   * Where each content lands is found without searching the real text for markup (content may itself spell
   * `<end_of_turn>\n<start_of_turn>model\n`): a rendering with a sentinel in every message gives the markup between
   * the contents. The contents as inserted are first taken as all trimmed (Gemma's `| trim`) or all unchanged, and
   * that is accepted only when markup and contents put together give exactly the real rendering; otherwise the
   * template is rendered once per message with only that message real, which gives its content between known
   * neighbours. If even those pieces do not give the real rendering, the template depends on content in a way
   * this cannot describe, which is an error.
   */
  renderConversation(messages: readonly ChatMessage[], response: string): RenderedChat {
    const msgs: ChatMessage[] = [...foldSystem(messages), { role: 'assistant', content: response }];
    const run = (contents: readonly string[]) => this.renderMessages(msgs.map((m, i) => ({ role: m.role, content: contents[i] })));
    const refused = (field: string, err: unknown) =>
      new InputError({ field, expected: 'a conversation the chat template accepts (user/assistant turns alternating, user first)', got: errorText(err) }, err);
    let layout: Layout;
    try {
      layout = this.layout(msgs.map((m) => m.role));
    } catch (err) {
      if (!(err instanceof Error) || err.message === LAYOUT_ERROR) throw err;
      throw refused('messages', err);
    }
    const { probe, marks, pos, markup } = layout;
    let real: string;
    try {
      real = run(msgs.map((m) => m.content));
    } catch (err) {
      if (!(err instanceof Error)) throw err;
      // The roles render (the layout did), so some content is refused: name the first message the template refuses
      // on its own, the response as "response".
      const culprit = msgs.findIndex((m, i) => {
        try {
          run(marks.map((mk, j) => (j === i ? m.content : mk)));
          return false;
        } catch {
          return true;
        }
      });
      throw refused(culprit === msgs.length - 1 ? 'response' : culprit >= 0 ? `messages[${culprit}].content` : 'messages', err);
    }
    const assemble = (contents: readonly string[]): RenderedChat => {
      let text = markup[0];
      const contentChars: Array<[number, number]> = [];
      contents.forEach((c, i) => {
        contentChars.push([text.length, text.length + c.length]);
        text += c + markup[i + 1];
      });
      const last = contentChars.length - 1;
      return { text, promptChars: [contentChars[0][0], contentChars[last - 1]?.[1] ?? contentChars[0][0]], responseChars: contentChars[last], contentChars };
    };
    for (const guess of [msgs.map((m) => m.content.trim()), msgs.map((m) => m.content)]) {
      const r = assemble(guess);
      if (r.text === real) return r;
    }
    const contents = msgs.map((m, i) => {
      const before = probe.slice(0, pos[i]);
      const after = probe.slice(pos[i] + marks[i].length);
      const one = run(marks.map((mk, j) => (j === i ? m.content : mk)));
      if (!one.startsWith(before) || !one.endsWith(after) || before.length + after.length > one.length) throw new Error(LAYOUT_ERROR);
      return one.slice(before.length, one.length - after.length);
    });
    const r = assemble(contents);
    if (r.text !== real) throw new Error(LAYOUT_ERROR);
    return r;
  }

  /** The sentinel rendering for a sequence of roles, and the markup between the contents (cached per sequence). */
  private layout(roles: readonly ChatMessage['role'][]): Layout {
    const key = roles.join(',');
    const hit = this.layouts.get(key);
    if (hit) return hit;
    const marks = roles.map((_, i) => `\uE000SPARSERM_${i}\uE001`);
    const probe = this.renderMessages(roles.map((role, i) => ({ role, content: marks[i] })));
    const pos: number[] = [];
    for (let i = 0, at = 0; i < marks.length; i++) {
      const p = probe.indexOf(marks[i], at);
      if (p < 0) throw new Error(LAYOUT_ERROR);
      pos.push(p);
      at = p + marks[i].length;
    }
    const markup = [probe.slice(0, pos[0]), ...pos.map((p, i) => probe.slice(p + marks[i].length, i + 1 < pos.length ? pos[i + 1] : probe.length))];
    const layout = { probe, marks, pos, markup };
    if (this.layouts.size >= 256) this.layouts.delete(this.layouts.keys().next().value!);
    this.layouts.set(key, layout);
    return layout;
  }

  private renderMessages(messages: readonly ChatMessage[]): string {
    return this.template.render({ messages: messages.map((m) => ({ ...m })), add_generation_prompt: false, ...this.vars });
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
