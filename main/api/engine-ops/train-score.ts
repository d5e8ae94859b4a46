/** SparseRM training and scoring: the train and score jobs, and the training runs every front end shows. */
import path from 'node:path';
import { z } from 'zod';
import { readModelConfig, PRECISIONS } from '../../engine/backbone';
import { resolveMaxTokens } from '../../engine/sparserm/length-policy';
import { decisionTrainingSet } from '../../engine/sparserm/decision-labels';
import { trainRewardModel, registerRewardModel, evaluateRewardModel, scoreDatasetIntoStore, datasetPairs } from '../../engine/sparserm/service';
import type { TrainResult } from '../contract';
import type { EngineContext, EngineOps } from '../engine-ops';
import type { StoredEval } from './model-info';
import type { RewardModelViews } from './reward-model-views';
import { isDemoMeta, modelRows, offThread, progressReporter, skippedView, underDemoKit } from './shared';

const TrainParams = z.object({ datasetId: z.number().int(), checkpointId: z.string(), saeId: z.string(), layer: z.number().int().nonnegative(), k: z.number().int().positive(), loss: z.enum(['margin', 'bt']), maxTokens: z.number().int().positive().optional(), saeEncoding: z.enum(['saelens', 'authors']).optional(), fromDecisions: z.boolean().optional(), undecided: z.enum(['as-labelled', 'exclude']).optional(), precision: z.enum(PRECISIONS).optional() });
const ScoreParams = z.object({ datasetId: z.number().int(), rewardModelId: z.string(), precision: z.enum(PRECISIONS).optional() });

