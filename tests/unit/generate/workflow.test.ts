import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import type { ChatMessage } from '../../../main/engine/backbone/chat-template';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { JobRunner } from '../../../main/engine/jobs';
import { nextRoundParams, promptSeed, registerGenerateJob, runGeneration, type GenerateParams } from '../../../main/engine/generate/workflow';
import { pooledFor, scoreRepresentations } from '../../../main/engine/sparserm/pair-jobs';
import { readRewardModel, trainRewardModel, type RewardModel } from '../../../main/engine/sparserm/service';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';
import { TestSource } from './test-source';

const home = tempDir('sparserm-gen-');
process.env.SPARSERM_HOME = home;
const cacheRoot = path.join(home, 'features');
let kit: DemoKit;
let modelDir: string;
let model: RewardModel;
let promptsFile: string;

beforeAll(async () => {
  kit = await ensureDemoKit();
  const pairs = readPairsJsonl(kit.dataset).slice(0, 60);
  const t = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs, k: 8, maxEpochs: 5, outDir: path.join(home, 'rm'), cacheRoot, ep: 'cpu' });
  modelDir = t.modelDir;
  model = await readRewardModel(modelDir);
  promptsFile = path.join(home, 'prompts.jsonl');
  fs.writeFileSync(promptsFile, ['What happens if you swallow gum?', 'Is the moon made of cheese?', 'Why do cats purr?'].map((p) => JSON.stringify({ prompt: p })).join('\n'));
}, 300_000);

const base = (over: Partial<GenerateParams> = {}): GenerateParams => ({
  prompts: { file: promptsFile },
  policy: { kind: 'local', checkpoint: '/nowhere' },
  sampling: { temperature: 1, topP: 1, topK: 0, seed: 3, maxNewTokens: 40 },
  n: 3,
  recipe: 'best-worst',
  rewardModel: modelDir,
  ...over,
});

/** SparseRM scores of (prompt, response) through the normal feature path: the independent reference. */
async function referenceScores(items: Array<{ prompt: string; response: string }>): Promise<Float32Array> {
  const f = await pooledFor(model, items, { cacheRoot });
  return scoreRepresentations(model, f.table.z, f.table.n);
}

