import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { detectFormat, importFile, messagesToText, normalizeRow, RowError, splitImplicitPrompt, textToPromptMessages } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';

describe('TRL standard, implicit prompt', () => {
  it('cuts at the last shared "\\n\\nAssistant:" turn when there is one', () => {
    const c = '\n\nHuman: hi\n\nAssistant: Hello there';
    const r = '\n\nHuman: hi\n\nAssistant: Go away';
    expect(splitImplicitPrompt(c, r)).toEqual({ prompt: '\n\nHuman: hi\n\nAssistant:', chosen: ' Hello there', rejected: ' Go away' });
  });

  it('never splits a word: backs off to the whitespace before it, whitespace goes with the responses (as TRL)', () => {
    expect(splitImplicitPrompt('The sky is blue.', 'The sky is bright.')).toEqual({ prompt: 'The sky is', chosen: ' blue.', rejected: ' bright.' });
    expect(splitImplicitPrompt('Answer: yes', 'Answer: no')).toEqual({ prompt: 'Answer:', chosen: ' yes', rejected: ' no' });
    expect(splitImplicitPrompt('abc', 'xyz')).toEqual({ prompt: '', chosen: 'abc', rejected: 'xyz' });
  });

  it('explicit prompt wins; missing prompt is implicit and flagged in metadata', () => {
    expect(normalizeRow('standard', { prompt: 'Q', chosen: 'a', rejected: 'b' })).toMatchObject({ prompt: 'Q', chosen: 'a', rejected: 'b' });
    const n = normalizeRow('standard', { chosen: 'Q: yes', rejected: 'Q: no' });
    expect(n).toMatchObject({ prompt: 'Q:', chosen: ' yes', rejected: ' no', metadata: { implicit_prompt: true } });
  });
});

describe('TRL conversational', () => {
  const prompt = [{ role: 'user', content: 'What color is the sky?' }];
  it('explicit prompt: messages kept, text = the single turn contents', () => {
    const n = normalizeRow('conversational', { prompt, chosen: [{ role: 'assistant', content: 'Blue.' }], rejected: [{ role: 'assistant', content: 'Green.' }] });
    expect(n).toMatchObject({ prompt: 'What color is the sky?', chosen: 'Blue.', rejected: 'Green.', promptMessages: prompt });
  });
  it('implicit prompt: the shared leading messages', () => {
    const n = normalizeRow('conversational', { chosen: [...prompt, { role: 'assistant', content: 'Blue.' }], rejected: [...prompt, { role: 'assistant', content: 'Green.' }] });
    expect(n.promptMessages).toEqual(prompt);
    expect(n.chosenMessages).toEqual([{ role: 'assistant', content: 'Blue.' }]);
  });
  it('multi-turn prompts render as an HH-style dialogue and parse back losslessly', () => {
    const msgs = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'sky color?' },
    ];
    const text = messagesToText(msgs, { asPrompt: true });
    expect(text).toBe('Human: hi\n\nAssistant: hello\n\nHuman: sky color?\n\nAssistant:');
    expect(textToPromptMessages(text)).toEqual(msgs);
    expect(textToPromptMessages('just a question')).toEqual([{ role: 'user', content: 'just a question' }]);
  });
  it('bad messages name the path and what was expected', () => {
    expect(() => normalizeRow('conversational', { prompt, chosen: [{ role: 'assistant', content: 3 }], rejected: [] })).toThrow(/field "chosen\[0\]\.content": expected a string, got number/);
    expect(() => normalizeRow('conversational', { prompt, chosen: 'text', rejected: [] })).toThrow(RowError);
    expect(() => normalizeRow('conversational', { prompt, chosen: [{ role: 'assistant', content: 'a' }], rejected: [] })).toThrow(/at least one response message/);
  });
});

