/**
 * The Generate screen's store: the request it sends is what the API contract accepts (parsed by the contract's own
 * schema, so a drift between the form and startGeneration fails here), invalid fields hold it back, and the job's
 * progress message yields its tokens/s.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createPinia, setActivePinia } from 'pinia';
import { contract } from '../../../main/api/contract';
import { PRESETS } from '../../../main/engine/generate/presets';
import { tokensPerSecond, useGenerateStore } from '../../../renderer/src/stores/generate';

describe('Generate store', () => {
  beforeEach(() => setActivePinia(createPinia()));

  function filled() {
    const gen = useGenerateStore();
    gen.presets = PRESETS.map((p) => ({ ...p, instructions: { ...p.instructions } }));
    gen.promptSource = 'file';
    gen.promptsPath = '/data/prompts.jsonl';
    gen.checkpointId = 'ckpt-1';
    gen.rewardModelId = 'rm-1';
    gen.applyPreset('truthfulqa');
    return gen;
  }

  it('sends an instructed request the contract accepts, with the instructions as shown (edited or from a preset)', () => {
    const gen = filled();
    gen.applyPreset('saferlhf');
    gen.text.n = '3';
    gen.text.temperature = '0';
    gen.text.maxNewTokens = '16';
    const req = contract.startGeneration.input.parse(gen.request());
    expect(req).toMatchObject({
      prompts: { path: '/data/prompts.jsonl' },
      policy: { kind: 'local', checkpointId: 'ckpt-1' },
      n: 3,
      sampling: { temperature: 0, topP: 0.95, topK: 0, seed: 0, maxNewTokens: 16 },
      recipe: 'instructed',
      preset: 'saferlhf',
      instructions: PRESETS.find((p) => p.id === 'saferlhf')!.instructions,
      rewardModelId: 'rm-1',
    });
    gen.rejectedInstruction = 'Answer rudely.';
    expect(contract.startGeneration.input.parse(gen.request()).instructions).toEqual({ chosen: gen.chosenInstruction, rejected: 'Answer rudely.' });
  });

  it('sends margin with δ, an endpoint policy and a dataset of prompts; other recipes carry no recipe fields', () => {
    const gen = filled();
    gen.recipe = 'margin';
    gen.text.delta = '0.25';
    gen.policyKind = 'endpoint';
    gen.endpointUrl = ' http://127.0.0.1:8000/v1 ';
    gen.endpointModel = 'policy';
    gen.promptSource = 'dataset';
    gen.promptsDatasetId = '4';
    gen.name = ' round-one ';
    const req = contract.startGeneration.input.parse(gen.request());
    expect(req).toMatchObject({ prompts: { datasetId: '4' }, policy: { kind: 'endpoint', url: 'http://127.0.0.1:8000/v1', model: 'policy' }, recipe: 'margin', delta: 0.25, name: 'round-one' });
    gen.recipe = 'best-worst';
    const bw = contract.startGeneration.input.parse(gen.request());
    expect(bw.delta).toBeUndefined();
    expect(bw.instructions).toBeUndefined();
  });

  it('holds the request back while a number, the prompts, the policy or an instruction is missing or invalid', () => {
    const gen = filled();
    expect(gen.request()).not.toBeNull();
    gen.text.topP = '1.5';
    expect(gen.parsed.topP.error).toBe('top-p: expected a number from 0.01 to 1, got 1.5');
    expect(gen.request()).toBeNull();
    gen.text.topP = '1';
    gen.text.n = '2.5';
    expect(gen.request()).toBeNull();
    gen.text.n = '2';
    gen.promptsPath = '  ';
    expect(gen.request()).toBeNull();
    gen.promptsPath = '/p.jsonl';
    gen.chosenInstruction = '';
    expect(gen.request()).toBeNull();
    gen.recipe = 'self-judged';
    expect(gen.request()).not.toBeNull();
    // One candidate per prompt: only instructed pairs can pair it (the other rules compare a prompt's candidates).
    gen.text.n = '1';
    expect(gen.request()).toBeNull();
    gen.recipe = 'instructed';
    gen.chosenInstruction = 'Be truthful.';
    expect(contract.startGeneration.input.parse(gen.request()).n).toBe(1);
    gen.recipe = 'self-judged';
    gen.text.n = '2';
    gen.policyKind = 'endpoint';
    expect(gen.request()).toBeNull();
  });

  it('reads tokens/s from the job message', () => {
    expect(tokensPerSecond('3/8 prompts · 412 tokens · 96.4 tokens/s')).toBe(96.4);
    expect(tokensPerSecond('1,234.5 tok/s')).toBe(1234.5);
    expect(tokensPerSecond('scoring candidates 3/16')).toBeNull();
    expect(tokensPerSecond(null)).toBeNull();
  });
});
