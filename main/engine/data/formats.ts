import type { Message } from '../store';

/** Preference formats the importer understands (see docs/store.md for each one's mapping). */
export const FORMATS = ['standard', 'conversational', 'hh', 'pku', 'ultrafeedback'] as const;
export type FormatName = (typeof FORMATS)[number];

export interface NormalizedPair {
  prompt: string;
  chosen: string;
  rejected: string;
  promptMessages?: Message[];
  chosenMessages?: Message[];
  rejectedMessages?: Message[];
  metadata?: Record<string, unknown>;
  source?: string;
  externalId?: string;
  /** Something the curator should know about this row (kept in the import report). */
  note?: string;
}

export interface FormatOptions {
  /** PKU-SafeRLHF: which label picks "chosen" (default: the safer response). */
  pkuPreference?: 'safer' | 'better';
}

/** A row that cannot be imported: the reason names the field and what was expected. */
export class RowError extends Error {}

const HH_ASSISTANT = '\n\nAssistant:';

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v === '' ? 'an empty string' : 'a string';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function req(o: Record<string, unknown>, field: string, expected: string): unknown {
  if (!(field in o) || o[field] === undefined) throw new RowError(`missing field "${field}": expected ${expected}`);
  return o[field];
}

function str(o: Record<string, unknown>, field: string): string {
  const v = req(o, field, 'a string');
  if (typeof v !== 'string') throw new RowError(`field "${field}": expected a string, got ${describe(v)}`);
  return v;
}

function optId(o: Record<string, unknown>, ...fields: string[]): string | undefined {
  for (const f of fields) {
    const v = o[f];
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return undefined;
}

function optSource(o: Record<string, unknown>): string | undefined {
  return typeof o.source === 'string' && o.source !== '' ? o.source : undefined;
}

function messages(o: Record<string, unknown>, field: string): Message[] {
  const v = req(o, field, 'a list of {role, content} messages');
  if (!Array.isArray(v)) throw new RowError(`field "${field}": expected a list of {role, content} messages, got ${describe(v)}`);
  return v.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new RowError(`field "${field}[${i}]": expected a {role, content} message, got ${describe(m)}`);
    const r = (m as Record<string, unknown>).role;
    let c = (m as Record<string, unknown>).content;
    if (typeof r !== 'string' || r === '') throw new RowError(`field "${field}[${i}].role": expected a non-empty string, got ${describe(r)}`);
    // Content given as a list of parts (multimodal layout): keep only text parts, in order.
    if (Array.isArray(c) && c.every((p) => p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' && typeof (p as { text?: unknown }).text === 'string')) {
      c = (c as { text: string }[]).map((p) => p.text).join('');
    }
    if (typeof c !== 'string') throw new RowError(`field "${field}[${i}].content": expected a string, got ${describe(c)}`);
    return { role: r, content: c };
  });
}

const ROLE_NAME: Record<string, string> = { user: 'Human', assistant: 'Assistant', system: 'System' };

/**
 * The text form of a message list (for search, standard export and scoring of conversational data): a single message
 * is its content; several are rendered as an HH-style dialogue ("Human: …\n\nAssistant: …"), ending with "Assistant:"
 * when the last turn is the user's (the prompt of a multi-turn conversation).
 */
export function messagesToText(msgs: readonly Message[], opts: { asPrompt?: boolean } = {}): string {
  if (msgs.length === 0) return '';
  if (msgs.length === 1 && (!opts.asPrompt || msgs[0]!.role === 'user')) return msgs[0]!.content;
  if (!opts.asPrompt) return msgs.map((m) => m.content).join('\n\n');
  const text = msgs.map((m) => `${ROLE_NAME[m.role] ?? m.role}: ${m.content}`).join('\n\n');
  return msgs[msgs.length - 1]!.role === 'assistant' ? text : text + HH_ASSISTANT;
}

/**
 * Inverse of messagesToText for prompts: an HH-style dialogue becomes its turns, anything else one user message.
 * Only splits when rendering the turns gives back exactly the same text, so export → import is lossless.
 */
export function textToPromptMessages(text: string): Message[] {
  if (text.startsWith('Human: ') && text.includes(HH_ASSISTANT)) {
    const body = text.endsWith(HH_ASSISTANT) ? text.slice(0, -HH_ASSISTANT.length) : text;
    const turns: Message[] = [];
    const re = /(?:^|\n\n)(Human|Assistant|System): /g;
    const marks: { role: string; start: number; contentStart: number }[] = [];
    for (let m = re.exec(body); m; m = re.exec(body)) {
      marks.push({ role: m[1] === 'Human' ? 'user' : m[1] === 'Assistant' ? 'assistant' : 'system', start: m.index, contentStart: m.index + m[0].length });
    }
    for (let i = 0; i < marks.length; i++) {
      turns.push({ role: marks[i]!.role, content: body.slice(marks[i]!.contentStart, i + 1 < marks.length ? marks[i + 1]!.start : body.length) });
    }
    if (turns.length > 1 && messagesToText(turns, { asPrompt: true }) === text) return turns;
  }
  return [{ role: 'user', content: text }];
}

