/**
 * The OpenAI-compatible endpoint client (endpoint-source.ts) against REAL server processes: `sparserm serve
 * --policy <demo kit checkpoint>` spawned as a child process, and small node:http servers on real sockets in this
 * process (a proxy that answers 429 / holds / rewrites before forwarding to serve, and a server whose answers are
 * malformed). No function is mocked: every request crosses a socket.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { CancelledError, InputError } from '../../../main/engine/errors';
import { deriveSeed, endpointSource, chatCompletionsUrl } from '../../../main/engine/generate/endpoint-source';
import { EndpointUnavailable } from '../../../main/engine/generate/endpoint-transport';
import type { CandidateSource, GenerateRequest } from '../../../main/engine/generate/types';
import { generationPromptIds, localSource } from '../../../main/engine/generate/local-source';
import { topK } from '../../../main/engine/generate/token-logprobs';
import { TeacherForced } from '../../helpers/teacher-forced-reference';
import { startServe, type Served } from '../../e2e/harness';
import { tempDir } from '../../helpers/paths';

const MESSAGES = [{ role: 'user' as const, content: 'What happens if you swallow gum?' }];
const base = (over: Partial<GenerateRequest> = {}): GenerateRequest => ({ messages: MESSAGES, n: 1, temperature: 0, topP: 1, topK: 0, seed: 1, maxNewTokens: 6, ...over });

let kit: DemoKit;
let served: Served;
let token: string;
let serveUrl: string;
let local: CandidateSource;
let scorer: TeacherForced;
const MODEL = 'demo-policy';

/** A node:http server on 127.0.0.1; `handler` decides per request (it can forward to serve). */
async function httpServer(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

/** Forwards a request to serve (Host rewritten, as a reverse proxy does); `edit` may change the JSON answer. */
function forward(req: http.IncomingMessage, res: http.ServerResponse, body: string, edit?: (json: any) => unknown): void {
  const target = new URL(req.url!, serveUrl);
  const up = http.request(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (r) => {
    const chunks: Buffer[] = [];
    r.on('data', (c) => chunks.push(c));
    r.on('end', () => {
      let out = Buffer.concat(chunks).toString('utf8');
      if (edit && r.statusCode === 200) out = JSON.stringify(edit(JSON.parse(out)));
      res.writeHead(r.statusCode!, { 'Content-Type': 'application/json' });
      res.end(out);
    });
  });
  up.end(body);
}

function readAll(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => resolve(s));
  });
}

beforeAll(async () => {
  kit = await ensureDemoKit();
  const dir = tempDir('sparserm-endpoint-');
  const renderer = path.join(dir, 'renderer');
  fs.mkdirSync(renderer);
  fs.writeFileSync(path.join(renderer, 'index.html'), '<!doctype html><title>t</title>');
  served = await startServe({ db: path.join(dir, 'db.sqlite'), args: ['--json', '--renderer', renderer, '--policy', kit.checkpoint, '--served-model-name', MODEL, '--ep', 'cpu'] });
  const info = JSON.parse(served.url) as { url: string; token: string };
  token = info.token;
  serveUrl = info.url;
  scorer = await TeacherForced.open(kit.checkpoint);
  local = await localSource({ checkpoint: kit.checkpoint, ep: 'cpu' });
}, 120_000);

afterAll(async () => {
  await served?.stop();
  await scorer?.close();
  await local?.close();
});

