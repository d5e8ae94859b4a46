/** The Charts screen: margin histogram, accuracy by threshold and source, agreement, training curve. */
import { z } from 'zod';
import { Id } from './common';
import { AccuracyView, TrainResult } from './models';
import { op, type OpTable } from './op';

export const Histogram = z.object({
  /** bin edges, length bins+1 */
  edges: z.array(z.number()),
  series: z.array(z.object({ decision: z.string(), counts: z.array(z.number().int()) })),
});

export const chartOps = {
  // --- charts -----------------------------------------------------------------------------------------------
  chartData: op(
    'Everything the Charts screen draws for a dataset.',
    z.object({ datasetId: Id, bins: z.number().int().min(5).max(200).default(40) }),
    z.object({
      marginHistogram: Histogram.nullable(),
      accuracyVsThreshold: z.array(z.object({ threshold: z.number(), accuracy: z.number(), kept: z.number().int() })),
      /** Share of curator decisions that match the model's verdict (null when there are none). */
      agreement: z.object({ value: z.number().nullable(), decided: z.number().int() }),
      /** On pairs whose prompt the scoring model never saw (heldOut: false when its folder does not record them). */
      perSource: z.array(AccuracyView.extend({ source: z.string(), n: z.number().int() })),
      perSourceBasis: z.object({ heldOut: z.boolean(), leftOut: z.number().int().nonnegative() }),
      trainingCurve: TrainResult.shape.curve.nullable(),
    }),
  ),
} as const satisfies OpTable;
