import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { PRESETS, presetById } from '../../../main/engine/generate/presets';
import { readPromptsFile } from '../../../main/engine/generate/prompts-file';
import { bestWorstPairs, distinctPairs, instructedPairs, judgePair, judgeMessages, marginPairs, selfJudgedPairs, withInstruction, type PairableCandidate } from '../../../main/engine/generate/recipes';
import { tempDir } from '../../helpers/paths';
import { TestSource } from './test-source';

let nextId = 1;
const cand = (promptIndex: number, candidateIndex: number, text: string, score: number | null, variant = ''): PairableCandidate => ({ id: nextId++, promptIndex, variant, candidateIndex, text, score });

describe('pairing recipes', () => {
  it('instructed: the k-th answer to the "chosen" instruction against the k-th to the "rejected" one, per prompt', () => {
    const cs = [cand(0, 0, 'w0', 1, 'chosen'), cand(0, 1, 'w1', 0, 'chosen'), cand(0, 0, 'l0', 2, 'rejected'), cand(0, 1, 'l1', -1, 'rejected'), cand(1, 0, 'w', 0, 'chosen')];
    const pairs = instructedPairs(cs);
    expect(pairs.map((p) => [p.promptIndex, p.chosen.text, p.rejected.text, p.labelBy])).toEqual([
      [0, 'w0', 'l0', 'instruction'],
      [0, 'w1', 'l1', 'instruction'],
    ]);
  });

  it('pairs of two identical responses are left out (they teach DPO nothing)', () => {
    const pairs = instructedPairs([cand(0, 0, '', 1, 'chosen'), cand(0, 0, '', 0, 'rejected'), cand(1, 0, 'yes', 1, 'chosen'), cand(1, 0, 'no', 0, 'rejected')]);
    expect(pairs).toHaveLength(2);
    expect(distinctPairs(pairs).map((p) => p.promptIndex)).toEqual([1]);
  });

  it('best-worst: highest against lowest score per prompt; all-equal prompts give no pair', () => {
    const cs = [cand(0, 0, 'a', 0.5), cand(0, 1, 'b', 2), cand(0, 2, 'c', -3), cand(0, 3, 'd', 2), cand(1, 0, 'x', 1), cand(1, 1, 'y', 1)];
    const pairs = bestWorstPairs(cs);
    expect(pairs).toHaveLength(1);
    // Ties for best go to the lower candidate index.
    expect([pairs[0]!.chosen.text, pairs[0]!.rejected.text]).toEqual(['b', 'c']);
    expect(() => bestWorstPairs([cand(0, 0, 'a', null), cand(0, 1, 'b', 1)])).toThrow(InputError);
  });

  it('margin: every pair whose score difference exceeds delta, the higher one chosen', () => {
    const cs = [cand(0, 0, 'a', 0), cand(0, 1, 'b', 1), cand(0, 2, 'c', 3)];
    const all = marginPairs(cs, 0).map((p) => `${p.chosen.text}>${p.rejected.text}`);
    expect(all).toEqual(['b>a', 'c>a', 'c>b']);
    expect(marginPairs(cs, 1.5).map((p) => `${p.chosen.text}>${p.rejected.text}`)).toEqual(['c>a', 'c>b']);
    // Exactly delta is not "exceeds".
    expect(marginPairs(cs, 3)).toEqual([]);
    expect(() => marginPairs(cs, -1)).toThrow(/delta/);
  });

  it('self-judged: both orders averaged cancel a position bias of the judge', async () => {
    const src = new TestSource({ positionBias: 5 });
    // One order alone would always pick whichever is shown first (bias 5 ≫ length effect).
    const r = await judgePair(src, 'Q?', 'short', 'a much longer answer');
    expect(r).not.toBeNull();
    expect(r!.firstOrder).toBeGreaterThan(0);
    expect(r!.swappedOrder).toBeLessThan(0);
    // Length effect: 0.1·(5 − 20) = −1.5 in each order; the bias (±5) cancels in the mean.
    expect(r!.preference).toBeCloseTo(-1.5, 10);
    const pairs = await selfJudgedPairs([cand(0, 0, 'short', null), cand(0, 1, 'a much longer answer', null), cand(0, 2, 'odd one out', null)], () => 'Q?', src);
    expect(pairs).toHaveLength(1); // (0,1); candidate 2 has no partner
    expect(pairs[0]!.chosen.text).toBe('a much longer answer');
    expect(pairs[0]!.labelBy).toBe('self-judge');
    expect(src.judged).toHaveLength(4); // 2 orders for judgePair + 2 for the recipe
  });

  it('self-judged refuses a policy without answer log-probabilities', async () => {
    await expect(selfJudgedPairs([cand(0, 0, 'a', null), cand(0, 1, 'b', null)], () => 'Q', new TestSource({ noLogprobs: true }))).rejects.toThrow(/log-probabilities/);
  });

  it('the judging prompt holds the conversation and both responses; instructions go before the first user turn', () => {
    const [m] = judgeMessages('What is 2+2?', 'four', 'five');
    expect(m!.role).toBe('user');
    expect(m!.content).toContain('What is 2+2?');
    expect(m!.content.indexOf('four')).toBeLessThan(m!.content.indexOf('five'));
    const msgs = withInstruction([{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: 'again' }], 'Be truthful.');
    expect(msgs.map((x) => x.content)).toEqual(['sys', 'Be truthful.\n\nhi', 'yo', 'again']);
  });

  it('ships TruthfulQA and SafeRLHF presets with distinct instructions', () => {
    expect(PRESETS.map((p) => p.id)).toEqual(['truthfulqa', 'saferlhf']);
    for (const p of PRESETS) expect(p.instructions.chosen).not.toBe(p.instructions.rejected);
    expect(presetById('saferlhf')!.instructions.rejected).toMatch(/regardless/);
    expect(presetById('nope')).toBeUndefined();
  });
});

