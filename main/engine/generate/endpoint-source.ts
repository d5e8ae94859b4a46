/**
 * CandidateSource over an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, TGI, llama.cpp server, Ollama,
 * or `sparserm serve --policy`), for generating at a scale this CPU engine can't. Candidates are scored locally.
 *
 * - n samples in one request when the server honours `n`; servers that return fewer choices (Ollama, llama.cpp)
 *   get the rest as single requests, and the source remembers it for later prompts.
 * - Per-request seeds derived from (seed, prompt, first candidate index): a retried or resumed request asks
 *   for the same thing, and different prompts don't share one random stream.
 * - Non-standard fields (`top_k`, `return_token_ids`) are sent when they matter; a server that refuses a field
 *   by name (400 naming it) gets the request again without it, and the source remembers that too.
 * - Token ids come from vLLM's `return_token_ids` (`choices[].token_ids`) or `token_id:N` logprob tokens;
 *   otherwise `tokens` is null. `logprob` is the sum of the returned per-token logprobs (null without them);
 *   note vLLM reports them under its `logprobs_mode` (raw model logprobs by default).
 */
import crypto from 'node:crypto';

import { z } from 'zod';

import type { ChatMessage } from '../backbone/chat-template';
import { InputError } from '../errors';
import { zodIssueDetails } from '../zod-issue';
import { Semaphore, TokenBucket, postJson, serverMessage, type HttpAnswer, type TransportOptions } from './endpoint-transport';
import type { Candidate, CandidateSource, FinishReason, GenerateRequest } from './types';

export interface EndpointSourceOptions {
  /** Server base (`http://host:8000`), its `/v1`, or the full `/v1/chat/completions` URL. */
  url: string;
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>` (default: the SPARSERM_ENDPOINT_KEY environment variable). */
  apiKey?: string;
  /** Further attempts after a 429 / 5xx / network error / timeout. */
  retries: number;
  /** Requests per minute, evenly spaced (retries included); unlimited when absent. */
  ratePerMinute?: number;
  /** Per-attempt timeout (default 600 s: long generations on a busy server). */
  timeoutMs?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Told before each retry's wait. */
  onRetry?: TransportOptions['onRetry'];
  /** Backoff base/cap in ms (tests shorten them). */
  backoff?: { baseMs: number; capMs: number };
}

export interface EndpointSource extends CandidateSource {
  /** The resolved chat-completions URL. */
  readonly chatUrl: string;
  /** What the server turned out not to support (fields it refused by name, `n`). */
  readonly unsupported: ReadonlySet<string>;
}

/** `http://h:1` → `http://h:1/v1/chat/completions`; `…/v1` → `…/v1/chat/completions`; a full URL is kept. */
export function chatCompletionsUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError({ field: '--endpoint', expected: 'an http(s) URL such as http://127.0.0.1:8000/v1', got: JSON.stringify(url) });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InputError({ field: '--endpoint', expected: 'an http:// or https:// URL', got: JSON.stringify(url) });
  const p = u.pathname.replace(/\/+$/, '');
  if (p.endsWith('/chat/completions')) u.pathname = p;
  else if (p.endsWith('/v1')) u.pathname = `${p}/chat/completions`;
  else u.pathname = `${p}/v1/chat/completions`;
  return u.toString();
}

/** A 31-bit seed from (seed, prompt, candidate index): stable across runs, retries and resumes. */
export function deriveSeed(seed: number, messages: readonly ChatMessage[], index: number): number {
  const h = crypto.createHash('sha256').update(JSON.stringify([seed, index, messages.map((m) => [m.role, m.content])])).digest();
  return h.readUInt32LE(0) >>> 1;
}

const TopLogprob = z.object({ token: z.string(), logprob: z.number().nullable() });
const TokenLogprob = TopLogprob.extend({ top_logprobs: z.array(TopLogprob).nullish() });
const Choice = z.object({
  index: z.number().int().nonnegative().optional(),
  message: z.object({ role: z.string().optional(), content: z.string().nullable() }),
  finish_reason: z.string().nullish(),
  logprobs: z.object({ content: z.array(TokenLogprob).nullish() }).nullish(),
  /** vLLM's `return_token_ids` extension. */
  token_ids: z.array(z.number().int().nonnegative()).nullish(),
});
const Completion = z.object({
  choices: z.array(Choice).min(1),
  usage: z.object({ completion_tokens: z.number().optional() }).nullish(),
});
type Choice = z.infer<typeof Choice>;

