/**
 * The generation operations through the API handlers (what IPC and `serve` dispatch to): presets, a generation job
 * on the demo checkpoint with a live tokens/s message, cancel + resume through the job machinery, runs with
 * lineage, candidates with scores, DatasetSummary.lineage, next round.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { contract, type OpInput } from '../../../main/api/contract';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { registerRewardModel } from '../../../main/engine/sparserm/registry';
import { trainRewardModel } from '../../../main/engine/sparserm/service';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { tempDir } from '../../helpers/paths';
import { followJob } from '../../helpers/jobs';

const home = tempDir('sparserm-api-gen-');
process.env.SPARSERM_HOME = home;

/** As the transports do: the contract's schema parses (and defaults) the input first. */
const start = (h: Handlers, input: OpInput<'startGeneration'>) => h.startGeneration(contract.startGeneration.input.parse(input));

const follow = followJob;

describe('generation API', () => {
  let kit: DemoKit;
  let h: Handlers;
  let rewardModelId: string;
  let checkpointId: string;
  let prompts: string;
  beforeAll(async () => {
    kit = await ensureDemoKit();
    h = createHandlers({ dbPath: path.join(home, 'studio.db') });
    const t = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs: readPairsJsonl(kit.dataset).slice(0, 60), k: 8, maxEpochs: 5, outDir: path.join(home, 'rm'), ep: 'cpu' });
    checkpointId = (await h.addCheckpoint({ path: kit.checkpoint })).id;
    registerRewardModel(h.store, t.modelDir, t.manifest);
    rewardModelId = t.manifest.id;
    prompts = path.join(home, 'prompts.jsonl');
    fs.writeFileSync(prompts, Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `Question number ${i}: is it true?` })).join('\n'));
  }, 300_000);
  afterAll(() => h?.close());

  it('presets, a generation job with tokens/s, runs with lineage, candidates with scores, next round', async () => {
    const { presets } = await h.generationPresets({});
    expect(presets.map((p) => p.id)).toEqual(['truthfulqa', 'saferlhf']);

    const seen: string[] = [];
    const { jobId } = await start(h, { prompts: { path: prompts }, policy: { kind: 'local', checkpointId }, sampling: { maxNewTokens: 6, seed: 2 }, n: 2, recipe: 'margin', delta: 0, rewardModelId, name: 'api-r1' });
    const job = await follow(h, jobId, seen);
    expect(job.state, job.error ?? '').toBe('done');
    expect(job.title).toBe('Generate preference pairs');
    expect(seen.some((m) => /tokens\/s/.test(m))).toBe(true);
    const { runs } = await h.listGenerationRuns({});
    expect(runs).toHaveLength(1);
    const run = runs[0]!;
    expect(run).toMatchObject({ name: 'api-r1', status: 'done', promptsTotal: 6, promptsDone: 6, round: 1, recipe: 'margin', recipeParams: { delta: 0 }, jobId, policyKind: 'local' });
    expect(run.tokens).toBeGreaterThan(0);
    expect(run.lineage).toMatchObject({ round: 1, recipe: 'margin', generationRunId: run.id, parentDatasetId: null });
    const page = await h.listCandidates({ runId: run.id, offset: 2, limit: 3 });
    expect(page.total).toBe(12);
    expect(page.candidates.map((c) => [c.promptIndex, c.candidateIndex])).toEqual([[1, 0], [1, 1], [2, 0]]);
    for (const c of page.candidates) {
      expect(c.score).not.toBeNull();
      expect(c.tokenCount).toBeLessThanOrEqual(6);
    }
    const ds = (await h.listDatasets({})).datasets.find((d) => d.id === run.datasetId)!;
    expect(ds.name).toBe('api-r1');
    expect(ds.lineage).toMatchObject({ round: 1, recipe: 'margin', policyLabel: kit.checkpoint });
    expect(ds.counts.drop).toBe(0); // margin pairs agree with SparseRM by construction

    const next = await follow(h, (await h.nextRound({ datasetId: run.datasetId!, checkpointId })).jobId);
    expect(next.state, next.error ?? '').toBe('done');
    const r2 = (await h.listGenerationRuns({})).runs[0]!;
    expect(r2).toMatchObject({ name: 'api-r2', round: 2, parentDatasetId: run.datasetId, recipe: 'margin' });
    expect((await h.listGenerationRuns({ datasetId: r2.datasetId! })).runs.map((r) => r.id)).toEqual([r2.id]);
  }, 300_000);

  it('a cancelled generation resumes through resumeJob without redoing finished prompts', async () => {
    // Enough prompts that the cancel lands well before the end on any machine (a quiet one does ~800 tokens/s).
    const N = 48;
    const many = path.join(home, 'many.jsonl');
    fs.writeFileSync(many, Array.from({ length: N }, (_, i) => JSON.stringify({ prompt: `Claim ${i}: true or false?` })).join('\n'));
    const { jobId } = await start(h, { prompts: { path: many }, policy: { kind: 'local', checkpointId }, sampling: { maxNewTokens: 16 }, n: 2, recipe: 'best-worst', rewardModelId, name: 'api-cancel' });
    for (;;) {
      const j = await h.getJob({ jobId });
      const done = /^(\d+)\/\d+ prompts/.exec(j.message);
      if (done && Number(done[1]) >= 1 && Number(done[1]) < N) break;
      if (j.state !== 'running' && j.state !== 'queued') throw new Error(`finished before cancel: ${j.state}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await h.cancelJob({ jobId });
    const cancelled = await follow(h, jobId);
    expect(cancelled.state).toBe('cancelled');
    const run = (await h.listGenerationRuns({})).runs.find((r) => r.jobId === jobId)!;
    expect(run.status).toBe('cancelled');
    const doneBefore = run.promptsDone;
    expect(doneBefore).toBeGreaterThan(0);
    expect(doneBefore).toBeLessThan(N);
    const before = (await h.listCandidates({ runId: run.id, offset: 0, limit: 500 })).candidates.filter((c) => c.promptIndex < doneBefore);

    const resumed = await follow(h, (await h.resumeJob({ jobId })).jobId);
    expect(resumed.state, resumed.error ?? '').toBe('done');
    const after = (await h.listCandidates({ runId: run.id, offset: 0, limit: 500 })).candidates;
    expect(after).toHaveLength(2 * N);
    // The prompts finished before the cancel kept their rows (same ids and texts): not generated again.
    expect(after.filter((c) => c.promptIndex < doneBefore).map((c) => [c.id, c.text])).toEqual(before.map((c) => [c.id, c.text]));
    expect((await h.listGenerationRuns({})).runs.find((r) => r.id === run.id)).toMatchObject({ status: 'done', promptsDone: N });
  }, 300_000);

  it('a run whose process died shows its job as failed (resumable), not forever running', async () => {
    h.store.jobs.create({ id: 'dead-job', kind: 'generate', params: {}, total: null });
    h.store.jobs.setStatus('dead-job', 'interrupted');
    const run = h.store.generations.create(
      { name: 'dead', policyKind: 'local', policy: 'h', policyLabel: 'p', policySpec: { kind: 'local', checkpoint: kit.checkpoint }, sampling: { temperature: 1, topP: 1, topK: 0, seed: 0, maxNewTokens: 4 }, n: 2, promptsSource: prompts, recipe: 'best-worst', jobId: 'dead-job' },
      [{ prompt: 'Q', messages: [{ role: 'user', content: 'Q' }] }],
    );
    expect(h.store.generations.get(run.id).status).toBe('running');
    expect((await h.listGenerationRuns({})).runs.find((r) => r.id === String(run.id))!.status).toBe('failed');
  });

  it('refuses unknown checkpoints and reward models, and a next round of an imported dataset', async () => {
    await expect(start(h, { prompts: { path: prompts }, policy: { kind: 'local', checkpointId: 'nope' }, sampling: {}, n: 2, recipe: 'best-worst', rewardModelId })).rejects.toThrow(/checkpointId|registered checkpoint/);
    await expect(start(h, { prompts: { path: prompts }, policy: { kind: 'local', checkpointId }, sampling: {}, n: 2, recipe: 'best-worst', rewardModelId: 'nope' })).rejects.toThrow(/reward model/);
    const imported = h.store.datasets.create('imported');
    await expect(h.nextRound({ datasetId: String(imported.id), checkpointId })).rejects.toThrow(/lineage/);
  });
});