describe('prompts files', () => {
  const dir = tempDir('sparserm-prompts-');
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  it('reads JSON Lines with "prompt" text or messages, or "messages"; duplicates dropped', () => {
    const f = write('p.jsonl', [
      JSON.stringify({ prompt: 'What is the capital of France?' }),
      '',
      JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'Tell me a joke' }] }),
      JSON.stringify({ prompt: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'final answer dropped' }] }),
      JSON.stringify({ prompt: 'What is the capital of France?' }),
    ].join('\n'));
    const ps = readPromptsFile(f);
    expect(ps).toHaveLength(3);
    expect(ps[0]).toEqual({ prompt: 'What is the capital of France?', messages: [{ role: 'user', content: 'What is the capital of France?' }] });
    expect(ps[1]!.messages).toHaveLength(3);
    expect(ps[1]!.prompt).toBe('Human: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant:');
    expect(ps[2]!.messages).toEqual([{ role: 'user', content: 'Q' }]);
  });

  it('reads plain text, one prompt per line', () => {
    const ps = readPromptsFile(write('p.txt', 'Why is the sky blue?\r\n\n  Do cats dream?  \n'));
    expect(ps.map((p) => p.prompt)).toEqual(['Why is the sky blue?', 'Do cats dream?']);
  });

  it('names the file, line and field of a bad row', () => {
    const f = write('bad.jsonl', `${JSON.stringify({ prompt: 'ok' })}\n${JSON.stringify({ prompt: 3 })}\n`);
    try {
      readPromptsFile(f);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      const d = (e as InputError).details;
      expect([d.file, d.line, d.field]).toEqual([f, 2, 'prompt']);
      expect((e as Error).message).toMatch(/prompt/);
    }
    expect(() => readPromptsFile(write('norole.jsonl', JSON.stringify({ messages: [{ role: 'bot', content: 'x' }] })))).toThrow(/field "messages\.0\.role"/);
    expect(() => readPromptsFile(write('nokey.jsonl', JSON.stringify({ text: 'x' })))).toThrow(/line 1, field "prompt": expected a "prompt" \(text or messages\) or a "messages" list/);
    expect(() => readPromptsFile(write('bad2.jsonl', '{"prompt": "a"}\n{oops\n'))).toThrow(/line 2/);
    expect(() => readPromptsFile(write('empty.txt', '\n\n'))).toThrow(/empty/);
    expect(() => readPromptsFile(path.join(dir, 'missing.txt'))).toThrow(InputError);
    expect(() => readPromptsFile(write('sys.jsonl', JSON.stringify({ messages: [{ role: 'system', content: 's' }] })))).toThrow(/user/);
  });
});
