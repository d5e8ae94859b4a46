/**
 * The HTTP side of the endpoint source: a token-bucket rate limit, a concurrency cap, and POSTs retried with
 * exponential backoff + jitter on 429 / 5xx / network errors / timeouts, honouring Retry-After. Hand-written
 * because the npm retry helpers (p-retry, async-retry) know nothing about Retry-After, and both pieces are small.
 */
import { CancelledError } from '../errors';

/** Resolves after ms, or rejects with CancelledError when the signal fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * At most `perMinute` requests per minute, evenly spaced (bucket of one token): a server's per-minute quota is
 * never hit in a burst at the start of a run. Every attempt, retries included, takes a token.
 */
export class TokenBucket {
  private next = 0;
  constructor(private readonly perMinute: number) {}

  get intervalMs(): number {
    return 60_000 / this.perMinute;
  }

  async take(signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.next);
    // Reserve the slot before waiting, so concurrent callers queue behind each other in call order.
    this.next = at + this.intervalMs;
    if (at > now) await sleep(at - now, signal);
  }
}

/** A FIFO semaphore: at most `limit` requests in flight per source. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const wake = this.waiting.shift();
      if (wake) wake();
      else this.active--;
    }
  }
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  const s = header.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

/** Exponential backoff with "equal jitter": half fixed, half random, so parallel clients spread out. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  const full = Math.min(capMs, baseMs * 2 ** attempt);
  return full / 2 + random() * (full / 2);
}

export interface HttpAnswer {
  status: number;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  text: string;
}

/** A failure worth another attempt (429, 5xx, network, timeout), after `waitMs` when the server said so. */
class Retryable extends Error {
  constructor(
    message: string,
    readonly waitMs: number | null,
  ) {
    super(message);
  }
}

export interface TransportOptions {
  retries: number;
  timeoutMs: number;
  bucket: TokenBucket | null;
  semaphore: Semaphore;
  headers: Record<string, string>;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Told before each retry's wait (stderr progress in the CLI, counted in tests). */
  onRetry?: (info: { attempt: number; waitMs: number; reason: string }) => void;
}

const RETRY_STATUS = (s: number) => s === 429 || s === 408 || s >= 500;

/** One attempt: rate limit, then POST with a per-attempt timeout joined to the caller's signal. */
async function attempt(url: string, payload: string, o: TransportOptions, signal?: AbortSignal): Promise<HttpAnswer> {
  if (o.bucket) await o.bucket.take(signal);
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const joined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...o.headers }, body: payload, signal: joined });
    text = await res.text();
  } catch (err) {
    if (signal?.aborted) throw new CancelledError();
    if (timeout.aborted) throw new Retryable(`no answer within ${o.timeoutMs} ms`, null);
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new Retryable(`${err instanceof Error ? err.message : String(err)}${cause}`, null);
  }
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: the caller reports it */
  }
  if (RETRY_STATUS(res.status)) throw new Retryable(`HTTP ${res.status}${serverMessage(body) ? ` (${serverMessage(body)})` : ''}`, retryAfterMs(res.headers.get('retry-after')));
  return { status: res.status, body, text };
}

/** The message of an OpenAI-shaped error body ({error: {message}}), or of a bare {message}/{error: string}. */
export function serverMessage(body: unknown): string | null {
  if (!body || typeof body !== 'object') return null;
  const b = body as { error?: unknown; message?: unknown; detail?: unknown };
  if (b.error && typeof b.error === 'object' && typeof (b.error as { message?: unknown }).message === 'string') return (b.error as { message: string }).message;
  if (typeof b.error === 'string') return b.error;
  if (typeof b.message === 'string') return b.message;
  if (typeof b.detail === 'string') return b.detail;
  return null;
}

/** Thrown when every attempt failed with a retryable error; the message lists the last reason. */
export class EndpointUnavailable extends Error {
  constructor(url: string, attempts: number, reason: string) {
    super(`${url}: no usable answer after ${attempts} attempt${attempts === 1 ? '' : 's'} (last: ${reason})`);
    this.name = 'EndpointUnavailable';
  }
}

/**
 * POSTs `payload` as JSON, retrying up to `o.retries` times. Non-retryable answers (2xx, 4xx other than 408/429)
 * are returned for the caller to judge.
 */
export async function postJson(url: string, payload: unknown, o: TransportOptions, signal?: AbortSignal): Promise<HttpAnswer> {
  const text = JSON.stringify(payload);
  for (let a = 0; ; a++) {
    try {
      return await o.semaphore.run(() => attempt(url, text, o, signal));
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      if (a >= o.retries) throw new EndpointUnavailable(url, a + 1, err.message);
      const waitMs = err.waitMs ?? backoffMs(a, o.backoffBaseMs ?? 500, o.backoffCapMs ?? 30_000);
      o.onRetry?.({ attempt: a + 1, waitMs, reason: err.message });
      // Waiting happens outside the semaphore: a backing-off request does not hold a slot.
      await sleep(waitMs, signal);
    }
  }
}