describe('UltraFeedback-binarized', () => {
  const row = {
    prompt: 'Write a haiku',
    prompt_id: 'abc123',
    chosen: [
      { role: 'user', content: 'Write a haiku' },
      { role: 'assistant', content: 'Old pond, frog jumps in' },
    ],
    rejected: [
      { role: 'user', content: 'Write a haiku' },
      { role: 'assistant', content: 'No.' },
    ],
    messages: [],
    score_chosen: 8.5,
    score_rejected: 2,
  };
  it('imports from a JSONL file by auto-detection and exports back as conversational', async () => {
    const dir = tempDir();
    const f = path.join(dir, 'uf.jsonl');
    fs.writeFileSync(f, [row, { ...row, prompt_id: 'def', chosen: [row.chosen[0], { role: 'assistant', content: 'Leaves fall' }] }].map((r) => JSON.stringify(r)).join('\n'));
    const s = openStore(':memory:');
    const r = await importFile(s, f, { dataset: 'uf' });
    expect(r).toMatchObject({ format: 'ultrafeedback', imported: 2, duplicates: 0 });
    const p = s.pairs.list({ datasetId: r.datasetId }).items[1]!;
    expect(p).toMatchObject({ externalId: 'def', prompt: 'Write a haiku', chosen: 'Leaves fall', promptMessages: [{ role: 'user', content: 'Write a haiku' }] });
    expect(p.metadata).toMatchObject({ score_chosen: 8.5 });
  });

  it('prompt from the shared user turn, responses = assistant turns, scores kept as metadata', () => {
    expect(detectFormat([row])).toBe('ultrafeedback');
    const n = normalizeRow('ultrafeedback', row);
    expect(n).toMatchObject({ prompt: 'Write a haiku', chosen: 'Old pond, frog jumps in', rejected: 'No.', externalId: 'abc123', metadata: { score_chosen: 8.5, score_rejected: 2, prompt_id: 'abc123' } });
  });
});

describe('format detection', () => {
  it('detects each format from its first rows, with a majority vote', () => {
    expect(detectFormat([{ prompt: 'p', chosen: 'c', rejected: 'r' }])).toBe('standard');
    expect(detectFormat([{ chosen: '\n\nHuman: a\n\nAssistant: b', rejected: '\n\nHuman: a\n\nAssistant: c' }])).toBe('hh');
    expect(detectFormat([{ prompt: [{ role: 'user', content: 'a' }], chosen: [{ role: 'assistant', content: 'b' }], rejected: [{ role: 'assistant', content: 'c' }] }])).toBe('conversational');
    expect(detectFormat([{ prompt: 'p', response_0: 'a', response_1: 'b', safer_response_id: 0 }])).toBe('pku');
    expect(detectFormat([{ x: 1 }, null, { prompt: 'p', chosen: 'c', rejected: 'r' }])).toBe('standard');
    expect(detectFormat([{ x: 1 }])).toBeNull();
  });

  it('the --format override wins over detection', async () => {
    const dir = tempDir();
    const f = path.join(dir, 'hh-as-standard.jsonl');
    fs.writeFileSync(f, JSON.stringify({ chosen: '\n\nHuman: a\n\nAssistant: b', rejected: '\n\nHuman: a\n\nAssistant: c' }) + '\n');
    const s = openStore(':memory:');
    const auto = await importFile(s, f, { dataset: 'auto' });
    const forced = await importFile(s, f, { dataset: 'forced', format: 'standard' });
    expect(auto.format).toBe('hh');
    expect(forced.format).toBe('standard');
    expect(s.pairs.list({ datasetId: auto.datasetId }).items[0]).toMatchObject({ prompt: 'Human: a\n\nAssistant:', chosen: 'b' });
    expect(s.pairs.list({ datasetId: forced.datasetId }).items[0]).toMatchObject({ prompt: '\n\nHuman: a\n\nAssistant:', chosen: ' b' });
  });

  it('HH rows whose dialogues share no Assistant turn are reported, not guessed', () => {
    expect(() => normalizeRow('hh', { chosen: '\n\nHuman: a', rejected: '\n\nHuman: b' })).toThrow(/sharing a prefix that ends with/);
  });

  it('PKU: safer_response_id must be 0 or 1', () => {
    expect(() => normalizeRow('pku', { prompt: 'p', response_0: 'a', response_1: 'b', safer_response_id: 2 })).toThrow(/field "safer_response_id": expected 0 or 1/);
  });
});
