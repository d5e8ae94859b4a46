import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';
import { htmlTagNames } from 'html-tag-names';
import { z } from 'zod';

import { InputError } from '../errors';
import { ChatTemplate, type ChatMessage, type RenderedChat } from './chat-template';
import { zodIssueDetails } from '../zod-issue';

export type { ChatMessage } from './chat-template';

/**
 * Checkpoint tokenizer + chat template (Gemma's BPE with byte fallback, Llama-3's byte-level BPE), read from a
 * checkpoint's own `tokenizer.json` / `tokenizer_config.json` with @huggingface/tokenizers and @huggingface/jinja
 * (no hand-written BPE, no hand-written template). Nothing here names a family's tokens: the turn markers are the
 * first tokens of the template's own markup (see turnMarkers).
 *
 * Sequences always hold exactly one BOS, first: the template emits `<bos>` itself, so the rendered text is
 * tokenized WITHOUT adding specials (a second BOS shifts every activation).
 *
 * Control strings are text (docs/sparserm.md, "Control strings"): an added token whose string the vocabulary does not
 * spell by itself (`<bos>`, `<start_of_turn>`, `<unk>`, `<mask>`, `<unusedN>`, … — read from tokenizer.json's
 * added_tokens, not a fixed list) becomes that control id only where the chat template's own markup puts it. HTML
 * tags that a vocabulary has as added tokens (Gemma's `<b>`, `<h3>`, `<table>` …) are text the model read in
 * pre-training, not control: they keep their single ids, exactly as transformers encodes them. Inside
 * message content it is tokenized as the characters it is made of, so prompt-injection text can neither restructure
 * the sequence nor get a pair skipped; `controlStrings` counts such occurrences.
 */

export interface SpecialIds {
  /** pad_token; eos when the tokenizer has none (Llama-3). */
  pad: number;
  eos: number;
  bos: number;
  /** Absent for byte-level vocabularies (Llama-3), which never need one. */
  unk?: number;
  /** The token that opens a turn header (`<start_of_turn>`, `<|start_header_id|>`). */
  startOfTurn: number;
  /** The token that closes a turn (`<end_of_turn>`, `<|eot_id|>`). */
  endOfTurn: number;
}

/**
 * Turn markers for tokenizers without a chat template (base checkpoints), by family: data, looked up in the
 * vocabulary; with a template they are read from its markup instead.
 */
const TURN_MARKERS_WITHOUT_TEMPLATE: ReadonlyArray<{ start: string; end: string }> = [
  { start: '<start_of_turn>', end: '<end_of_turn>' },
  { start: '<|start_header_id|>', end: '<|eot_id|>' },
];

export interface ChatEncoding {
  /** Token ids of the whole rendered conversation, BOS first (exactly one BOS). */
  ids: number[];
  /** Half-open token span [responseStart, responseEnd) of the response content as it sits in the sequence
   *  (after the template's `trim`), `<end_of_turn>` excluded. */
  responseStart: number;
  responseEnd: number;
  /** Half-open token span of the prompt content (for display). */
  promptStart: number;
  promptEnd: number;
  /** The rendered text that was tokenized. */
  text: string;
  /** The response content exactly as inserted by the template (e.g. trimmed). */
  responseText: string;
  /** True when the response is empty after the template's trim (4 HH-RLHF rows have an empty chosen). Then
   *  responseStart === responseEnd === the index of the `<end_of_turn>` that closes the model turn. */
  empty: boolean;
  /** The tokens to pool for a response representation: the response span, or — for an empty response — the
   *  single closing `<end_of_turn>` token [responseStart, responseStart + 1), so an empty answer still gets a
   *  defined (and comparable) representation instead of a mean over nothing. */
  poolStart: number;
  poolEnd: number;
  /** Occurrences of control-token strings inside the message contents (prompt turns and response), each encoded as
   *  ordinary text rather than as the control id. */
  controlStrings: number;
}