describe('generation workflow', () => {
  it('best-worst: stores n candidates per prompt with SparseRM scores, pairs best vs worst into a new dataset with lineage and verdicts', async () => {
    const store = openStore(':memory:');
    try {
      const src = new TestSource();
      const progress: string[] = [];
      const r = await runGeneration(store, base(), { openSource: async () => src, cacheRoot, onProgress: (p) => progress.push(p.message) });
      expect(src.closed).toBe(true);
      expect(src.calls.map((c) => c.seed)).toEqual([0, 1, 2].map((i) => promptSeed(3, i, 0)));
      expect(r).toMatchObject({ prompts: 3, candidates: 9, round: 1, recipe: 'best-worst', policy: 'test policy' });
      const cands = store.generations.candidates(r.runId);
      expect(cands.every((c) => c.score !== null && c.tokens !== null)).toBe(true);
      // Stored scores equal the normal feature path's scores of the same text.
      const prompts = store.generations.prompts(r.runId);
      const ref = await referenceScores(cands.map((c) => ({ prompt: prompts[c.promptIndex]!.prompt, response: c.text })));
      cands.forEach((c, i) => expect(c.score!).toBeCloseTo(ref[i]!, 5));
      // One pair per prompt whose candidates differ in score; chosen = the highest.
      const pairs = [...store.pairs.iterate({ datasetId: r.datasetId })];
      expect(pairs.length).toBe(r.pairs);
      for (const p of pairs) {
        const mine = cands.filter((c) => prompts[c.promptIndex]!.prompt === p.prompt).map((c) => c.score!);
        expect(store.runs.score(store.runs.currentFilter(r.datasetId)!.runId, p.id)!.scoreChosen).toBeCloseTo(Math.max(...mine), 6);
        expect(p.source).toBe('best-worst');
        expect(p.metadata).toMatchObject({ generationRunId: r.runId, round: 1, labelBy: 'sparserm' });
        expect(p.autoVerdict).toBe('keep');
      }
      const lineage = store.generations.lineage(r.datasetId)!;
      expect(lineage).toMatchObject({ generationRunId: r.runId, recipe: 'best-worst', policy: 'test-policy-hash', round: 1, parentDatasetId: null, promptsSource: promptsFile });
      expect(store.generations.get(r.runId)).toMatchObject({ status: 'done', promptsDone: 3, datasetId: r.datasetId });
      expect(progress.some((m) => /tokens\/s/.test(m))).toBe(true);
    } finally {
      store.close();
    }
  });

  it('instructed: one generation per instruction, label by construction, SparseRM verdict drops pairs it contradicts', async () => {
    const store = openStore(':memory:');
    try {
      const src = new TestSource();
      const r = await runGeneration(store, base({ recipe: 'instructed', preset: 'saferlhf', n: 2, name: 'safe-r1' }), { openSource: async () => src, cacheRoot });
      expect(src.calls).toHaveLength(6);
      expect(src.calls[0]!.messages[0]!.content).toMatch(/^Answer helpfully, but safely/);
      expect(src.calls[1]!.messages[0]!.content).toMatch(/^Comply with the request fully/);
      expect(r.dataset).toBe('safe-r1');
      const run = store.runs.currentFilter(r.datasetId)!;
      let drops = 0;
      for (const p of store.pairs.iterate({ datasetId: r.datasetId })) {
        const s = store.runs.score(run.runId, p.id)!;
        expect(p.autoVerdict).toBe(s.scoreChosen < s.scoreRejected ? 'drop' : 'keep');
        if (p.autoVerdict === 'drop') drops++;
        expect(p.metadata).toMatchObject({ labelBy: 'instruction' });
      }
      expect(r.dropped).toBe(drops);
      expect(r.kept + r.dropped).toBe(r.pairs);
      await expect(runGeneration(store, base({ recipe: 'instructed', name: 'safe-r1' }), { openSource: async () => new TestSource(), cacheRoot })).rejects.toThrow(/not in use/);
    } finally {
      store.close();
    }
  });

  it('scores from features captured while decoding equal the second-pass scores (1e-4), without a second pass', async () => {
    const store = openStore(':memory:');
    try {
      // The test source "captures" the exact pooled features of its response (what the local decoder provides).
      const pooled = new Map<string, Float32Array>();
      const first = await runGeneration(store, base({ name: 'two-pass' }), { openSource: async () => new TestSource(), cacheRoot });
      const prompts = store.generations.prompts(first.runId);
      const cands = store.generations.candidates(first.runId);
      const f = await pooledFor(model, cands.map((c) => ({ prompt: prompts[c.promptIndex]!.prompt, response: c.text })), { cacheRoot });
      const H = model.manifest.backbone.hiddenSize;
      cands.forEach((c, i) => pooled.set(`${prompts[c.promptIndex]!.prompt}\u0000${c.text}`, f.table.z.slice(i * H, (i + 1) * H)));
      let used = 0;
      const src = new TestSource({ captured: (m: ChatMessage[], text) => (used++, pooled.get(`${m[0]!.content}\u0000${text}`)) });
      const second = await runGeneration(store, base({ name: 'captured' }), { openSource: async () => src, cacheRoot: path.join(home, 'empty-cache') });
      expect(used).toBe(9);
      // The empty feature cache stayed empty: no second backbone pass happened.
      expect(fs.existsSync(path.join(home, 'empty-cache'))).toBe(false);
      const again = store.generations.candidates(second.runId);
      again.forEach((c, i) => expect(Math.abs(c.score! - cands[i]!.score!)).toBeLessThan(1e-4));
    } finally {
      store.close();
    }
  });

  it('a job interrupted mid-run resumes without regenerating finished prompts and ends as an uninterrupted run', async () => {
    const store = openStore(':memory:');
    try {
      const reference = await runGeneration(store, base({ name: 'ref' }), { openSource: async () => new TestSource(), cacheRoot });
      const runner = new JobRunner(store);
      let src = new TestSource({ failAt: 2 });
      registerGenerateJob(runner, async () => src);
      const h = runner.start('generate', base({ name: 'resumed' }));
      await expect(h.result).rejects.toThrow(/simulated crash/);
      const runId = store.generations.byJob(h.id)!.id;
      expect(store.generations.get(runId)).toMatchObject({ status: 'failed', promptsDone: 1 });
      src = new TestSource();
      const r = (await runner.resume(h.id).result) as { runId: number; datasetId: number };
      expect(r.runId).toBe(runId);
      // Prompt 0 was not asked again: only prompts 1 and 2.
      expect(src.calls.map((c) => c.messages[0]!.content)).toEqual(['Is the moon made of cheese?', 'Why do cats purr?']);
      const texts = (id: number) => store.generations.candidates(id).map((c) => [c.promptIndex, c.text, c.score]);
      expect(texts(runId)).toEqual(texts(reference.runId));
      const job = runner.snapshot(h.id);
      expect(job.status).toBe('done');
      expect(job.message).toMatch(/3\/3 prompts/);
    } finally {
      store.close();
    }
  });

  it('self-judged pairs, then the next round: same prompts, new policy, round + 1, parent = previous dataset', async () => {
    const store = openStore(':memory:');
    try {
      const src = new TestSource();
      const r1 = await runGeneration(store, base({ recipe: 'self-judged', n: 2 }), { openSource: async () => src, cacheRoot });
      expect(src.judged.length).toBe(2 * 3);
      for (const p of store.pairs.iterate({ datasetId: r1.datasetId })) {
        const judge = (p.metadata as { judge: { preference: number } }).judge;
        expect(judge.preference).toBeGreaterThan(0);
        expect(p.chosen.length).toBeGreaterThanOrEqual(p.rejected.length);
      }
      const next = nextRoundParams(store, r1.datasetId, { kind: 'local', checkpoint: '/round-2-policy' });
      expect(next).toMatchObject({ round: 2, parentDatasetId: r1.datasetId, recipe: 'self-judged', n: 2, policy: { checkpoint: '/round-2-policy' }, prompts: { file: promptsFile } });
      expect(next.name).toBe(`prompts-self-judged-r2`);
      const src2 = new TestSource();
      const r2 = await runGeneration(store, next, { openSource: async () => src2, cacheRoot });
      // Same seed setting, new round: fresh draws (the same policy twice would otherwise repeat its candidates).
      expect(src2.calls.map((c) => c.seed)).toEqual([0, 1, 2].map((i) => promptSeed(3, i, 0, 2)));
      expect(src2.calls.map((c) => c.seed)).not.toEqual(src.calls.map((c) => c.seed));
      expect(store.generations.lineage(r2.datasetId)).toMatchObject({ round: 2, parentDatasetId: r1.datasetId });
      expect(() => nextRoundParams(store, store.datasets.create('imported').id, { kind: 'local', checkpoint: '/x' })).toThrow(/lineage/);
      await expect(runGeneration(store, base({ recipe: 'margin', n: 1 }), { openSource: async () => new TestSource(), cacheRoot })).rejects.toThrow(/at least 2 candidates/);
    } finally {
      store.close();
    }
  });
});
