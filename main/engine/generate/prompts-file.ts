/**
 * The prompts a generation run answers: from a prompts file (JSON Lines with "prompt" — text or a message list —
 * or "messages", or plain text with one prompt per line), or the distinct prompts of a store dataset.
 * Duplicates are dropped (first wins) so a prompt is answered once per run.
 */
import fs from 'node:fs';

import { z } from 'zod';

import { messagesToText, textToPromptMessages } from '../data/formats';
import { InputError } from '../errors';
import type { Message, Store } from '../store';
import { zodIssueDetails } from '../zod-issue';

export interface PromptItem {
  /** Text form (HH-style for several turns): what pairs store as `prompt`. */
  prompt: string;
  /** The conversation the policy continues; the last turn is the user's. */
  messages: Message[];
}

/** Whole-file cap: prompts files are read at once, so memory is bounded by this. */
export const MAX_PROMPTS_FILE_BYTES = 64 * 1024 * 1024;
export const MAX_PROMPTS = 100_000;

const Msg = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() });
// One object schema (not a union of two) so an error names the field that is wrong, e.g. line 2, field "prompt".
const Row = z
  .object({ prompt: z.union([z.string().min(1), z.array(Msg).min(1)]).optional(), messages: z.array(Msg).min(1).optional() })
  .refine((r) => r.prompt !== undefined || r.messages !== undefined, { message: 'a "prompt" (text or messages) or a "messages" list', path: ['prompt'] });

function fromMessages(messages: Message[], file: string, line: number): PromptItem {
  // A conversation that ends with the assistant's answer: the prompt is what came before it.
  const turns = messages[messages.length - 1]!.role === 'assistant' ? messages.slice(0, -1) : messages;
  if (turns.length === 0 || turns[turns.length - 1]!.role !== 'user') {
    throw new InputError({ file, line, field: 'messages', expected: 'a conversation whose last turn (before any final assistant answer) is the user\'s', got: turns.length ? `last role "${turns[turns.length - 1]!.role}"` : 'no turns' });
  }
  return { prompt: messagesToText(turns, { asPrompt: true }), messages: turns };
}

/** Reads a prompts file; InputError names the file, line and field of anything wrong. */
export function readPromptsFile(file: string): PromptItem[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new InputError({ file, expected: 'an existing prompts file', got: 'nothing at that path' });
  }
  if (!st.isFile()) throw new InputError({ file, expected: 'a prompts file (JSON Lines or plain text)', got: st.isDirectory() ? 'a folder' : 'a special file' });
  if (st.size > MAX_PROMPTS_FILE_BYTES) throw new InputError({ file, expected: `a prompts file of at most ${MAX_PROMPTS_FILE_BYTES >> 20} MiB`, got: `${st.size} bytes` });
  const buf = fs.readFileSync(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new InputError({ file, expected: 'UTF-8 text', got: 'bytes that are not valid UTF-8' });
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const firstLine = lines.findIndex((l) => l.trim() !== '');
  if (firstLine < 0) throw new InputError({ file, expected: 'at least one prompt', got: 'an empty file' });
  const jsonl = lines[firstLine]!.trimStart().startsWith('{');
  const out: PromptItem[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const line = i + 1;
    let item: PromptItem;
    if (jsonl) {
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        throw new InputError({ file, line, expected: 'one JSON object per line ({"prompt": …} or {"messages": […]})', got: (e as Error).message });
      }
      const r = Row.safeParse(value);
      if (!r.success) throw new InputError({ file, line, ...zodIssueDetails(r.error, value) });
      const d = r.data;
      if (d.prompt !== undefined) item = typeof d.prompt === 'string' ? { prompt: d.prompt, messages: textToPromptMessages(d.prompt) } : fromMessages(d.prompt, file, line);
      else item = fromMessages(d.messages!, file, line);
    } else {
      const p = raw.trim();
      item = { prompt: p, messages: [{ role: 'user', content: p }] };
    }
    if (seen.has(item.prompt)) continue;
    seen.add(item.prompt);
    if (out.length >= MAX_PROMPTS) throw new InputError({ file, line, expected: `at most ${MAX_PROMPTS} distinct prompts per run`, got: 'more' });
    out.push(item);
  }
  return out;
}

/** The distinct prompts of a dataset, in pair id order (first occurrence wins). */
export function datasetPrompts(store: Store, dataset: string | number): { datasetId: number; name: string; prompts: PromptItem[] } {
  const ds = store.datasets.resolve(dataset);
  const seen = new Set<string>();
  const prompts: PromptItem[] = [];
  for (const p of store.pairs.iterate({ datasetId: ds.id })) {
    if (seen.has(p.prompt)) continue;
    seen.add(p.prompt);
    prompts.push({ prompt: p.prompt, messages: p.promptMessages ?? textToPromptMessages(p.prompt) });
    if (prompts.length >= MAX_PROMPTS) break;
  }
  if (prompts.length === 0) throw new InputError({ field: 'dataset', expected: 'a dataset with pairs (its prompts are answered)', got: `"${ds.name}" is empty` });
  return { datasetId: ds.id, name: ds.name, prompts };
}