export interface ChatTokenizer {
  /** The checkpoint folder this tokenizer was read from. */
  readonly dir: string;
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  /** False for base (PT) checkpoints whose tokenizer_config.json has no chat_template: encodeChat then throws. */
  readonly hasChatTemplate: boolean;
  encodeChat(prompt: string, response: string): ChatEncoding;
  /** Multi-turn prompt (TRL conversational: user/assistant messages, user first; a leading system message is folded
   *  into the first user turn) + the model's response. Same guarantees as encodeChat; the prompt span covers the
   *  whole history (earlier turn markers included), from the first content to the end of the last user message. */
  encodeConversation(messages: readonly ChatMessage[], response: string): ChatEncoding;
  /** BOS + the text's tokens (exactly one BOS; control-token strings in it encoded as text). */
  encodeText(text: string): number[];
  /** One display string per id: `▁` shown as a space, byte-fallback bytes merged into the character they
   *  encode (shown on the character's first byte, continuation bytes get ''), stray bytes as `<0xNN>`. */
  tokenStrings(ids: number[]): string[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

const TokenizerJson = z.looseObject({
  model: z.looseObject({
    type: z.string(),
    vocab: z.union([z.record(z.string(), z.number()), z.array(z.tuple([z.string(), z.number()]))]),
    byte_fallback: z.boolean().optional(),
  }),
  added_tokens: z.array(z.looseObject({ id: z.number().int(), content: z.string(), special: z.boolean().optional() })).default([]),
});

const TokenText = z.union([z.string(), z.looseObject({ content: z.string() })]).transform((t) => (typeof t === 'string' ? t : t.content));

const TokenizerConfig = z.looseObject({
  chat_template: z
    .union([z.string(), z.array(z.looseObject({ name: z.string(), template: z.string() }))])
    .optional()
    .nullable(),
  bos_token: TokenText.optional().nullable(),
  eos_token: TokenText.optional().nullable(),
  pad_token: TokenText.optional().nullable(),
  unk_token: TokenText.optional().nullable(),
});

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * Loaded tokenizers by folder, valid while both files keep their size and mtime. A real Gemma vocabulary (256k
 * tokens, 33 MB of JSON) takes seconds to load; explanations and scoring ask for it again and again.
 */
const cache = new Map<string, { stamp: string; tokenizer: Promise<ChatTokenizer> }>();
const CACHE_MAX = 8;

function fileStamp(file: string): string {
  try {
    const st = fsSync.statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export async function loadTokenizer(checkpointDir: string): Promise<ChatTokenizer> {
  const dir = path.resolve(checkpointDir);
  const stamp = `${fileStamp(path.join(dir, 'tokenizer.json'))}|${fileStamp(path.join(dir, 'tokenizer_config.json'))}`;
  const hit = cache.get(dir);
  if (hit && hit.stamp === stamp) return hit.tokenizer;
  const tokenizer = readTokenizer(dir);
  cache.delete(dir);
  cache.set(dir, { stamp, tokenizer });
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  // A failed load is not cached: fixing the file and retrying must work.
  tokenizer.catch(() => {
    if (cache.get(dir)?.tokenizer === tokenizer) cache.delete(dir);
  });
  return tokenizer;
}

async function readTokenizer(dir: string): Promise<ChatTokenizer> {
  const tokPath = path.join(dir, 'tokenizer.json');
  const cfgPath = path.join(dir, 'tokenizer_config.json');

  const tokJson = await readJson(tokPath, dir, 'tokenizer.json (the Hugging Face fast-tokenizer file) in the checkpoint folder');
  const tokParsed = TokenizerJson.safeParse(tokJson);
  if (!tokParsed.success) {
    throw new InputError(zodIssueDetails(tokParsed.error, tokJson, tokPath));
  }
  if (tokParsed.data.model.type !== 'BPE') {
    throw new InputError({ file: tokPath, field: 'model.type', expected: '"BPE" (Gemma tokenizers are BPE with byte fallback)', got: JSON.stringify(tokParsed.data.model.type) });
  }

  const cfgRaw = await readJson(cfgPath, dir, 'tokenizer_config.json (holds the chat template and bos_token)', true);
  const cfgParsed = TokenizerConfig.safeParse(cfgRaw ?? {});
  if (!cfgParsed.success) {
    throw new InputError(zodIssueDetails(cfgParsed.error, cfgRaw ?? {}, cfgPath));
  }
  const cfg = cfgParsed.data;

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokJson as object, (cfgRaw ?? {}) as object);
  } catch (err) {
    throw new InputError({ file: tokPath, expected: 'a tokenizer.json that @huggingface/tokenizers can load', got: JSON.stringify(err instanceof Error ? err.message : String(err)) }, err);
  }

  const idOf = (token: string, field: string): number => {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) throw new InputError({ file: tokPath, field, expected: `the special token ${token} in the vocabulary` });
    return id;
  };
  const has = (token: string) => tokenizer.token_to_id(token) !== undefined;
  // A byte-level vocabulary (Llama-3) has no <bos>/<pad>/<unk> spellings: those defaults apply to byte-fallback ones.
  const bosText = cfg.bos_token ?? '<bos>';
  const eosText = cfg.eos_token ?? '<eos>';
  const eos = idOf(eosText, 'eos_token');
  const unkText = cfg.unk_token ?? (has('<unk>') ? '<unk>' : undefined);
  const padText = cfg.pad_token ?? (has('<pad>') ? '<pad>' : undefined);

  let template: ChatTemplate | undefined;
  if (cfg.chat_template) {
    const source = typeof cfg.chat_template === 'string' ? cfg.chat_template : cfg.chat_template.find((t) => t.name === 'default')?.template;
    if (!source) throw new InputError({ file: cfgPath, field: 'chat_template', expected: 'a template string or a list holding one named "default"' });
    template = new ChatTemplate(source, { bos_token: bosText, eos_token: eosText }, { file: cfgPath, field: 'chat_template' });
  }
  const turns = template ? turnMarkers(tokenizer, template, cfgPath) : undefined;
  const fallback = TURN_MARKERS_WITHOUT_TEMPLATE.find((m) => has(m.start) && has(m.end)) ?? TURN_MARKERS_WITHOUT_TEMPLATE[0]!;
  const specialIds: SpecialIds = {
    pad: padText !== undefined ? idOf(padText, 'pad_token') : eos,
    eos,
    bos: idOf(bosText, 'bos_token'),
    ...(unkText !== undefined ? { unk: idOf(unkText, 'unk_token') } : {}),
    startOfTurn: turns?.start ?? idOf(fallback.start, 'added_tokens'),
    endOfTurn: turns?.end ?? idOf(fallback.end, 'added_tokens'),
  };

  const vocab = tokParsed.data.model.vocab;
  const vocabEntries = Array.isArray(vocab) ? vocab.length : Object.keys(vocab).length;
  const maxAdded = tokParsed.data.added_tokens.reduce((m, t) => Math.max(m, t.id + 1), 0);
  return new HfChatTokenizer(dir, tokPath, cfgPath, tokenizer, specialIds, template, Math.max(vocabEntries, maxAdded), tokParsed.data.model.byte_fallback ?? false, {
    json: tokJson as Record<string, unknown> & { added_tokens: Array<{ id: number }> },
    config: (cfgRaw ?? {}) as object,
  });
}

/**
 * The turn markers of a chat template, read from its own markup: the token that closes the model's turn is the first
 * token after the response (`<end_of_turn>`, `<|eot_id|>`); the token that opens a turn header is the first
 * non-whitespace added token of the markup between prompt and response after that closing token (`<start_of_turn>`,
 * `<|start_header_id|>`).
 */
function turnMarkers(tok: Tokenizer, template: ChatTemplate, cfgPath: string): { start: number; end: number } {
  const added = tok.get_added_tokens_decoder();
  // Whitespace added tokens (Gemma's "\n", runs of spaces) are layout, not markers.
  const marker = (id: number | undefined) => id !== undefined && (added.get(id)?.content.trim() ?? '') !== '';
  const suffix = tok.encode(template.suffix, { add_special_tokens: false }).ids;
  const sep = tok.encode(template.separator, { add_special_tokens: false }).ids;
  const end = suffix[0];
  const at = sep.indexOf(end ?? -1);
  const start = sep.slice(at + 1).find(marker);
  if (end === undefined || !marker(end) || at < 0 || start === undefined) {
    throw new InputError({
      file: cfgPath,
      field: 'chat_template',
      expected: 'a template that closes each turn with a special token and opens the next with one',
      got: JSON.stringify(template.separator),
    });
  }
  return { start, end };
}

async function readJson(file: string, dir: string, what: string, optional = false): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (optional) return undefined;
      throw new InputError({ file: dir, expected: what, got: 'no such file' }, err);
    }
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError({ file, expected: 'valid JSON', got: JSON.stringify(err instanceof Error ? err.message : String(err)) }, err);
  }
}