/**
 * Implicit prompt (TRL standard without "prompt"): the longest common prefix of chosen and rejected, cut at a turn
 * boundary when there is one (after the last "\n\nAssistant:") and otherwise at a whitespace boundary, so that no word
 * is split; the whitespace goes with the responses, as TRL's extract_prompt does.
 */
export function splitImplicitPrompt(chosen: string, rejected: string): { prompt: string; chosen: string; rejected: string } {
  const n = Math.min(chosen.length, rejected.length);
  let i = 0;
  while (i < n && chosen.charCodeAt(i) === rejected.charCodeAt(i)) i++;
  const common = chosen.slice(0, i);
  const turn = common.lastIndexOf(HH_ASSISTANT);
  let cut: number;
  if (turn >= 0) cut = turn + HH_ASSISTANT.length;
  else if (i === chosen.length && i === rejected.length) cut = i;
  else {
    // Back off to the start of the whitespace run before the word the two diverge in.
    const endsAtBoundary = i === 0 || /\s/.test(chosen[i - 1]!) || (i < chosen.length && /\s/.test(chosen[i]!) && i < rejected.length && /\s/.test(rejected[i]!));
    cut = i;
    if (!endsAtBoundary) {
      while (cut > 0 && !/\s/.test(chosen[cut - 1]!)) cut--;
    }
    while (cut > 0 && /\s/.test(chosen[cut - 1]!)) cut--;
  }
  return { prompt: chosen.slice(0, cut), chosen: chosen.slice(cut), rejected: rejected.slice(cut) };
}

function messagesEqual(a: Message, b: Message): boolean {
  return a.role === b.role && a.content === b.content;
}

