/**
 * The length policy as a pure function on encoded sequences: prompt cut first (oldest tokens, right after BOS and the
 * first turn header), then the end of the response; spans stay consistent; exact lengths; BOS kept. Plus the
 * max-token setting's bounds (max_position_embeddings).
 */
import { describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { DEFAULT_MAX_TOKENS, resolveMaxTokens, truncateEncoding, type SpanEncoding } from '../../../main/engine/sparserm/length-policy';

const BOS = 2;
const SOT = 106; // <start_of_turn>
const EOT = 107; // <end_of_turn>

/**
 * A Gemma-shaped encoding: <bos><sot>user\n P… <eot>\n<sot>model\n R… <eot>\n, prompt tokens 1000+i, response
 * tokens 2000+i, so every kept token tells where it came from.
 */
function encoding(promptLen: number, responseLen: number): SpanEncoding {
  const head = [BOS, SOT, 9, 10];
  const prompt = Array.from({ length: promptLen }, (_, i) => 1000 + i);
  const mid = [EOT, 10, SOT, 11, 10];
  const response = Array.from({ length: responseLen }, (_, i) => 2000 + i);
  const tail = [EOT, 10];
  const ids = [...head, ...prompt, ...mid, ...response, ...tail];
  const promptStart = head.length;
  const promptEnd = promptStart + promptLen;
  const responseStart = promptEnd + mid.length;
  const responseEnd = responseStart + responseLen;
  const empty = responseLen === 0;
  return { ids, promptStart, promptEnd, responseStart, responseEnd, empty, poolStart: responseStart, poolEnd: empty ? responseStart + 1 : responseEnd };
}

const OVERHEAD = 4 + 5 + 2; // head + mid + tail markup tokens

const slice = (e: SpanEncoding, a: number, b: number) => e.ids.slice(a, b);

describe('truncateEncoding', () => {
  it('returns the encoding itself when it fits (same ids, so the same feature key as before the policy)', () => {
    const e = encoding(10, 10);
    expect(e.ids).toHaveLength(OVERHEAD + 20);
    const r = truncateEncoding(e, OVERHEAD + 20);
    expect(r.encoding).toBe(e);
    expect(r.truncation).toBeUndefined();
  });

  it('cuts the oldest prompt tokens first, right after BOS and the first turn header', () => {
    const e = encoding(30, 10);
    const max = OVERHEAD + 25; // 15 too many: all from the prompt
    const { encoding: c, truncation } = truncateEncoding(e, max);
    expect(c.ids).toHaveLength(max);
    expect(truncation).toEqual({ prompt: 15, response: 0, original: OVERHEAD + 40 });
    expect(slice(c, 0, 4)).toEqual([BOS, SOT, 9, 10]);
    // The newest 15 prompt tokens stay, in order, and the span covers exactly them.
    expect(slice(c, c.promptStart, c.promptEnd)).toEqual(Array.from({ length: 15 }, (_, i) => 1015 + i));
    expect(slice(c, c.promptEnd, c.responseStart)).toEqual([EOT, 10, SOT, 11, 10]);
    expect(slice(c, c.responseStart, c.responseEnd)).toEqual(slice(e, e.responseStart, e.responseEnd));
    expect([c.poolStart, c.poolEnd]).toEqual([c.responseStart, c.responseEnd]);
    expect(slice(c, c.responseEnd, c.ids.length)).toEqual([EOT, 10]);
    // The input is not modified.
    expect(e.ids).toHaveLength(OVERHEAD + 40);
  });

  it('then cuts the end of the response, keeping its closing markup', () => {
    const e = encoding(20, 50);
    const max = OVERHEAD + 30; // 40 too many: the whole prompt (20), then 20 response tokens from its end
    const { encoding: c, truncation } = truncateEncoding(e, max);
    expect(c.ids).toHaveLength(max);
    expect(truncation).toEqual({ prompt: 20, response: 20, original: OVERHEAD + 70 });
    expect(c.promptStart).toBe(c.promptEnd);
    expect(slice(c, 0, 4)).toEqual([BOS, SOT, 9, 10]);
    expect(slice(c, c.responseStart, c.responseEnd)).toEqual(Array.from({ length: 30 }, (_, i) => 2000 + i));
    expect([c.poolStart, c.poolEnd]).toEqual([c.responseStart, c.responseEnd]);
    expect(slice(c, c.responseEnd, c.ids.length)).toEqual([EOT, 10]);
  });

  it('is exact for every max from the minimum up (lengths, span sizes, BOS, order)', () => {
    const e = encoding(17, 23);
    for (let max = OVERHEAD + 1; max <= e.ids.length + 3; max++) {
      const { encoding: c, truncation: t } = truncateEncoding(e, max);
      // A single-turn prompt is one user turn: turn markers change nothing.
      expect(truncateEncoding(e, max, { startOfTurn: SOT, endOfTurn: EOT }).encoding.ids).toEqual(c.ids);
      const cut = Math.max(0, e.ids.length - max);
      expect(c.ids).toHaveLength(e.ids.length - cut);
      expect(c.ids[0]).toBe(BOS);
      expect(c.ids.filter((x) => x === BOS)).toHaveLength(1);
      const p = t?.prompt ?? 0;
      const r = t?.response ?? 0;
      expect(p + r).toBe(cut);
      expect(p).toBe(Math.min(cut, 17));
      expect(c.promptEnd - c.promptStart).toBe(17 - p);
      expect(c.responseEnd - c.responseStart).toBe(23 - r);
      expect(c.responseEnd - c.responseStart).toBeGreaterThanOrEqual(1);
      // Kept tokens are a subsequence of the original, in order.
      let j = 0;
      for (const id of c.ids) {
        while (j < e.ids.length && e.ids[j] !== id) j++;
        expect(j).toBeLessThan(e.ids.length);
        j++;
      }
    }
  });

  it('an empty response keeps its pooled <end_of_turn>', () => {
    const e = encoding(40, 0);
    const { encoding: c, truncation } = truncateEncoding(e, OVERHEAD + 5);
    expect(truncation).toEqual({ prompt: 35, response: 0, original: OVERHEAD + 40 });
    expect(c.poolEnd - c.poolStart).toBe(1);
    expect(c.ids[c.poolStart]).toBe(EOT);
    expect(c.responseStart).toBe(c.responseEnd);
  });

  it('refuses a max that cannot hold BOS, the markup and one response token, naming maxTokens', () => {
    const e = encoding(5, 5);
    let err: unknown;
    try {
      truncateEncoding(e, OVERHEAD);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).details.field).toBe('maxTokens');
    expect((err as Error).message).toMatch(new RegExp(`at least ${OVERHEAD + 1} tokens`));
  });

  it('a 50,000-token response is cut in linear time to exactly max tokens', () => {
    const e = encoding(3000, 50_000);
    const t0 = performance.now();
    const { encoding: c, truncation } = truncateEncoding(e, 1024);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(c.ids).toHaveLength(1024);
    expect(truncation).toEqual({ prompt: 3000, response: 50_000 - (1024 - OVERHEAD), original: OVERHEAD + 53_000 });
  });
});

