/**
 * A tiny deterministic CandidateSource for unit tests of the workflow's pairing, storage and resume logic (not a
 * model: the real sources are the engine's decoder and the endpoint client, tested on their own). Its texts depend
 * on the prompt, the instruction, the seed and the candidate index; its judge prefers the longer response plus a
 * fixed bias towards whichever response is shown first (so averaging both orders must cancel it).
 */
import type { ChatMessage } from '../../../main/engine/backbone/chat-template';
import type { Candidate, CandidateSource, GenerateRequest } from '../../../main/engine/generate/types';

export const WORDS = ['the moon', 'is made of', 'rock', 'cheese', 'and', 'dust', 'according to', 'folklore', 'science', 'very old'];

export interface TestSourceOptions {
  /** Throw (as if the process died) when asked for this many-th generate call (1-based). */
  failAt?: number;
  /** Features to attach as Candidate.captured, keyed by candidate text. */
  captured?: (prompt: ChatMessage[], text: string) => Float32Array | undefined;
  /** optionLogprobs gives null (an endpoint without logprobs). */
  noLogprobs?: boolean;
  positionBias?: number;
}

export class TestSource implements CandidateSource {
  readonly description = { kind: 'local' as const, policy: 'test-policy-hash', label: 'test policy' };
  calls: GenerateRequest[] = [];
  judged: ChatMessage[][] = [];
  closed = false;
  constructor(private readonly opts: TestSourceOptions = {}) {}

  async generate(req: GenerateRequest): Promise<Candidate[]> {
    this.calls.push(req);
    if (this.opts.failAt !== undefined && this.calls.length === this.opts.failAt) throw new Error('simulated crash');
    const prompt = req.messages.map((m) => m.content).join(' ');
    const out: Candidate[] = [];
    for (let i = 0; i < req.n; i++) {
      let h = req.seed ^ (i * 2654435761);
      for (const ch of prompt) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
      const len = 2 + (h % 5);
      const words = Array.from({ length: len }, (_, k) => WORDS[(h >>> (k * 3)) % WORDS.length]!);
      const text = words.join(' ');
      const tokens = Array.from(text, (c) => c.charCodeAt(0)).slice(0, req.maxNewTokens);
      req.onTokens?.(tokens.length);
      const captured = this.opts.captured?.(req.messages, text);
      out.push({ text, tokens, logprob: -tokens.length / 2, finishReason: tokens.length >= req.maxNewTokens ? 'length' : 'stop', ...(captured ? { captured } : {}) });
    }
    return out;
  }

  async optionLogprobs(messages: ChatMessage[], options: string[]): Promise<number[] | null> {
    if (this.opts.noLogprobs) return null;
    this.judged.push(messages);
    const body = messages[messages.length - 1]!.content;
    const a = body.split('[Response A]\n')[1]!.split('\n\n[Response B]')[0]!;
    const b = body.split('[Response B]\n')[1]!.split('\n\nWhich response')[0]!;
    const bias = this.opts.positionBias ?? 0.7;
    // log p(A) − log p(B) = 0.1·(len A − len B) + bias: the first shown wins ties and close calls in one order only.
    return options.map((o) => (o === 'A' ? -1 + 0.1 * a.length + bias : -1 + 0.1 * b.length));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
