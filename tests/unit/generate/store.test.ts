import { describe, expect, it } from 'vitest';

import { openStore, SCHEMA_VERSION, type NewGenerationRun } from '../../../main/engine/store';

const runSpec = (over: Partial<NewGenerationRun> = {}): NewGenerationRun => ({
  name: 'tqa-instructed-r1',
  policyKind: 'local',
  policy: 'abc123',
  policyLabel: '/models/policy',
  policySpec: { kind: 'local', checkpoint: '/models/policy' },
  sampling: { temperature: 0.7, topP: 0.9, topK: 40, seed: 7, maxNewTokens: 32 },
  n: 2,
  promptsSource: '/data/prompts.jsonl',
  recipe: 'instructed',
  recipeParams: { preset: 'truthfulqa' },
  rewardModelId: 'srm-1',
  ...over,
});
const prompts = [
  { prompt: 'Q1', messages: [{ role: 'user', content: 'Q1' }] },
  { prompt: 'Q2', messages: [{ role: 'user', content: 'Q2' }] },
];

describe('generations store (migration 8)', () => {
  it('is at schema version ≥ 8 with the generation tables', () => {
    const store = openStore(':memory:');
    try {
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(8);
      const tables = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      for (const t of ['generation_runs', 'generation_prompts', 'generation_candidates', 'dataset_lineage']) expect(tables).toContain(t);
    } finally {
      store.close();
    }
  });

  it('freezes the prompts, stores candidates per prompt with progress, scores, and reads rows back validated', () => {
    const store = openStore(':memory:');
    try {
      const run = store.generations.create(runSpec(), prompts);
      expect(run).toMatchObject({ status: 'running', promptsTotal: 2, promptsDone: 0, tokens: 0, round: 1, datasetId: null, sampling: { topK: 40, seed: 7 } });
      expect(store.generations.prompts(run.id).map((p) => [p.index, p.prompt, p.done])).toEqual([[0, 'Q1', false], [1, 'Q2', false]]);

      store.generations.addPromptCandidates(run.id, 1, [
        { variant: 'rejected', candidateIndex: 0, text: 'myth', tokens: [5, 6], logprob: -3.5, finishReason: 'stop' },
        { variant: 'chosen', candidateIndex: 0, text: 'fact', tokens: null, logprob: null, finishReason: 'length', score: 1.25 },
      ], 9);
      // Re-storing the same prompt (a retried batch) replaces its rows and does not double-count progress.
      store.generations.addPromptCandidates(run.id, 1, [{ variant: 'chosen', candidateIndex: 0, text: 'fact', tokens: null, logprob: null, finishReason: 'length', score: 1.25 }], 0);
      const r = store.generations.get(run.id);
      expect([r.promptsDone, r.tokens]).toEqual([1, 9]);
      expect(store.generations.prompts(run.id).map((p) => p.done)).toEqual([false, true]);
      const cs = store.generations.candidates(run.id);
      expect(cs.map((c) => [c.variant, c.text, c.tokens, c.logprob, c.finishReason, c.score])).toEqual([
        ['chosen', 'fact', null, null, 'length', 1.25],
        ['rejected', 'myth', [5, 6], -3.5, 'stop', null],
      ]);
      store.generations.setScores([{ id: cs[1]!.id, score: -0.5 }]);
      expect(store.generations.candidates(run.id, { offset: 1, limit: 1 })[0]!.score).toBe(-0.5);
      expect(() => store.generations.setScores([{ id: cs[1]!.id, score: Number.NaN }])).toThrow(/finite/);
      expect(() => store.generations.addPromptCandidates(run.id, 5, [], 0)).toThrow(/prompt of generation run/);
      expect(() => store.generations.create(runSpec(), [])).toThrow(/at least one prompt/);

      // A hand-edited row fails loudly at the boundary.
      store.db.prepare("UPDATE generation_runs SET sampling_json = '{\"temperature\": -1}' WHERE id = ?").run(run.id);
      expect(() => store.generations.get(run.id)).toThrow();
    } finally {
      store.close();
    }
  });

  it('records lineage of a generated dataset, lists runs by dataset; deleting the dataset removes its lineage', () => {
    const store = openStore(':memory:');
    try {
      const parent = store.datasets.create('round-1');
      const run = store.generations.create(runSpec({ round: 2, parentDatasetId: parent.id, recipe: 'margin', recipeParams: { delta: 0.5 } }), prompts);
      const ds = store.datasets.create('round-2');
      const l = store.generations.linkDataset(run.id, ds.id);
      expect(l).toEqual({ datasetId: ds.id, generationRunId: run.id, recipe: 'margin', recipeParams: { delta: 0.5 }, policy: 'abc123', policyLabel: '/models/policy', round: 2, parentDatasetId: parent.id, promptsDatasetId: null, promptsSource: '/data/prompts.jsonl' });
      expect(store.generations.list({ datasetId: ds.id }).map((r) => r.id)).toEqual([run.id]);
      expect(store.generations.list().length).toBe(1);
      store.generations.setStatus(run.id, 'done');
      expect(store.generations.get(run.id).finishedAt).not.toBeNull();
      store.datasets.delete(ds.id);
      expect(store.generations.lineage(ds.id)).toBeUndefined();
      expect(store.generations.get(run.id).datasetId).toBeNull();
      expect(() => store.generations.get(999)).toThrow(/generation run/);
    } finally {
      store.close();
    }
  });
});