export function createTrainScoreOps(ctx: EngineContext, views: RewardModelViews): Pick<EngineOps, 'startTrain' | 'listRuns' | 'startScore'> {
  const { store, runner } = ctx;
  const { requireBackbone, requireSae } = modelRows(store);
  const { manifestOf, trainView } = views;
  const reporter = progressReporter(ctx);

  runner.define(
    'train',
    async (params: z.infer<typeof TrainParams>, job) => {
      const b = requireBackbone(params.checkpointId);
      const s = requireSae(params.saeId);
      // fromDecisions (issue 14): the curators' decisions label the pairs; the model records the history point.
      const dec = params.fromDecisions ? decisionTrainingSet(store, params.datasetId, { undecided: params.undecided }) : undefined;
      const ds = dec ?? datasetPairs(store, params.datasetId);
      const np = s.metadata.neuronpedia as { modelId: string; saeId: string } | undefined;
      const curve: TrainResult['curve'] = [];
      const report = reporter(job, curve);
      const res = await trainRewardModel({
        checkpoint: b.path ?? '',
        layer: params.layer,
        sae: s.path ?? '',
        ...(params.saeEncoding ? { saeEncoding: params.saeEncoding } : {}),
        pairs: ds.pairs,
        k: params.k,
        loss: params.loss,
        maxTokens: params.maxTokens,
        precision: params.precision,
        datasetName: ds.name,
        ...(dec ? { decisionPoint: dec.point } : {}),
        ...(np ? { labelSet: np } : {}),
        signal: job.signal,
        onProgress: report,
        ...offThread,
      });
      const demo = underDemoKit(b.path) || isDemoMeta(b.metadata);
      // Under the rows the user picked: no second Models entry for the same checkpoint / SAE.
      registerRewardModel(store, res.modelDir, res.manifest, { demo, backboneId: b.id, saeId: s.id });
      job.progress(0, 1, 'baselines on the same features');
      const ev = await evaluateRewardModel({ modelDir: res.modelDir, pairs: ds.pairs, baselines: true, signal: job.signal, onProgress: report, ...offThread });
      const rm = store.models.requireRewardModel(res.manifest.id);
      store.models.upsertRewardModel({
        ...rm,
        metrics: {
          ...rm.metrics,
          datasetId: params.datasetId,
          datasetName: ds.name,
          eval: {
            n: ev.n, accuracy: ev.accuracy, correct: ev.correct, ties: ev.ties, ci95: ev.ci95, auc: ev.auc, evaluatedOn: ev.evaluatedOn, overlap: ev.overlap,
            baselines: ev.baselines.map((x) => ({ name: x.name, n: x.test.n, accuracy: x.test.accuracy, correct: x.test.correct, ties: x.test.ties, ci95: x.test.ci95, auc: x.test.auc, params: x.trainableParams, trainN: x.trainN })),
          } satisfies StoredEval,
        },
      });
      ctx.partials.delete(job.id);
      return { ...trainView(store.models.requireRewardModel(res.manifest.id)), ...skippedView(res.skipped, ds.pairIds) };
    },
    TrainParams,
  );
  runner.define(
    'score',
    async (params: z.infer<typeof ScoreParams>, job) => {
      const rm = store.models.requireRewardModel(params.rewardModelId);
      // Warnings (e.g. scoring at another precision than the model was trained at) go into the job message.
      const warnings: string[] = [];
      const onWarning = (w: string) => {
        warnings.push(w);
        job.progress(0, null, `warning: ${w}`);
      };
      const r = await scoreDatasetIntoStore({ store, dataset: params.datasetId, modelDir: rm.folder, precision: params.precision, signal: job.signal, onProgress: reporter(job), onWarning, ...offThread });
      if (r.skipped.length || warnings.length) {
        job.progress(r.pairs, r.pairs, [`scored ${r.pairs} pairs`, ...(r.skipped.length ? [`skipped ${r.skipped.length} whose text cannot be encoded`] : []), ...warnings.map((w) => `warning: ${w}`)].join('; '));
      }
      // accuracy over every scored pair (n = pairs), exact ties apart, with its 95 % Wilson interval
      return { runId: r.runId, pairs: r.pairs, accuracy: r.accuracy, ties: r.ties, ci95: r.ci95, ...skippedView(r.skipped) };
    },
    ScoreParams,
  );

  return {
    startTrain(i) {
      const b = requireBackbone(i.checkpointId);
      requireSae(i.saeId);
      // Refuse a max-token setting above max_position_embeddings now, not minutes later inside the job.
      if (i.maxTokens !== undefined && b.path) resolveMaxTokens(i.maxTokens, readModelConfig(b.path), path.join(b.path, 'config.json'));
      return runner.start('train', { ...i, datasetId: Number(i.datasetId) }).id;
    },
    listRuns(datasetId) {
      // One truth for every front end: a model belongs to a dataset when the app trained it there (metrics.datasetId),
      // when it scored the dataset, or when its manifest names the dataset (the CLI records no datasetId). The model
      // behind the dataset's current verdicts comes first, so Train, Charts and Models show the same numbers.
      const ds = datasetId !== undefined ? store.datasets.get(datasetId) : undefined;
      const scoredWith = new Set(datasetId !== undefined ? store.runs.list(datasetId).filter((r) => r.status === 'done').map((r) => r.rewardModelId) : []);
      const current = datasetId !== undefined ? store.runs.currentFilter(datasetId) : undefined;
      const currentModel = current ? store.runs.get(current.runId).rewardModelId : undefined;
      const out: TrainResult[] = [];
      for (const rm of store.models.rewardModels().sort((a, b) => b.createdAt.localeCompare(a.createdAt))) {
        if (ds) {
          const trainedHere = rm.metrics.datasetId === ds.id;
          const trainedElsewhere = typeof rm.metrics.datasetId === 'number' && !trainedHere;
          const named = manifestOf(rm)?.training.dataset === ds.name;
          if (!trainedHere && !scoredWith.has(rm.id) && (trainedElsewhere || !named)) continue;
        }
        const v = trainView(rm);
        if (v) out.push(v);
      }
      if (currentModel) out.sort((a, b) => Number(b.rewardModelId === currentModel) - Number(a.rewardModelId === currentModel));
      return out;
    },
    startScore(i) {
      store.models.requireRewardModel(i.rewardModelId);
      return runner.start('score', i).id;
    },
  };
}