describe('truncateEncoding through a multi-turn history (turn markers given)', () => {
  const USER = [SOT, 9, 10]; // <start_of_turn>user\n
  const MODEL = [SOT, 11, 10]; // <start_of_turn>model\n
  const CLOSE = [EOT, 10]; // <end_of_turn>\n
  const turns = { startOfTurn: SOT, endOfTurn: EOT };
  /** user u1 (10 tokens), model m1 (10), user u2 (6), then the response (8): content tokens 1000+/3000+/1100+/2000+. */
  function conversation(): SpanEncoding & { u2: number } {
    const u1 = Array.from({ length: 10 }, (_, i) => 1000 + i);
    const m1 = Array.from({ length: 10 }, (_, i) => 3000 + i);
    const u2 = Array.from({ length: 6 }, (_, i) => 1100 + i);
    const response = Array.from({ length: 8 }, (_, i) => 2000 + i);
    const ids = [BOS, ...USER, ...u1, ...CLOSE, ...MODEL, ...m1, ...CLOSE, ...USER, ...u2, ...CLOSE, ...MODEL, ...response, ...CLOSE];
    const promptStart = 1 + USER.length;
    const u2Start = ids.indexOf(1100);
    const promptEnd = u2Start + u2.length;
    const responseStart = ids.indexOf(2000);
    const responseEnd = responseStart + response.length;
    return { ids, promptStart, promptEnd, responseStart, responseEnd, empty: false, poolStart: responseStart, poolEnd: responseEnd, u2: u2Start };
  }

  it('a cut inside the first user turn stays exact (the kept tail is still user text)', () => {
    const e = conversation();
    const { encoding: c, truncation } = truncateEncoding(e, e.ids.length - 4, turns);
    expect(c.ids).toHaveLength(e.ids.length - 4);
    expect(truncation).toEqual({ prompt: 4, response: 0, original: e.ids.length });
    expect(c.ids.slice(0, 6)).toEqual([BOS, ...USER, 1004, 1005]);
  });

  it('a cut inside a model turn or the markup moves to the next user turn: no model text under a user header', () => {
    const e = conversation();
    // Cutting k prompt tokens: 11 leaves half the markup closing u1, 12..14 the model header, 15..24 model content,
    // 25..26 the markup closing it, 27..29 part of u2's header; 30 is exactly u2's first token.
    for (let cut = 11; cut <= 30; cut++) {
      const { encoding: c, truncation } = truncateEncoding(e, e.ids.length - cut, turns);
      expect(truncation!.prompt).toBe(e.u2 - e.promptStart);
      expect(c.ids.length).toBeLessThanOrEqual(e.ids.length - cut);
      expect(c.ids.slice(0, 4 + 6)).toEqual([BOS, ...USER, 1100, 1101, 1102, 1103, 1104, 1105]);
      expect(c.ids.slice(c.promptStart, c.promptEnd)).toEqual([1100, 1101, 1102, 1103, 1104, 1105]);
      expect(c.ids.slice(c.responseStart, c.responseEnd)).toEqual(e.ids.slice(e.responseStart, e.responseEnd));
      expect(c.ids.filter((x) => x >= 3000 && x < 3100)).toEqual([]);
    }
  });

  it('all of u1 cut: an empty first user turn, then the model turn, is well-formed and exact', () => {
    const e = conversation();
    const { encoding: c } = truncateEncoding(e, e.ids.length - 10, turns);
    expect(c.ids).toHaveLength(e.ids.length - 10);
    expect(c.ids.slice(0, 1 + USER.length + CLOSE.length + MODEL.length + 1)).toEqual([BOS, ...USER, ...CLOSE, ...MODEL, 3000]);
  });

  it('a cut inside the last user turn stays exact; without turn markers every cut is exact', () => {
    const e = conversation();
    const inU2 = e.u2 - e.promptStart + 2;
    const { encoding: c } = truncateEncoding(e, e.ids.length - inU2, turns);
    expect(c.ids).toHaveLength(e.ids.length - inU2);
    expect(c.ids.slice(0, 6)).toEqual([BOS, ...USER, 1102, 1103]);
    const plain = truncateEncoding(e, e.ids.length - 15).encoding;
    expect(plain.ids).toHaveLength(e.ids.length - 15);
    expect(plain.ids[4]).toBe(3000); // model text right after the user header: what the markers prevent
  });

  it('the response is cut only for what the prompt could not give', () => {
    const e = conversation();
    const promptLen = e.promptEnd - e.promptStart;
    const { encoding: c, truncation } = truncateEncoding(e, e.ids.length - promptLen - 3, turns);
    expect(truncation).toEqual({ prompt: promptLen, response: 3, original: e.ids.length });
    expect(c.ids.slice(c.responseStart, c.responseEnd)).toEqual([2000, 2001, 2002, 2003, 2004]);
    expect(c.ids.slice(0, 4)).toEqual([BOS, ...USER]);
    expect(c.ids.slice(4, 4 + CLOSE.length + MODEL.length)).toEqual([...CLOSE, ...MODEL]);
  });
});