class HfChatTokenizer implements ChatTokenizer {
  private readonly addedById: Map<number, string>;
  private readonly normalize: (s: string) => string;
  /** Ids of the added tokens that are control tokens (see the file comment), and a test for their strings. */
  private readonly controlIds: Set<number>;
  private readonly hasControl: (s: string) => boolean;
  /** The same tokenizer without the control tokens as added tokens: content holding a control string goes through
   *  it. Built on first need (the 256k-token vocabulary takes seconds); the parsed JSON is shared, not copied. */
  private textTok: Tokenizer | undefined;
  /** Byte-level BPE (GPT-2 / Llama-3): each vocabulary symbol stands for one byte (bytes_to_unicode). */
  private readonly byteLevel: Map<string, number> | undefined;

  constructor(
    readonly dir: string,
    private readonly tokPath: string,
    private readonly cfgPath: string,
    private readonly tok: Tokenizer,
    readonly specialIds: SpecialIds,
    private readonly template: ChatTemplate | undefined,
    readonly vocabSize: number,
    private readonly byteFallback: boolean,
    private readonly source: { json: Record<string, unknown> & { added_tokens: Array<{ id: number }> }; config: object },
  ) {
    const added = [...tok.get_added_tokens_decoder().values()];
    this.addedById = new Map(added.map((t) => [t.id, t.content]));
    const norm = tok.normalizer;
    this.normalize = norm ? (s) => norm(s) : (s) => s;
    const control = added.filter((t) => !this.vocabularySpells(t.content, t.id) && !isHtmlTag(t.content));
    this.controlIds = new Set(control.map((t) => t.id));
    const raw = alternation(control.filter((t) => !t.normalized).map((t) => t.content));
    const normalized = alternation(control.filter((t) => t.normalized).map((t) => this.normalize(t.content)));
    this.hasControl = (s) => (raw?.test(s) ?? false) || (normalized?.test(this.normalize(s)) ?? false);
    this.byteLevel = JSON.stringify(source.json.pre_tokenizer ?? null).includes('"ByteLevel"') ? byteLevelDecoder() : undefined;
  }