describe('endpoint client against sparserm serve --policy', () => {
  it('lists the served model and refuses a request without the token in OpenAI error shape', async () => {
    const ok = await fetch(new URL('/v1/models', serveUrl), { headers: { Authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual([MODEL]);
    const no = await fetch(new URL('/v1/models', serveUrl));
    expect(no.status).toBe(401);
    expect(((await no.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    const src = endpointSource({ url: serveUrl, model: MODEL, apiKey: 'wrong', retries: 0 });
    const err = await src.generate(base()).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).details.field).toBe('apiKey');
  });

  it('greedy candidates equal the local decoder token for token; the summed logprobs equal its logprob', async () => {
    const src = endpointSource({ url: serveUrl, model: MODEL, apiKey: token, retries: 0 });
    expect(src.chatUrl).toBe(chatCompletionsUrl(`${serveUrl}v1`));
    let counted = 0;
    const remote = await src.generate(base({ n: 2, maxNewTokens: 8, onTokens: (k) => (counted += k) }));
    const mine = await local.generate(base({ n: 2, maxNewTokens: 8, seed: deriveSeed(1, MESSAGES, 0) }));
    expect(remote).toHaveLength(2);
    for (let i = 0; i < 2; i++) {
      expect(remote[i]!.tokens).toEqual(mine[i]!.tokens);
      expect(remote[i]!.text).toBe(mine[i]!.text);
      expect(remote[i]!.finishReason).toBe(mine[i]!.finishReason);
      // Decoder's running sum vs the server's teacher-forced pass: two computations of the same quantity.
      expect(Math.abs(remote[i]!.logprob! - mine[i]!.logprob!)).toBeLessThan(1e-4);
    }
    // And against an independent implementation: the full-depth backbone graph with the LM head in TypeScript.
    const prompt = generationPromptIds(scorer.tokenizer, MESSAGES);
    const cut = remote.filter((c) => c.finishReason === 'length');
    expect(cut.length).toBeGreaterThan(0);
    for (const c of cut) {
      const ref = await scorer.tokenLogprobs(prompt, c.tokens!, 1);
      expect(Math.abs(ref.reduce((sum, t) => sum + t.logprob, 0) - c.logprob!)).toBeLessThan(1e-4);
    }
    expect(counted).toBe(remote.reduce((s, c) => s + c.tokens!.length, 0));
  });

  it('a candidate that stops: the stop token is the last logprobs entry, so the summed logprob equals the decoder\'s', async () => {
    // The demo kit's policy with its most frequent token ("\n") also an eos id (generation_config.json), so
    // sampled candidates end with 'stop' at different lengths.
    const dir = tempDir('sparserm-endpoint-eos-');
    const policy = path.join(dir, 'policy');
    fs.cpSync(kit.checkpoint, policy, { recursive: true });
    const nl = scorer.tokenizer.encodeText('\n').slice(1);
    expect(nl).toHaveLength(1);
    fs.writeFileSync(path.join(policy, 'generation_config.json'), JSON.stringify({ eos_token_id: [1, nl[0]] }));
    const renderer = path.join(dir, 'renderer');
    fs.mkdirSync(renderer);
    fs.writeFileSync(path.join(renderer, 'index.html'), '<!doctype html>');
    const second = await startServe({ db: path.join(dir, 'db.sqlite'), args: ['--json', '--renderer', renderer, '--policy', policy, '--ep', 'cpu'] });
    const stopLocal = await localSource({ checkpoint: policy, ep: 'cpu' });
    try {
      const info = JSON.parse(second.url) as { url: string; token: string };
      const src = endpointSource({ url: info.url, model: 'policy', apiKey: info.token, retries: 0 });
      const req = base({ n: 6, temperature: 1.5, seed: 21, maxNewTokens: 10 });
      const remote = await src.generate(req);
      const mine = await stopLocal.generate({ ...req, seed: deriveSeed(21, MESSAGES, 0) });
      expect(remote.some((c) => c.finishReason === 'stop')).toBe(true);
      for (let i = 0; i < remote.length; i++) {
        expect(remote[i]!.tokens).toEqual(mine[i]!.tokens);
        expect(remote[i]!.finishReason).toBe(mine[i]!.finishReason);
        expect(remote[i]!.tokens).not.toContain(nl[0]);
        expect(Math.abs(remote[i]!.logprob! - mine[i]!.logprob!)).toBeLessThan(1e-4);
      }
    } finally {
      await stopLocal.close();
      await second.stop();
    }
  });

  it('n sampled candidates in one request equal the local ones for the derived seed', async () => {
    const src = endpointSource({ url: serveUrl, model: MODEL, apiKey: token, retries: 0 });
    const req = base({ n: 3, temperature: 1.3, topP: 0.95, topK: 50, seed: 11, maxNewTokens: 5 });
    const remote = await src.generate(req);
    const mine = await local.generate({ ...req, seed: deriveSeed(11, MESSAGES, 0) });
    expect(remote.map((c) => c.tokens)).toEqual(mine.map((c) => c.tokens));
    expect(src.unsupported.has('n')).toBe(false);
    // Same request again (a resumed run): the same candidates.
    expect((await src.generate(req)).map((c) => c.tokens)).toEqual(remote.map((c) => c.tokens));
  });

  it('a server that ignores n (one choice back) gets one request per missing candidate, with derived seeds', async () => {
    const seen: { n?: number; seed: number }[] = [];
    const proxy = await httpServer(async (req, res) => {
      const body = await readAll(req);
      const j = JSON.parse(body);
      seen.push({ n: j.n, seed: j.seed });
      forward(req, res, body, (ans) => ({ ...ans, choices: ans.choices.slice(0, 1) }));
    });
    try {
      const src = endpointSource({ url: proxy.url, model: MODEL, apiKey: token, retries: 0 });
      const req = base({ n: 3, temperature: 1, seed: 4, maxNewTokens: 3 });
      const out = await src.generate(req);
      expect(out).toHaveLength(3);
      expect(seen[0]).toEqual({ n: 3, seed: deriveSeed(4, MESSAGES, 0) });
      expect(seen.slice(1).map((s) => s.seed).sort()).toEqual([deriveSeed(4, MESSAGES, 1), deriveSeed(4, MESSAGES, 2)].sort());
      expect(seen.slice(1).every((s) => s.n === undefined)).toBe(true);
      expect(src.unsupported.has('n')).toBe(true);
      // Candidate i of the fallback is what the server gives for candidate i's own seed.
      const one = await local.generate({ ...req, n: 1, seed: deriveSeed(4, MESSAGES, 2) });
      expect(out[2]!.tokens).toEqual(one[0]!.tokens);
    } finally {
      await proxy.close();
    }
  });

  it('retries after 429 honouring Retry-After, then succeeds through the proxy', async () => {
    const arrivals: number[] = [];
    const proxy = await httpServer(async (req, res) => {
      const body = await readAll(req);
      arrivals.push(performance.now());
      if (arrivals.length <= 2) {
        res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '1' });
        return res.end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit' } }));
      }
      forward(req, res, body);
    });
    try {
      const retries: number[] = [];
      const src = endpointSource({ url: proxy.url, model: MODEL, apiKey: token, retries: 3, onRetry: (r) => retries.push(r.waitMs) });
      const out = await src.generate(base({ maxNewTokens: 3 }));
      expect(out[0]!.tokens!.length).toBeGreaterThan(0);
      expect(arrivals).toHaveLength(3);
      expect(retries).toEqual([1000, 1000]);
      expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(950);
      expect(arrivals[2]! - arrivals[1]!).toBeGreaterThanOrEqual(950);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after the retries on persistent 5xx (exponential backoff) and says why', async () => {
    let hits = 0;
    const down = await httpServer((_req, res) => {
      hits++;
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'overloaded' } }));
    });
    try {
      const waits: number[] = [];
      const src = endpointSource({ url: down.url, model: MODEL, retries: 2, backoff: { baseMs: 40, capMs: 1000 }, onRetry: (r) => waits.push(r.waitMs) });
      const err = await src.generate(base()).catch((e) => e);
      expect(err).toBeInstanceOf(EndpointUnavailable);
      expect(String(err.message)).toMatch(/3 attempts.*HTTP 503 \(overloaded\)/);
      expect(hits).toBe(3);
      // Equal jitter: attempt a waits in [base·2^a / 2, base·2^a].
      expect(waits[0]).toBeGreaterThanOrEqual(20);
      expect(waits[0]).toBeLessThanOrEqual(40);
      expect(waits[1]).toBeGreaterThanOrEqual(40);
      expect(waits[1]).toBeLessThanOrEqual(80);
    } finally {
      await down.close();
    }
  });

  it('retries refused connections and timeouts, then names the last reason', async () => {
    const gone = await httpServer(() => undefined);
    const goneUrl = gone.url;
    await gone.close(); // nothing listens there now: connection refused
    const refused = endpointSource({ url: goneUrl, model: MODEL, retries: 1, backoff: { baseMs: 10, capMs: 20 } });
    const e1 = await refused.generate(base()).catch((e) => e);
    expect(e1).toBeInstanceOf(EndpointUnavailable);
    expect(String(e1.message)).toMatch(/2 attempts/);
    const held: http.ServerResponse[] = [];
    const slow = await httpServer((_req, res) => void held.push(res));
    try {
      const timing = endpointSource({ url: slow.url, model: MODEL, retries: 1, timeoutMs: 200, backoff: { baseMs: 10, capMs: 20 } });
      const e2 = await timing.generate(base()).catch((e) => e);
      expect(e2).toBeInstanceOf(EndpointUnavailable);
      expect(String(e2.message)).toMatch(/no answer within 200 ms/);
      expect(held).toHaveLength(2);
    } finally {
      await slow.close();
    }
  });

  it('spaces requests by the rate limit', async () => {
    const arrivals: number[] = [];
    const proxy = await httpServer(async (req, res) => {
      const body = await readAll(req);
      arrivals.push(performance.now());
      forward(req, res, body, (ans) => ({ ...ans, choices: ans.choices.slice(0, 1) }));
    });
    try {
      // 300/min = one request per 200 ms; 4 single requests (the proxy makes the server look n-less).
      const src = endpointSource({ url: proxy.url, model: MODEL, apiKey: token, retries: 0, ratePerMinute: 300, concurrency: 4 });
      await src.generate(base({ n: 4, maxNewTokens: 1, temperature: 1 }));
      expect(arrivals).toHaveLength(4);
      const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
      // Sends are 200 ms apart; arrivals jitter by the socket and event-loop delays on either side.
      for (const g of gaps) expect(g).toBeGreaterThanOrEqual(150);
      expect(arrivals[3]! - arrivals[0]!).toBeGreaterThanOrEqual(3 * 200 - 30);
    } finally {
      await proxy.close();
    }
  });

  it('cancels in flight and while waiting to retry', async () => {
    const held: http.ServerResponse[] = [];
    const hold = await httpServer((_req, res) => void held.push(res));
    const limited = await httpServer((_req, res) => {
      res.writeHead(429, { 'Retry-After': '30' });
      res.end('{}');
    });
    try {
      for (const url of [hold.url, limited.url]) {
        const ac = new AbortController();
        const src = endpointSource({ url, model: MODEL, retries: 5 });
        const t0 = performance.now();
        setTimeout(() => ac.abort(), 150);
        const err = await src.generate(base({ signal: ac.signal })).catch((e) => e);
        expect(err).toBeInstanceOf(CancelledError);
        expect(performance.now() - t0).toBeLessThan(5000);
      }
      expect(held.length).toBe(1);
    } finally {
      await hold.close();
      await limited.close();
    }
  });

  it('a malformed answer is an InputError naming the URL and the field', async () => {
    const answers: unknown[] = [
      { choices: [{ message: { role: 'assistant', content: 5 }, finish_reason: 'stop' }] },
      { object: 'chat.completion' },
      'this is not JSON',
    ];
    let i = 0;
    const bad = await httpServer((_req, res) => {
      const a = answers[i++];
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(typeof a === 'string' ? a : JSON.stringify(a));
    });
    try {
      const src = endpointSource({ url: `${bad.url}/v1`, model: MODEL, retries: 0 });
      const e1 = (await src.generate(base()).catch((e) => e)) as InputError;
      expect(e1).toBeInstanceOf(InputError);
      expect(e1.details.file).toBe(`${bad.url}/v1/chat/completions`);
      expect(e1.details.field).toBe('choices.0.message.content');
      const e2 = (await src.generate(base()).catch((e) => e)) as InputError;
      expect(e2.details.field).toBe('choices');
      const e3 = (await src.generate(base()).catch((e) => e)) as InputError;
      expect(e3).toBeInstanceOf(InputError);
      expect(e3.message).toContain('this is not JSON');
    } finally {
      await bad.close();
    }
  });

  it('drops a field the server refuses by name and asks again without it', async () => {
    const bodies: Record<string, unknown>[] = [];
    const strict = await httpServer(async (req, res) => {
      const body = await readAll(req);
      const j = JSON.parse(body);
      bodies.push(j);
      if ('top_k' in j) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ error: { message: 'Unrecognized request argument supplied: top_k', type: 'invalid_request_error' } }));
      }
      forward(req, res, body);
    });
    try {
      const src = endpointSource({ url: strict.url, model: MODEL, apiKey: token, retries: 0 });
      const out = await src.generate(base({ topK: 5, temperature: 1, maxNewTokens: 2 }));
      expect(out).toHaveLength(1);
      expect(bodies).toHaveLength(2);
      expect(src.unsupported.has('top_k')).toBe(true);
    } finally {
      await strict.close();
    }
  });

  it('option log-probabilities come from a 1-token completion with top_logprobs', async () => {
    const src = endpointSource({ url: serveUrl, model: MODEL, apiKey: token, retries: 0 });
    const prompt = generationPromptIds(scorer.tokenizer, MESSAGES);
    const top = (await scorer.tokenLogprobs(prompt, [0], 2))[0]!.top;
    const texts = top.map((t) => scorer.tokenizer.decode([t.id]));
    const lp = await src.optionLogprobs(MESSAGES, texts);
    expect(lp).not.toBeNull();
    // Both are the two likeliest first tokens: their logprobs as the independent reference computes them (the
    // server's come from the decoder's KV graph: f32 round-off apart).
    for (let i = 0; i < 2; i++) expect(Math.abs(lp![i]! - top[i]!.logprob)).toBeLessThan(1e-4);
  });

  it('the server validates the body: OpenAI error shapes for bad fields, unknown model, unsupported options, size', async () => {
    const post = (body: string) =>
      fetch(new URL('/v1/chat/completions', serveUrl), { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body });
    const bad = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('temperature');
    const stream = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stop: ['\n'] }));
    expect(((await stream.json()) as { error: { param: string } }).error.param).toBe('stop');
    const other = await post(JSON.stringify({ model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] }));
    expect(other.status).toBe(404);
    // Under the 1 MiB body limit but far over the context limit: refused before any decoding.
    const long = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'the moon '.repeat(10_000) }], max_tokens: 4 }));
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { param: string; message: string } }).error).toMatchObject({ param: 'messages', message: expect.stringMatching(/context limit 8192/) });
    const big = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    const src = endpointSource({ url: serveUrl, model: 'gpt-4', apiKey: token, retries: 0 });
    const err = (await src.generate(base()).catch((e) => e)) as InputError;
    expect(err).toBeInstanceOf(InputError);
    expect(err.details.field).toBe('model');
  });
});

describe('top_logprobs selection', () => {
  it('equals a full sort (descending, ties to the lower id)', () => {
    // Values on a coarse grid so there are many ties.
    const lp = Float64Array.from({ length: 500 }, (_, i) => -Math.floor(((i * 7919) % 101) / 3));
    const full = Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b);
    for (const k of [0, 1, 5, 20]) expect(topK(lp, k).map((t) => t.id)).toEqual(full.slice(0, k));
  });
});
