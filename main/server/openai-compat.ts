/**
 * This engine's own decoding under the OpenAI chat-completions API, on `sparserm serve --policy DIR`:
 * `POST /v1/chat/completions` and `GET /v1/models`, behind the same per-launch token (`Authorization: Bearer`).
 * It lets `sparserm generate --endpoint` (and any OpenAI client) be tested against a real server process, and
 * lets a GPU box serve a policy to a laptop. Non-streaming only; fields that would change the output but that
 * this engine does not implement (stop strings, penalties, tools…) are refused by name, never silently ignored.
 * vLLM's extensions are honoured: `top_k`, and `return_token_ids` (choices[].token_ids).
 */
import crypto from 'node:crypto';
import type http from 'node:http';

import { z } from 'zod';

import type { ChatMessage } from '../engine/backbone/chat-template';
import { CancelledError, InputError } from '../engine/errors';
import { zodIssueDetails } from '../engine/zod-issue';
import type { Candidate, GenerateRequest } from '../engine/generate/types';
import type { TokenLogprob } from '../engine/generate/token-logprobs';

/** A candidate with, per token, its log-probability and the most likely alternatives at that position
 *  (temperature-1 distribution), when the backend knows them. */
export interface CompatCandidate extends Candidate {
  /** The stop token that ended it (finish_reason "stop"): the last logprobs entry, not part of the text. */
  stopToken?: number;
  /** Per token of tokens ++ [stopToken]. */
  tokenLogprobs?: TokenLogprob[];
}

/** What the endpoint serves: one policy behind a model id. */
export interface CompatBackend {
  /** The model id clients name (GET /v1/models lists it). */
  readonly id: string;
  /** Largest max_tokens accepted. */
  readonly maxNewTokens: number;
  /** `logprobs`: null = not wanted; else per-token logprobs with `top` alternatives per position (0 = none). */
  generate(req: GenerateRequest, logprobs: { top: number } | null): Promise<CompatCandidate[]>;
  /** Text of each token id (the tokenizer's pieces, decoded). */
  tokenText(ids: number[]): string[];
  promptTokens(messages: ChatMessage[]): number;
  close(): Promise<void>;
}

const Content = z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() })).min(1)]);
const Message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: Content });
const positiveSeed = z.number().int().min(0).max(2 ** 53 - 1);

export const ChatRequest = z.object({
  model: z.string().min(1),
  messages: z.array(Message).min(1).max(512),
  n: z.number().int().min(1).max(64).default(1),
  temperature: z.number().min(0).max(2).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  /** vLLM: -1 or 0 = off. */
  top_k: z.number().int().min(-1).default(0),
  seed: positiveSeed.optional(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().default(false),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  return_token_ids: z.boolean().default(false),
  stream: z.boolean().optional(),
  user: z.string().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Fields that change the output and that this server does not implement: refused by name when set. */
const UNSUPPORTED = ['stop', 'tools', 'tool_choice', 'functions', 'response_format', 'logit_bias', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'best_of', 'n_probs'];

export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const textOf = (c: z.infer<typeof Content>) => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));

/** The request, validated: an OpenAiError (400, param named) for anything malformed or unsupported. */
export function parseChatRequest(raw: unknown, backend: Pick<CompatBackend, 'id' | 'maxNewTokens'>): ChatRequest & { messagesIn: ChatMessage[] } {
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const f of UNSUPPORTED) {
      const v = (raw as Record<string, unknown>)[f];
      const neutral = v === undefined || v === null || (Array.isArray(v) && v.length === 0) || v === 0 || (f === 'repetition_penalty' && v === 1);
      if (!neutral) throw new OpenAiError(400, `${f} is not supported by this server (sparserm serve)`, 'invalid_request_error', f, 'unsupported_parameter');
    }
  }
  const parsed = ChatRequest.safeParse(raw);
  if (!parsed.success) {
    const d = zodIssueDetails(parsed.error, raw);
    throw new OpenAiError(400, new InputError({ ...d, file: 'request body' }).message, 'invalid_request_error', d.field ?? null, 'invalid_value');
  }
  const r = parsed.data;
  if (r.stream) throw new OpenAiError(400, 'stream is not supported by this server (sparserm serve): send stream: false', 'invalid_request_error', 'stream', 'unsupported_parameter');
  if (r.model !== backend.id) throw new OpenAiError(404, `The model "${r.model}" does not exist: this server serves "${backend.id}"`, 'invalid_request_error', 'model', 'model_not_found');
  const max = r.max_completion_tokens ?? r.max_tokens ?? Math.min(256, backend.maxNewTokens);
  if (max > backend.maxNewTokens) throw new OpenAiError(400, `max_tokens ${max} is above this server's limit of ${backend.maxNewTokens}`, 'invalid_request_error', 'max_tokens', 'invalid_value');
  return { ...r, max_tokens: max, messagesIn: r.messages.map((m) => ({ role: m.role, content: textOf(m.content) })) };
}

