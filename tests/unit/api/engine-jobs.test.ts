/**
 * Train and score jobs through the API handlers on the demo kit (real engine, real ONNX Runtime):
 * the live training curve a running job exposes, and an API that keeps answering while the backbone runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { TrainResult } from '../../../main/api/contract';
import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { wilsonInterval } from '../../../main/engine/sparserm/metrics';
import { tempDir } from '../../helpers/paths';
import { truthfulQa } from './seed';
import { followJob } from '../../helpers/jobs';

const home = tempDir('sparserm-api-jobs-');
process.env.SPARSERM_HOME = home; // graphs, feature cache and reward-model folders stay in this test's folder

const follow = followJob;

function writeJsonl(file: string, rows: object[]): string {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

describe('train and score jobs through the API (demo kit)', () => {
  let kit: DemoKit;
  let h: Handlers;
  let checkpointId: string;
  let saeId: string;
  let datasetId: string;
  let rewardModelId: string;

  beforeAll(async () => {
    kit = await ensureDemoKit();
    h = createHandlers({ dbPath: path.join(home, 'studio.db'), actor: 'tester' });
    checkpointId = (await h.addCheckpoint({ path: kit.checkpoint })).id;
    saeId = (await h.addSae({ path: kit.sae })).id;
    const file = writeJsonl(path.join(home, 'train.jsonl'), truthfulQa(80));
    const imp = await follow(h, (await h.importDataset({ path: file, name: 'tqa-80' })).jobId);
    expect(imp.state).toBe('done');
    datasetId = (await h.listDatasets({})).datasets.find((d) => d.name === 'tqa-80')!.id;
  }, 300_000);
  afterAll(() => h?.close());

  it('a running train job exposes each epoch’s losses as they happen; they are the final training curve', async () => {
    const { jobId } = await h.train({ datasetId, checkpointId, saeId, layer: kit.layer, k: 8, loss: 'margin' });
    // What the UI would see on each progress event: the job snapshot (getJob), taken at that moment.
    const seen: TrainResult['curve'][] = [];
    const off = h.runner.subscribe(() => {
      void h.getJob({ jobId }).then((j) => {
        const curve = (j.result as { curve?: TrainResult['curve'] } | null)?.curve;
        if (j.state === 'running' && curve?.length) seen.push(curve);
      });
    }, jobId);
    const done = await follow(h, jobId);
    off();
    expect(done.state).toBe('done');
    const final = TrainResult.parse(done.result);
    rewardModelId = final.rewardModelId;
    // Held-out accuracy carries its n and 95 % Wilson interval; the baselines are tested on exactly those pairs.
    const held = final.heldOut!;
    expect(held.n).toBeGreaterThan(0);
    expect(held.overlap).toBe(80 - held.n!); // the job evaluates on its own dataset: every trained/validated pair left out
    expect(held.ci95).toEqual(wilsonInterval(Math.round(final.heldOutAccuracy! * held.n!), held.n!));
    expect(final.baselines).toHaveLength(3);
    for (const b of final.baselines) expect([b.n, b.ci95]).toEqual([held.n, wilsonInterval(Math.round(b.accuracy * held.n!), held.n!)]);
    // The model is registered under the checkpoint and SAE rows the user picked: no second Models entry.
    expect(h.store.models.requireRewardModel(rewardModelId)).toMatchObject({ backboneId: checkpointId, saeId });
    expect([h.store.models.backbones().length, h.store.models.saes().length]).toEqual([1, 1]);

    // The final curve is the model folder's curve.json (the training run itself), with losses at every epoch.
    const folder = (await h.listModels({})).models.find((m) => m.id === final.rewardModelId)!.path;
    const onDisk = JSON.parse(fs.readFileSync(path.join(folder, 'curve.json'), 'utf8')) as { epoch: number; trainLoss: number; valLoss?: number; valAccuracy?: number }[];
    expect(final.curve).toEqual(onDisk.map((c) => ({ epoch: c.epoch, trainLoss: c.trainLoss, valLoss: c.valLoss ?? null, valAccuracy: c.valAccuracy ?? null })));
    expect(final.curve.length).toBeGreaterThan(1);
    expect(final.curve.every((c) => Number.isFinite(c.trainLoss) && Number.isFinite(c.valLoss) && c.valAccuracy! >= 0 && c.valAccuracy! <= 1)).toBe(true);

    // While it ran, the job carried the curve so far: each one a prefix of the final curve, the same numbers.
    expect(seen.length).toBeGreaterThan(0);
    for (const c of seen) expect(c).toEqual(final.curve.slice(0, c.length));
  }, 300_000);

  it('keeps answering API calls while a scoring job runs the backbone (ORT in a worker thread)', async () => {
    // Long responses that are not in the feature cache yet: the job's time goes into backbone forward passes.
    const long = truthfulQa(16).map((p) => ({ ...p, chosen: `${p.chosen} `.repeat(12), rejected: `${p.rejected} `.repeat(12) }));
    const file = writeJsonl(path.join(home, 'long.jsonl'), long);
    await follow(h, (await h.importDataset({ path: file, name: 'long' })).jobId);
    const longId = (await h.listDatasets({})).datasets.find((d) => d.name === 'long')!.id;

    const { jobId } = await h.score({ datasetId: longId, rewardModelId });
    // Back-to-back API calls (a job snapshot and a page of pairs), counted while the job says it is between
    // tokenizing and finishing the backbone — the stretch made of ONNX Runtime forward passes.
    let answered = 0;
    let runsAtStart: number | undefined;
    let runsAtEnd: number | undefined;
    for (;;) {
      const j = await h.getJob({ jobId });
      await h.queryPairs({ datasetId, offset: 0, limit: 20, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'index', dir: 'asc' } });
      if (j.message.startsWith('tokenizing')) {
        runsAtStart ??= backboneRunCounter();
        answered++;
      } else if (runsAtStart !== undefined && runsAtEnd === undefined) runsAtEnd = backboneRunCounter();
      if (j.state !== 'running' && j.state !== 'queued') break;
      await new Promise((r) => setTimeout(r, 1));
    }
    const done = await h.getJob({ jobId });
    expect(done.state).toBe('done');
    expect(done.result).toMatchObject({ pairs: 16 });
    expect(runsAtStart).toBeDefined();
    const runs = (runsAtEnd ?? backboneRunCounter()) - runsAtStart!;
    expect(runs).toBeGreaterThan(0);
    // In-process ORT blocks the event loop for each whole forward pass, so calls could only slip in between runs
    // (about one per run). Many more answers than runs means they were served while the runs were in flight.
    expect(answered).toBeGreaterThan(3 * runs);
  }, 300_000);

  it('a scoring job scores a pair whose text spells a control token (encoded as text, not skipped)', async () => {
    const rows = truthfulQa(12);
    rows[4] = { ...rows[4], rejected: `${rows[4].rejected}<end_of_turn>` };
    await follow(h, (await h.importDataset({ path: writeJsonl(path.join(home, 'one-bad.jsonl'), rows), name: 'one-bad' })).jobId);
    const ds = (await h.listDatasets({})).datasets.find((d) => d.name === 'one-bad')!;
    const page = await h.queryPairs({ datasetId: ds.id, offset: 0, limit: 20, filter: { decision: 'any', verdict: 'any' }, sort: { by: 'index', dir: 'asc' } });
    const bad = page.rows.find((r) => r.rejected.includes('<end_of_turn>'))!;
    const job = await follow(h, (await h.score({ datasetId: ds.id, rewardModelId })).jobId);
    expect(job.state).toBe('done');
    expect(job.result).toMatchObject({ pairs: 12, skippedTotal: 0 });
    const runId = (job.result as { runId: number }).runId;
    expect(h.store.runs.scoreCount(runId)).toBe(12);
    expect(h.store.runs.score(runId, Number(bad.id))).toBeDefined();
  }, 300_000);
});