function splitMessages(chosen: Message[], rejected: Message[]): { prompt: Message[]; chosen: Message[]; rejected: Message[] } {
  let i = 0;
  while (i < chosen.length && i < rejected.length && messagesEqual(chosen[i]!, rejected[i]!)) i++;
  // The responses start at the first assistant turn after the shared prefix; a shared assistant turn at the end of
  // the prefix stays in the prompt.
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

function normalizeStandard(o: Record<string, unknown>): NormalizedPair {
  const chosen = str(o, 'chosen');
  const rejected = str(o, 'rejected');
  const base = { source: optSource(o), externalId: optId(o, 'id', 'prompt_id') };
  if ('prompt' in o && o.prompt !== undefined) {
    const prompt = o.prompt;
    if (typeof prompt !== 'string') throw new RowError(`field "prompt": expected a string (TRL standard format), got ${describe(prompt)}`);
    return { prompt, chosen, rejected, ...base };
  }
  return { ...splitImplicitPrompt(chosen, rejected), ...base, metadata: { implicit_prompt: true } };
}

function fromMessages(promptMsgs: Message[], chosenMsgs: Message[], rejectedMsgs: Message[]): Pick<NormalizedPair, 'prompt' | 'chosen' | 'rejected' | 'promptMessages' | 'chosenMessages' | 'rejectedMessages'> {
  if (chosenMsgs.length === 0) throw new RowError('field "chosen": expected at least one response message after the prompt');
  if (rejectedMsgs.length === 0) throw new RowError('field "rejected": expected at least one response message after the prompt');
  return {
    prompt: messagesToText(promptMsgs, { asPrompt: true }),
    chosen: messagesToText(chosenMsgs),
    rejected: messagesToText(rejectedMsgs),
    promptMessages: promptMsgs,
    chosenMessages: chosenMsgs,
    rejectedMessages: rejectedMsgs,
  };
}

function normalizeConversational(o: Record<string, unknown>): NormalizedPair {
  const chosen = messages(o, 'chosen');
  const rejected = messages(o, 'rejected');
  const base = { source: optSource(o), externalId: optId(o, 'id', 'prompt_id') };
  if ('prompt' in o && o.prompt !== undefined) {
    const prompt = messages(o, 'prompt');
    return { ...fromMessages(prompt, chosen, rejected), ...base };
  }
  const s = splitMessages(chosen, rejected);
  return { ...fromMessages(s.prompt, s.chosen, s.rejected), ...base, metadata: { implicit_prompt: true } };
}

/** Anthropic HH: prompt = shared dialogue up to and including the last "\n\nAssistant:"; responses = final turns. */
function normalizeHh(o: Record<string, unknown>): NormalizedPair {
  const chosen = str(o, 'chosen');
  const rejected = str(o, 'rejected');
  const n = Math.min(chosen.length, rejected.length);
  let i = 0;
  while (i < n && chosen.charCodeAt(i) === rejected.charCodeAt(i)) i++;
  // When one dialogue is a prefix of the other, the marker may end exactly at i.
  const k = chosen.slice(0, i).lastIndexOf(HH_ASSISTANT);
  if (k < 0) throw new RowError('fields "chosen"/"rejected": expected two HH dialogues sharing a prefix that ends with "\\n\\nAssistant:"');
  const cut = k + HH_ASSISTANT.length;
  return {
    prompt: chosen.slice(0, cut).replace(/^\n+/, ''),
    chosen: chosen.slice(cut).trim(),
    rejected: rejected.slice(cut).trim(),
    source: optSource(o),
    externalId: optId(o, 'id'),
  };
}

function responseId(o: Record<string, unknown>, field: string): 0 | 1 {
  const v = req(o, field, '0 or 1');
  if (v === 0 || v === 1 || v === '0' || v === '1') return Number(v) as 0 | 1;
  throw new RowError(`field "${field}": expected 0 or 1, got ${describe(v)}`);
}

function normalizePku(o: Record<string, unknown>, opts: FormatOptions): NormalizedPair {
  const prompt = str(o, 'prompt');
  const r = [str(o, 'response_0'), str(o, 'response_1')];
  const by = opts.pkuPreference ?? 'safer';
  const id = responseId(o, by === 'safer' ? 'safer_response_id' : 'better_response_id');
  const safe0 = o.is_response_0_safe;
  const safe1 = o.is_response_1_safe;
  const metadata: Record<string, unknown> = { preference: by };
  for (const k of ['safer_response_id', 'better_response_id', 'is_response_0_safe', 'is_response_1_safe', 'response_0_severity_level', 'response_1_severity_level', 'prompt_source', 'response_0_source', 'response_1_source']) {
    if (k in o) metadata[k] = o[k];
  }
  let note: string | undefined;
  if (typeof safe0 === 'boolean' && typeof safe1 === 'boolean' && safe0 === safe1) {
    note = safe0 ? 'both responses are marked safe: the safety preference is weak' : 'neither response is marked safe: "chosen" is only the less unsafe one';
    metadata.safety_contrast = false;
  } else if (typeof safe0 === 'boolean' && typeof safe1 === 'boolean') metadata.safety_contrast = true;
  return { prompt, chosen: r[id]!, rejected: r[1 - id]!, metadata, source: optSource(o), externalId: optId(o, 'id'), note };
}

/** UltraFeedback-binarized: prompt + chosen/rejected message lists (prompt turn included) + scores. */
function normalizeUltrafeedback(o: Record<string, unknown>): NormalizedPair {
  const chosen = messages(o, 'chosen');
  const rejected = messages(o, 'rejected');
  let s = splitMessages(chosen, rejected);
  if (s.prompt.length === 0 && typeof o.prompt === 'string') s = { prompt: [{ role: 'user', content: o.prompt }], chosen, rejected };
  const metadata: Record<string, unknown> = {};
  for (const k of ['prompt_id', 'score_chosen', 'score_rejected']) if (k in o) metadata[k] = o[k];
  return { ...fromMessages(s.prompt, s.chosen, s.rejected), metadata, source: optSource(o), externalId: optId(o, 'prompt_id', 'id') };
}

export function normalizeRow(format: FormatName, row: unknown, opts: FormatOptions = {}): NormalizedPair {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new RowError(`expected a JSON object, got ${describe(row)}`);
  const o = row as Record<string, unknown>;
  switch (format) {
    case 'standard':
      return normalizeStandard(o);
    case 'conversational':
      return normalizeConversational(o);
    case 'hh':
      return normalizeHh(o);
    case 'pku':
      return normalizePku(o, opts);
    case 'ultrafeedback':
      return normalizeUltrafeedback(o);
  }
}

/** The format of one row, or null when it matches none. */
export function detectRowFormat(row: unknown): FormatName | null {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return null;
  const o = row as Record<string, unknown>;
  if ('response_0' in o && 'response_1' in o) return 'pku';
  if (Array.isArray(o.chosen) && Array.isArray(o.rejected)) {
    if (typeof o.prompt === 'string' || 'score_chosen' in o || 'prompt_id' in o) return 'ultrafeedback';
    return 'conversational';
  }
  if (typeof o.chosen === 'string' && typeof o.rejected === 'string') {
    if (!('prompt' in o) && /^\s*Human:/.test(o.chosen) && o.chosen.includes(HH_ASSISTANT) && o.rejected.includes(HH_ASSISTANT)) return 'hh';
    return 'standard';
  }
  return null;
}

/** Majority format over the first rows (ties: first seen). */
export function detectFormat(rows: readonly unknown[]): FormatName | null {
  const votes = new Map<FormatName, number>();
  for (const r of rows) {
    const f = detectRowFormat(r);
    if (f) votes.set(f, (votes.get(f) ?? 0) + 1);
  }
  let best: FormatName | null = null;
  for (const [f, n] of votes) if (best === null || n > votes.get(best)!) best = f;
  return best;
}