  /** The bytes a byte-level vocabulary symbol string stands for. */
  private pieceBytes(piece: string): number[] | undefined {
    const out: number[] = [];
    for (const ch of piece) {
      const b = this.byteLevel!.get(ch);
      if (b === undefined) return undefined;
      out.push(b);
    }
    return out;
  }

  /** True when the model alone (no added-token matching) tokenizes the text as exactly that one token: "\n" or a
   *  run of "▁" are ordinary vocabulary, `<start_of_turn>` or `<unk>` are not. */
  private vocabularySpells(content: string, id: number): boolean {
    const model = this.tok.model;
    if (!model) return false;
    const text = this.normalize(content);
    const pieces = model(this.tok.pre_tokenizer ? this.tok.pre_tokenizer(text) : [text]);
    return pieces.length === 1 && model.tokens_to_ids.get(pieces[0]) === id;
  }

  private textTokenizer(): Tokenizer {
    this.textTok ??= new Tokenizer({ ...this.source.json, added_tokens: this.source.json.added_tokens.filter((t) => !this.controlIds.has(t.id)) }, this.source.config);
    return this.textTok;
  }

  /** Content ids: through the text tokenizer when it holds a control string (then counted), else the usual way. */
  private encodeContent(content: string): { ids: number[]; controlStrings: number } {
    if (!this.hasControl(content)) return { ids: this.tok.encode(content, { add_special_tokens: false }).ids, controlStrings: 0 };
    const controlStrings = this.tok.encode(content, { add_special_tokens: false }).ids.filter((id) => this.controlIds.has(id)).length;
    const ids = this.textTokenizer().encode(content, { add_special_tokens: false }).ids;
    const leaked = ids.find((id) => this.controlIds.has(id));
    if (leaked !== undefined) throw new Error(`${this.tokPath}: the vocabulary spells control token ${JSON.stringify(this.addedById.get(leaked))} from ordinary text`);
    return { ids, controlStrings };
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  encodeChat(prompt: string, response: string): ChatEncoding {
    if (!this.template) {
      throw new InputError({ file: this.cfgPath, field: 'chat_template', expected: 'a chat template (use an instruction-tuned "-it" checkpoint, or add one)' });
    }
    return this.encodeRendered(this.template.render(prompt, response));
  }

  encodeConversation(messages: readonly ChatMessage[], response: string): ChatEncoding {
    if (!this.template) {
      throw new InputError({ file: this.cfgPath, field: 'chat_template', expected: 'a chat template (use an instruction-tuned "-it" checkpoint, or add one)' });
    }
    return this.encodeRendered(this.template.renderConversation(messages, response));
  }

  private encodeRendered(rendered: RenderedChat): ChatEncoding {
    const { ids, controlStrings } = this.encodeSegments(rendered);
    const out = this.withSingleBos(ids);
    const offsets = this.charOffsets(out.ids, rendered.text, out.prepended);
    const prompt_ = tokenSpan(offsets, rendered.promptChars);
    const resp = tokenSpan(offsets, rendered.responseChars);
    const empty = resp.start === resp.end;
    if (empty && out.ids[resp.start] !== this.specialIds.endOfTurn) {
      throw new Error('empty response span does not sit on <end_of_turn>: unexpected chat template layout');
    }
    return {
      ids: out.ids,
      responseStart: resp.start,
      responseEnd: resp.end,
      promptStart: prompt_.start,
      promptEnd: prompt_.end,
      text: rendered.text,
      responseText: rendered.text.slice(...rendered.responseChars),
      empty,
      poolStart: resp.start,
      poolEnd: empty ? resp.start + 1 : resp.end,
      controlStrings,
    };
  }

  /**
   * Ids of the rendered text. Without control strings in any content: the whole text in one call, exactly what
   * transformers' apply_chat_template(tokenize=True) gives. Otherwise the template's markup and each content are
   * tokenized apart and concatenated (markup with the control tokens, content as text); for Gemma every content
   * boundary is an added token (`\n` before, `<end_of_turn>` after), where tokenization splits anyway, so ordinary
   * text gets the same ids either way.
   */
  private encodeSegments(rendered: RenderedChat): { ids: number[]; controlStrings: number } {
    const { text, contentChars } = rendered;
    if (!contentChars.some(([a, b]) => this.hasControl(text.slice(a, b)))) {
      return { ids: this.tok.encode(text, { add_special_tokens: false }).ids, controlStrings: 0 };
    }
    const ids: number[] = [];
    let controlStrings = 0;
    let pos = 0;
    const markup = (end: number) => {
      if (end > pos) ids.push(...this.tok.encode(text.slice(pos, end), { add_special_tokens: false }).ids);
    };
    for (const [a, b] of contentChars) {
      markup(a);
      if (b > a) {
        const c = this.encodeContent(text.slice(a, b));
        ids.push(...c.ids);
        controlStrings += c.controlStrings;
      }
      pos = b;
    }
    markup(text.length);
    return { ids, controlStrings };
  }

  encodeText(text: string): number[] {
    return [this.specialIds.bos, ...this.encodeContent(text).ids];
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library rejects an empty list; an empty span decodes to ''
    return this.tok.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  tokenStrings(ids: number[]): string[] {
    if (this.byteLevel) return this.byteLevelTokenStrings(ids);
    const out: string[] = new Array(ids.length);
    let i = 0;
    while (i < ids.length) {
      const piece = this.addedById.get(ids[i]) ?? this.tok.id_to_token(ids[i]);
      if (piece === undefined) {
        out[i] = `<id ${ids[i]}?>`;
        i++;
        continue;
      }
      const byte = this.byteFallback ? BYTE_TOKEN.exec(piece) : null;
      if (!byte || this.addedById.has(ids[i])) {
        out[i] = piece.replaceAll('▁', ' ');
        i++;
        continue;
      }
      // A run of byte-fallback tokens: show each complete UTF-8 character on its first byte.
      const lead = parseInt(byte[1], 16);
      const n = utf8Length(lead);
      const bytes: number[] = [lead];
      for (let k = 1; k < n && i + k < ids.length; k++) {
        const next = this.tok.id_to_token(ids[i + k]);
        const m = next !== undefined && !this.addedById.has(ids[i + k]) ? BYTE_TOKEN.exec(next) : null;
        if (!m) break;
        const b = parseInt(m[1], 16);
        if ((b & 0xc0) !== 0x80) break;
        bytes.push(b);
      }
      if (n > 0 && bytes.length === n) {
        out[i] = new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(bytes)).replaceAll('▁', ' ');
        for (let k = 1; k < n; k++) out[i + k] = '';
        i += n;
      } else {
        out[i] = piece;
        i++;
      }
    }
    return out;
  }

  /** Byte-level: each token shows the characters whose UTF-8 bytes complete in it ('' while a character is split). */
  private byteLevelTokenStrings(ids: number[]): string[] {
    let pending: number[] = [];
    return ids.map((id) => {
      const added = this.addedById.get(id);
      if (added !== undefined) {
        pending = [];
        return added;
      }
      const piece = this.tok.id_to_token(id);
      const bytes = piece === undefined ? undefined : this.pieceBytes(piece);
      if (!bytes) {
        pending = [];
        return piece ?? `<id ${id}?>`;
      }
      const all = [...pending, ...bytes];
      const cut = completeUtf8Prefix(all);
      pending = all.slice(cut);
      if (pending.length > 4) pending = []; // not UTF-8 after all: drop the stray bytes
      return new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(all.slice(0, cut)));
    });
  }