describe('resolveMaxTokens', () => {
  const cfg = { maxPositionEmbeddings: 8192 };
  it('defaults to 1,024, lowered to max_position_embeddings when that is smaller', () => {
    expect(resolveMaxTokens(undefined, cfg, 'config.json')).toBe(DEFAULT_MAX_TOKENS);
    expect(DEFAULT_MAX_TOKENS).toBe(1024);
    expect(resolveMaxTokens(undefined, { maxPositionEmbeddings: 512 }, 'config.json')).toBe(512);
    expect(resolveMaxTokens(undefined, {}, 'config.json')).toBe(1024);
    expect(resolveMaxTokens(8192, cfg, 'config.json')).toBe(8192);
  });
  it('refuses a value above max_position_embeddings, naming the field, the file and the limit', () => {
    expect(() => resolveMaxTokens(8193, cfg, '/ckpt/config.json')).toThrow(InputError);
    expect(() => resolveMaxTokens(8193, cfg, '/ckpt/config.json')).toThrow(/\/ckpt\/config\.json.*maxTokens.*max_position_embeddings \(8192\).*8193/s);
    expect(() => resolveMaxTokens(0, cfg, 'config.json')).toThrow(/maxTokens.*positive integer/s);
    expect(() => resolveMaxTokens(1.5, cfg, 'config.json')).toThrow(/maxTokens/);
  });
});
