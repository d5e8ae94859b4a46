/** The precision check (issue 13): a reward model at a cheaper backbone precision against f32 on a dataset's pairs. */
import { z } from 'zod';
import { precisionCheck } from '../../engine/sparserm/precision-check';
import { datasetPairs } from '../../engine/sparserm/service';
import type { EngineContext, EngineOps } from '../engine-ops';
import { offThread, progressReporter, skippedView } from './shared';

const PrecisionCheckParams = z.object({ datasetId: z.number().int(), rewardModelId: z.string(), precision: z.enum(['f16', 'int8', 'int4', 'f32']), threshold: z.number().optional(), limit: z.number().int().positive().optional() });

export function createPrecisionOps(ctx: EngineContext): Pick<EngineOps, 'startPrecisionCheck'> {
  const { store, runner } = ctx;
  const reporter = progressReporter(ctx);
  runner.define(
    'precisionCheck',
    async (params: z.infer<typeof PrecisionCheckParams>, job) => {
      const rm = store.models.requireRewardModel(params.rewardModelId);
      const ds = datasetPairs(store, params.datasetId);
      const pairs = params.limit ? ds.pairs.slice(0, params.limit) : ds.pairs;
      const r = await precisionCheck({ modelDir: rm.folder, pairs, precision: params.precision, threshold: params.threshold, signal: job.signal, onProgress: reporter(job), ...offThread });
      const { skipped, ...rest } = r;
      return { ...rest, ...skippedView(skipped, ds.pairIds), dataset: ds.name };
    },
    PrecisionCheckParams,
  );

  return {
    startPrecisionCheck(i) {
      store.models.requireRewardModel(i.rewardModelId);
      return runner.start('precisionCheck', i).id;
    },
  };
}