  /** Ensures exactly one BOS, first. A template that emits none gets one prepended; two is an error. */
  private withSingleBos(ids: number[]): { ids: number[]; prepended: boolean } {
    const bosCount = ids.reduce((n, id) => n + (id === this.specialIds.bos ? 1 : 0), 0);
    if (bosCount === 0) return { ids: [this.specialIds.bos, ...ids], prepended: true };
    if (bosCount === 1 && ids[0] === this.specialIds.bos) return { ids, prepended: false };
    throw new InputError({
      file: this.cfgPath,
      field: 'chat_template',
      expected: 'a template that emits exactly one bos_token, at the start',
      got: `${bosCount} BOS token(s), first at position ${ids.indexOf(this.specialIds.bos)}`,
    });
  }

  /**
   * [start, end) UTF-16 offsets into `text` of each token. tokenizers.js returns no offsets, so they are
   * recovered from the token strings: added tokens match their content verbatim, vocabulary tokens are the
   * normalised text (Gemma's normaliser maps " " → "▁", one code unit to one), and byte-fallback tokens advance
   * one character once its UTF-8 bytes are complete. Any mismatch means an unsupported tokenizer: fail loudly
   * rather than return a wrong span.
   */
  private charOffsets(ids: number[], text: string, bosPrepended: boolean): Array<[number, number]> {
    if (this.byteLevel) return this.byteLevelOffsets(ids, text, bosPrepended);
    const offsets: Array<[number, number]> = [];
    let pos = 0;
    let pendingBytes = 0;
    let charStart = 0;
    for (let i = 0; i < ids.length; i++) {
      if (i === 0 && bosPrepended) {
        offsets.push([0, 0]);
        continue;
      }
      const id = ids[i];
      const added = this.addedById.get(id);
      if (added !== undefined && pendingBytes === 0) {
        // Added tokens match the raw text (normalized: false, e.g. <start_of_turn>) or the normalised text
        // (normalized: true, e.g. a run of "▁" standing for spaces).
        if (!text.startsWith(added, pos) && this.normalize(text.slice(pos, pos + added.length)) !== added) throw this.alignmentError(text, pos, added);
        offsets.push([pos, pos + added.length]);
        pos += added.length;
        continue;
      }
      const piece = this.tok.id_to_token(id);
      if (piece === undefined) throw this.alignmentError(text, pos, `<id ${id}>`);
      const byte = this.byteFallback ? BYTE_TOKEN.exec(piece) : null;
      if (byte) {
        const b = parseInt(byte[1], 16);
        if (pendingBytes === 0) {
          charStart = pos;
          pendingBytes = utf8Length(b);
          if (pendingBytes === 0) throw this.alignmentError(text, pos, piece);
        }
        pendingBytes--;
        if (pendingBytes === 0) {
          const cp = text.codePointAt(charStart) ?? 0;
          pos = charStart + (cp > 0xffff ? 2 : 1);
        }
        offsets.push([charStart, pendingBytes === 0 ? pos : charStart]);
        continue;
      }
      if (pendingBytes !== 0) throw this.alignmentError(text, pos, piece);
      if (this.normalize(text.slice(pos, pos + piece.length)) !== piece) throw this.alignmentError(text, pos, piece);
      offsets.push([pos, pos + piece.length]);
      pos += piece.length;
    }
    if (pos !== text.length) throw this.alignmentError(text, pos, '<end of tokens>');
    return offsets;
  }