/** Fields we may send that some servers refuse by name; a refusal drops the field for the rest of the run. */
const OPTIONAL_FIELDS = ['top_k', 'return_token_ids', 'seed', 'logprobs', 'top_logprobs', 'n'] as const;

function finishReason(r: string | null | undefined): FinishReason {
  return r === 'length' ? 'length' : 'stop';
}

function tokensOf(c: Choice): number[] | null {
  if (c.token_ids) return c.token_ids;
  const lp = c.logprobs?.content;
  if (!lp || lp.length === 0) return null;
  const ids = lp.map((t) => /^token_id:(\d+)$/.exec(t.token));
  return ids.every((m) => m !== null) ? ids.map((m) => Number(m![1])) : null;
}

function logprobOf(c: Choice): number | null {
  const lp = c.logprobs?.content;
  if (!lp) return null;
  let sum = 0;
  for (const t of lp) {
    if (t.logprob === null) return null;
    sum += t.logprob;
  }
  return sum;
}

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  return m === -Infinity ? m : m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** Token text without the leading space / SentencePiece "▁" that tokenizers attach to word-initial pieces. */
const bare = (s: string) => s.replace(/^[\s\u2581]+/, '').replace(/[\s\u2581]+$/, '');

export function endpointSource(opts: EndpointSourceOptions): EndpointSource {
  const chatUrl = chatCompletionsUrl(opts.url);
  if (!opts.model) throw new InputError({ field: '--model', expected: 'the model name the endpoint serves' });
  if (!Number.isInteger(opts.retries) || opts.retries < 0) throw new InputError({ field: 'retries', expected: 'a whole number ≥ 0', got: String(opts.retries) });
  if (opts.ratePerMinute !== undefined && !(opts.ratePerMinute > 0)) throw new InputError({ field: 'ratePerMinute', expected: 'a number > 0', got: String(opts.ratePerMinute) });
  // From the environment so a key never has to be on a command line (visible in `ps`).
  const apiKey = opts.apiKey ?? process.env.SPARSERM_ENDPOINT_KEY;
  const transport: TransportOptions = {
    retries: opts.retries,
    timeoutMs: opts.timeoutMs ?? 600_000,
    bucket: opts.ratePerMinute ? new TokenBucket(opts.ratePerMinute) : null,
    semaphore: new Semaphore(opts.concurrency ?? 4),
    headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {},
    backoffBaseMs: opts.backoff?.baseMs,
    backoffCapMs: opts.backoff?.capMs,
    onRetry: opts.onRetry,
  };
  const unsupported = new Set<string>();

  /** POST, dropping fields the server refuses by name; a 2xx body validated, anything else an InputError. */
  async function complete(body: Record<string, unknown>, signal?: AbortSignal): Promise<z.infer<typeof Completion>> {
    for (;;) {
      const sent = Object.fromEntries(Object.entries(body).filter(([k, v]) => v !== undefined && !unsupported.has(k)));
      const ans: HttpAnswer = await postJson(chatUrl, sent, transport, signal);
      if (ans.status >= 200 && ans.status < 300) {
        const parsed = Completion.safeParse(ans.body);
        if (parsed.success) return parsed.data;
        if (typeof ans.body !== 'object' || ans.body === null) {
          throw new InputError({ file: chatUrl, expected: 'a JSON chat-completions response', got: JSON.stringify(ans.text.slice(0, 80)) });
        }
        const d = zodIssueDetails(parsed.error, ans.body, chatUrl);
        throw new InputError({ ...d, expected: `${d.expected} (an OpenAI chat-completions response)` });
      }
      const msg = serverMessage(ans.body) ?? ans.text.slice(0, 200);
      const refused = ans.status === 400 || ans.status === 422 ? OPTIONAL_FIELDS.find((f) => f in sent && new RegExp(`\\b${f}\\b`).test(msg)) : undefined;
      if (refused) {
        unsupported.add(refused);
        continue;
      }
      if (ans.status === 401 || ans.status === 403) throw new InputError({ file: chatUrl, field: 'apiKey', expected: 'an API key the endpoint accepts', got: `HTTP ${ans.status}: ${msg}` });
      if (ans.status === 404) throw new InputError({ file: chatUrl, field: 'model', expected: `a chat-completions endpoint serving "${opts.model}"`, got: `HTTP 404: ${msg}` });
      throw new InputError({ file: chatUrl, expected: 'a request the endpoint accepts', got: `HTTP ${ans.status}: ${msg}` });
    }
  }

  function requestBody(req: GenerateRequest, n: number, seed: number): Record<string, unknown> {
    return {
      model: opts.model,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
      n: n > 1 ? n : undefined,
      temperature: req.temperature,
      top_p: req.topP,
      top_k: req.topK > 0 ? req.topK : undefined,
      seed,
      max_tokens: req.maxNewTokens,
      logprobs: true,
      return_token_ids: true,
    };
  }

  function toCandidate(c: Choice): Candidate {
    return { text: c.message.content ?? '', tokens: tokensOf(c), logprob: logprobOf(c), finishReason: finishReason(c.finish_reason) };
  }

  function report(req: GenerateRequest, cands: Candidate[], usage?: number): void {
    if (!req.onTokens) return;
    const n = usage ?? cands.reduce((s, c) => s + (c.tokens?.length ?? 0), 0);
    if (n > 0) req.onTokens(n);
  }

  return {
    chatUrl,
    unsupported,
    description: { kind: 'endpoint', policy: `${chatUrl}#${opts.model}`, label: `${opts.model} at ${chatUrl}` },

    async generate(req: GenerateRequest): Promise<Candidate[]> {
      if (!Number.isInteger(req.n) || req.n < 1) throw new InputError({ field: 'n', expected: 'a whole number ≥ 1', got: String(req.n) });
      const out: Candidate[] = [];
      if (req.n > 1 && !unsupported.has('n')) {
        const res = await complete(requestBody(req, req.n, deriveSeed(req.seed, req.messages, 0)), req.signal);
        const cands = [...res.choices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)).slice(0, req.n).map(toCandidate);
        report(req, cands, res.usage?.completion_tokens);
        out.push(...cands);
        if (out.length < req.n) unsupported.add('n'); // the server ignored n: fill up one request per candidate
      }
      const rest = Array.from({ length: req.n - out.length }, (_, k) => out.length + k);
      // The first failure cancels the sibling requests still in flight or waiting.
      const siblings = new AbortController();
      const signal = req.signal ? AbortSignal.any([req.signal, siblings.signal]) : siblings.signal;
      const singles = await Promise.all(
        rest.map(async (i) => {
          try {
            const res = await complete(requestBody(req, 1, deriveSeed(req.seed, req.messages, i)), signal);
            const c = toCandidate(res.choices[0]!);
            report(req, [c], res.usage?.completion_tokens);
            return c;
          } catch (err) {
            siblings.abort();
            throw err;
          }
        }),
      );
      return [...out, ...singles];
    },

    async optionLogprobs(messages: ChatMessage[], options: string[], signal?: AbortSignal): Promise<number[] | null> {
      // One greedy token with the top alternatives: the judge's answer letter is that token.
      const res = await complete(
        {
          model: opts.model,
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          temperature: 0,
          max_tokens: 1,
          seed: 0,
          logprobs: true,
          top_logprobs: 20,
        },
        signal,
      );
      const first = res.choices[0]!.logprobs?.content?.[0];
      if (!first || unsupported.has('logprobs') || unsupported.has('top_logprobs')) return null;
      const listed = [{ token: first.token, logprob: first.logprob }, ...(first.top_logprobs ?? [])];
      // An option absent from the top alternatives has at most the smallest listed mass: that bound stands in
      // for it, so two absent options tie (the pair is left out) and one absent option loses, never NaN.
      const floor = Math.min(...listed.flatMap((t) => (t.logprob === null ? [] : [t.logprob])));
      if (!Number.isFinite(floor)) return null;
      return options.map((o) => {
        const seen = new Map<string, number>();
        for (const t of listed) if (t.logprob !== null && bare(t.token) === bare(o)) seen.set(t.token, t.logprob);
        return seen.size ? logSumExp([...seen.values()]) : floor;
      });
    },

    async close(): Promise<void> {
      /* fetch keeps no per-source state worth closing */
    },
  };
}