/** The OpenAI response body for generated candidates. */
export function completionBody(backend: CompatBackend, r: ReturnType<typeof parseChatRequest>, cands: CompatCandidate[]): unknown {
  let completion = 0;
  const choices = cands.map((c, index) => {
    const ids = [...(c.tokens ?? []), ...(c.stopToken !== undefined ? [c.stopToken] : [])];
    completion += ids.length;
    const entry = (id: number, logprob: number) => {
      const token = backend.tokenText([id])[0] ?? '';
      return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
    };
    const logprobs =
      r.logprobs && c.tokens && c.tokenLogprobs
        ? { content: ids.map((id, i) => ({ ...entry(id, c.tokenLogprobs![i]!.logprob), top_logprobs: c.tokenLogprobs![i]!.top.map((t) => entry(t.id, t.logprob)) })) }
        : null;
    return {
      index,
      message: { role: 'assistant', content: c.text },
      finish_reason: c.finishReason,
      logprobs,
      ...(r.return_token_ids ? { token_ids: c.tokens } : {}),
    };
  });
  const prompt = backend.promptTokens(r.messagesIn);
  return {
    id: `chatcmpl-${crypto.randomBytes(12).toString('hex')}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: backend.id,
    choices,
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
}

export function modelsBody(backend: CompatBackend): unknown {
  return { object: 'list', data: [{ id: backend.id, object: 'model', created: 0, owned_by: 'sparserm' }] };
}

export interface CompatHttp {
  /** Whether the request carried the serve token. */
  authorized: boolean;
  /** Reads the body within the server's limit; throws the server's too-large error past it. */
  readBody(): Promise<string>;
  /** True for the server's too-large error (answered 413 by the caller's drain logic). */
  isTooLarge(err: unknown): boolean;
  onTooLarge(): void;
  headers: Record<string, string>;
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

function sendError(res: http.ServerResponse, e: OpenAiError, headers: Record<string, string>): void {
  send(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.code } }, headers);
}

/** Serves `/v1/*`; the caller has already checked Host and Origin. */
export async function handleOpenAi(backend: CompatBackend, req: http.IncomingMessage, res: http.ServerResponse, pathname: string, h: CompatHttp): Promise<void> {
  const fail = (e: OpenAiError) => sendError(res, e, h.headers);
  if (!h.authorized) return fail(new OpenAiError(401, 'missing or wrong token: send Authorization: Bearer <the serve token>', 'invalid_request_error', null, 'invalid_api_key'));
  if (pathname === '/v1/models') {
    if (req.method !== 'GET') return fail(new OpenAiError(405, 'use GET', 'invalid_request_error'));
    return send(res, 200, modelsBody(backend), h.headers);
  }
  if (pathname !== '/v1/chat/completions') return fail(new OpenAiError(404, `no route ${pathname}: this server has /v1/models and /v1/chat/completions`, 'invalid_request_error', null, 'not_found'));
  if (req.method !== 'POST') return fail(new OpenAiError(405, 'use POST', 'invalid_request_error'));
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return fail(new OpenAiError(415, 'Content-Type must be application/json', 'invalid_request_error'));
  let raw: unknown;
  try {
    raw = JSON.parse((await h.readBody()) || 'null');
  } catch (err) {
    if (h.isTooLarge(err)) {
      h.onTooLarge();
      return fail(new OpenAiError(413, err instanceof Error ? err.message : String(err), 'invalid_request_error', null, 'request_too_large'));
    }
    return fail(new OpenAiError(400, `request body is not JSON: ${err instanceof Error ? err.message : String(err)}`, 'invalid_request_error'));
  }
  // A client that hangs up cancels its generation.
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  try {
    const r = parseChatRequest(raw, backend);
    const greedy = r.temperature === 0;
    const cands = await backend.generate(
      {
      messages: r.messagesIn,
      n: r.n,
      temperature: r.temperature,
      topP: greedy ? 1 : r.top_p,
      topK: greedy || r.top_k < 0 ? 0 : r.top_k,
      seed: r.seed ?? crypto.randomInt(2 ** 31),
      maxNewTokens: r.max_tokens!,
      signal: abort.signal,
      },
      r.logprobs ? { top: r.top_logprobs ?? 0 } : null,
    );
    send(res, 200, completionBody(backend, r, cands), h.headers);
  } catch (err) {
    if (err instanceof OpenAiError) return fail(err);
    if (err instanceof CancelledError) {
      res.destroy();
      return;
    }
    if (err instanceof InputError) return fail(new OpenAiError(400, err.message, 'invalid_request_error', err.details.field ?? null));
    return fail(new OpenAiError(500, err instanceof Error ? err.message : String(err), 'server_error'));
  }
}
