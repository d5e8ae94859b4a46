/**
 * The "Review next" store (issue 14 item 2) against a scripted API whose every request is parsed by the contract's
 * own input schema (a drift between the store and the API fails here): decided pairs leave the queue, the retrain
 * offer comes after N decisions (not before), and the background retrain trains from the decisions with what the
 * queue's model was trained with (its listModels details: checkpoint / SAE ids and settings; never the first listed
 * checkpoint or an SAE of the same layer), rescores with the new model, re-applies the dataset's rule and re-ranks;
 * it refuses, naming what is missing, when the model's checkpoint or SAE is not registered any more.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createPinia, setActivePinia } from 'pinia';
import { contract, type ApiClient, type OpName } from '../../../main/api/contract';
import { useAppStore } from '../../../renderer/src/stores/app';
import { useQueueStore } from '../../../renderer/src/stores/queue';

type Details = Record<string, string | number | boolean | null>;
/** rm-1 was trained with the second checkpoint and the SAE that is not the layer's first. */
const trainedWith: Details = { layer: 3, dataset: 'tqa', checkpointId: 'ck-2', checkpointPath: '/ck2', saeId: 'sae-3b', saePath: '/s3b', k: 16, loss: 'bt', precision: 'f16', maxTokens: 256, saeEncoding: null };

function fakeApi(rmDetails: Details = trainedWith) {
  const calls: Array<{ op: OpName; input: unknown }> = [];
  let undecided = ['11', '12', '13', '14', '15'];
  let run = 1;
  const item = (pairId: string, i: number) => ({ pairId, margin: 0.1 * (i + 1), previousMargin: null, disagree: false, band: i, reasons: ['r'] });
  const handlers: Partial<Record<OpName, (i: never) => unknown>> = {
    reviewQueue: () => ({ runId: String(run), rewardModelId: `rm-${run}`, previousRunId: run > 1 ? String(run - 1) : null, previousRewardModelId: null, total: undecided.length, items: undecided.map(item), rule: { threshold: 0.5, band: 0.2 } }),
    getPair: (i: { pairId: string }) => ({ id: i.pairId }),
    decide: (i: { pairId: string }) => {
      undecided = undecided.filter((p) => p !== i.pairId);
      return { id: i.pairId };
    },
    listRuns: () => ({ runs: [{ rewardModelId: 'rm-1', layer: 3, k: 16, loss: 'bt' }] }),
    train: () => ({ jobId: 'train-1' }),
    score: () => ({ jobId: 'score-1' }),
    getJob: (i: { jobId: string }) => {
      if (i.jobId === 'score-1') {
        run = 2;
        undecided = [...undecided].reverse(); // the new model ranks them the other way
      }
      return { id: i.jobId, state: 'done', title: i.jobId, result: i.jobId === 'train-1' ? { rewardModelId: 'rm-2' } : {} };
    },
    applyFilter: () => ({ keep: 1, drop: 1, uncertain: 1 }),
    listModels: () => ({ models: [{ id: 'rm-1', kind: 'reward-model', name: 'rm-1', path: '/rm1', isDemo: true, details: rmDetails }] }),
    listDatasets: () => ({ datasets: [{ id: '1' }] }),
  };
  const api = new Proxy({} as ApiClient, {
    get: (_t, op: OpName) => async (input: unknown) => {
      const parsed = contract[op].input.parse(input);
      calls.push({ op, input: parsed });
      const h = handlers[op];
      if (!h) throw new Error(`unexpected op ${op}`);
      return h(parsed as never);
    },
  });
  return { api, calls, queue: () => undecided };
}

describe('Review next store', () => {
  beforeEach(() => setActivePinia(createPinia()));

  function setup(rmDetails?: Details) {
    const fake = fakeApi(rmDetails);
    const app = useAppStore();
    app.client = fake.api;
    app.datasetId = '1';
    app.models = [
      { id: 'ck', kind: 'checkpoint', name: 'ck', path: '/ck', isDemo: true, details: {} },
      { id: 'ck-2', kind: 'checkpoint', name: 'ck2', path: '/ck2', isDemo: true, details: {} },
      { id: 'sae-0', kind: 'sae', name: 's0', path: '/s0', isDemo: true, details: { layer: 0 } },
      { id: 'sae-3', kind: 'sae', name: 's3', path: '/s3', isDemo: true, details: { layer: 3 } },
      { id: 'sae-3b', kind: 'sae', name: 's3b', path: '/s3b', isDemo: true, details: { layer: 3 } },
    ];
    return { fake, q: useQueueStore() };
  }

  it('walks the queue; a decided pair leaves it; the offer comes after N decisions', async () => {
    const { fake, q } = setup();
    q.setEvery(2);
    await q.toggle(true);
    expect(q.current?.pairId).toBe('11');
    await q.move(1);
    expect(q.current?.pairId).toBe('12');
    await q.decide('swap');
    expect(fake.queue()).toEqual(['11', '13', '14', '15']);
    expect(q.current?.pairId).toBe('13'); // the next pair takes the decided one's place
    expect(q.offer).toBe(false);
    await q.decide(null); // clearing is not a decision to learn from
    expect(q.offer).toBe(false);
    await q.decide('drop');
    expect(q.offer).toBe(true);
    q.later();
    expect([q.offer, q.sinceRetrain]).toEqual([false, 0]);
  });

  it("retrains from the decisions with what the queue's model was trained with, rescores, re-applies the rule and re-ranks", async () => {
    const { fake, q } = setup();
    await q.toggle(true);
    await q.retrain();
    const train = fake.calls.find((c) => c.op === 'train')!.input;
    expect(train).toEqual({ datasetId: '1', checkpointId: 'ck-2', saeId: 'sae-3b', layer: 3, k: 16, loss: 'bt', precision: 'f16', maxTokens: 256, fromDecisions: true });
    expect(fake.calls.find((c) => c.op === 'score')!.input).toEqual({ datasetId: '1', rewardModelId: 'rm-2' });
    expect(fake.calls.find((c) => c.op === 'applyFilter')!.input).toEqual({ datasetId: '1', threshold: 0.5, band: 0.2 });
    expect(fake.calls.map((c) => c.op).indexOf('applyFilter')).toBeGreaterThan(fake.calls.map((c) => c.op).indexOf('score'));
    expect(q.queue?.runId).toBe('2');
    expect(q.queue?.items.map((x) => x.pairId)).toEqual(['15', '14', '13', '12', '11']);
    expect(q.current?.pairId).toBe('15');
    expect(q.retrainStatus).toBe('');
  });

  it('refuses, naming what is missing, when the checkpoint or SAE the model was trained with is not registered any more', async () => {
    const { fake, q } = setup({ ...trainedWith, checkpointId: null });
    const app = useAppStore();
    await q.toggle(true);
    await q.retrain();
    expect(fake.calls.some((c) => c.op === 'train')).toBe(false);
    expect(app.toasts.at(-1)).toMatchObject({ kind: 'error', text: expect.stringMatching(/the checkpoint it was trained with \(\/ck2\) of reward model rm-1 is not registered any more/) });

    setActivePinia(createPinia());
    const both = setup({ ...trainedWith, checkpointId: null, saeId: null });
    await both.q.toggle(true);
    await both.q.retrain();
    expect(both.fake.calls.some((c) => c.op === 'train')).toBe(false);
    expect(useAppStore().toasts.at(-1)?.text).toMatch(/checkpoint it was trained with \(\/ck2\) and the SAE it was trained with \(\/s3b\) of reward model rm-1 are not registered any more/);
    expect(both.q.retrainStatus).toBe('');
  });
});