  /**
   * Byte-level offsets: vocabulary tokens advance by the bytes their symbols stand for; a token covers the characters
   * whose last byte it holds (zero width when it only starts or continues a character, e.g. the middle of a 4-byte
   * emoji split over tokens). Added tokens match the text verbatim.
   */
  private byteLevelOffsets(ids: number[], text: string, bosPrepended: boolean): Array<[number, number]> {
    const bytes = Buffer.from(text, 'utf8');
    // charAt[b]: UTF-16 index of the character byte b belongs to; charAt[bytes.length] = text.length.
    const charAt = new Int32Array(bytes.length + 1);
    for (let b = 0, c = 0; c < text.length; ) {
      const cp = text.codePointAt(c)!;
      const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      for (let k = 0; k < n; k++) charAt[b + k] = c;
      b += n;
      c += cp > 0xffff ? 2 : 1;
    }
    charAt[bytes.length] = text.length;
    const isCharStart = (b: number) => b === bytes.length || (bytes[b]! & 0xc0) !== 0x80;
    const offsets: Array<[number, number]> = [];
    let b = 0;
    for (let i = 0; i < ids.length; i++) {
      if (i === 0 && bosPrepended) {
        offsets.push([0, 0]);
        continue;
      }
      const id = ids[i];
      const added = this.addedById.get(id);
      const pos = charAt[b]!;
      if (added !== undefined) {
        if (!isCharStart(b) || !text.startsWith(added, pos)) throw this.alignmentError(text, pos, added);
        offsets.push([pos, pos + added.length]);
        b += Buffer.byteLength(added, 'utf8');
        continue;
      }
      const piece = this.tok.id_to_token(id);
      const pb = piece === undefined ? undefined : this.pieceBytes(piece);
      if (!pb || b + pb.length > bytes.length || pb.some((x, k) => bytes[b + k] !== x)) throw this.alignmentError(text, pos, piece ?? `<id ${id}>`);
      // A character belongs to the token holding its last byte.
      const start = charAt[b]!;
      b += pb.length;
      const end = charAt[b]!;
      offsets.push([start, Math.max(start, end)]);
    }
    if (b !== bytes.length) throw this.alignmentError(text, charAt[b]!, '<end of tokens>');
    return offsets;
  }

  private alignmentError(text: string, pos: number, piece: string): Error {
    return new Error(
      `${this.tokPath}: could not align token ${JSON.stringify(piece)} with the text at offset ${pos} (${JSON.stringify(text.slice(pos, pos + 12))}); ` +
        'this tokenizer is neither a byte-fallback BPE (normaliser " " → "▁") nor a byte-level BPE',
    );
  }
}

/** Tokens overlapping the character range; an empty range gives an empty span at the first token after it. */
function tokenSpan(offsets: Array<[number, number]>, [a, b]: [number, number]): { start: number; end: number } {
  if (a === b) {
    const at = offsets.findIndex(([s, e]) => s >= a && e > s);
    return { start: at < 0 ? offsets.length : at, end: at < 0 ? offsets.length : at };
  }
  let start = -1;
  let end = -1;
  for (let i = 0; i < offsets.length; i++) {
    const [s, e] = offsets[i];
    const overlaps = e > s ? s < b && e > a : s >= a && s < b; // zero-width: continuation bytes of a char
    if (overlaps) {
      if (start < 0) start = i;
      end = i + 1;
    }
  }
  return start < 0 ? { start: 0, end: 0 } : { start, end };
}

/** GPT-2's bytes_to_unicode, inverted: the printable stand-in character of each byte → the byte. */
function byteLevelDecoder(): Map<string, number> {
  const m = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    m.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
  }
  return m;
}

/** Length of the longest prefix of `bytes` made of complete UTF-8 sequences (invalid lead bytes count as complete). */
function completeUtf8Prefix(bytes: number[]): number {
  let i = 0;
  while (i < bytes.length) {
    const n = utf8Length(bytes[i]!) || 1;
    if (i + n > bytes.length) break;
    i += n;
  }
  return i;
}

function utf8Length(lead: number): number {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 0;
}

/** A regular expression matching any of the strings, longest first (the way added tokens are matched). */
function alternation(strings: string[]): RegExp | undefined {
  if (strings.length === 0) return undefined;
  const sorted = [...new Set(strings)].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'));
}

const HTML_TAG = /^<\/?([a-z][a-z0-9]*)>$/;
const htmlNames = new Set(htmlTagNames);
/** `<b>`, `</h3>`: an HTML element's tag (html-tag-names' list), so `<mask>` or `<unused0>` are not. */
function isHtmlTag(content: string): boolean {
  const m = HTML_TAG.exec(content);
  return m !== null && htmlNames.has(m[1]!);
}
