import { z } from 'zod';

import { PRECISIONS } from '../backbone/linear-weights';

/** The reward-model folder's manifest.json. Validated on every load: the folder may come from another machine. */
export const MANIFEST_FORMAT = 'sparserm-reward-model';

const splitMetrics = z.object({ n: z.number().int().nonnegative(), accuracy: z.number().nullable(), auc: z.number().nullable() });

export const RewardModelManifest = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(1),
  id: z.string(),
  created: z.string(),
  backbone: z.object({
    checkpoint: z.string(),
    contentHash: z.string(),
    layer: z.number().int().nonnegative(),
    hiddenSize: z.number().int().positive(),
    files: z.record(z.string(), z.string()).optional(),
    /** Backbone precision the training features were made with (absent in older manifests: f32). */
    precision: z.enum(PRECISIONS).optional(),
  }),
  sae: z.object({
    id: z.string(),
    hash: z.string(),
    path: z.string(),
    format: z.enum(['npz', 'saelens', 'llama-scope']),
    /** Llama Scope SAEs: the encoding the model was trained with (sae/llama-scope.ts); absent for Gemma Scope. */
    encoding: z.enum(['saelens', 'authors']).optional(),
    dSae: z.number().int().positive(),
    hookLayer: z.number().int().optional(),
    /** Neuronpedia-style ids the store's latent labels are keyed by. */
    labels: z.object({ modelId: z.string(), saeId: z.string() }).optional(),
  }),
  pooling: z.enum(['mean', 'last']),
  /** Max tokens per response sequence (length-policy.ts); score / explain / eval use it. Manifests written before
   *  the setting existed read as 1,024 (docs/sparserm.md, Length policy): identical for every shorter input. */
  maxTokens: z.number().int().positive().default(1024),
  k: z.number().int().positive(),
  selected: z.array(
    z.object({
      index: z.number().int().nonnegative(),
      side: z.enum(['positive', 'negative']),
      muW: z.number(),
      muL: z.number(),
      meanActW: z.number(),
      meanActL: z.number(),
    }),
  ),
  head: z.object({
    onnx: z.literal('head.onnx'),
    weights: z.literal('head.npz'),
    input: z.literal('z'),
    output: z.literal('score'),
    inDim: z.number().int().positive(),
    hidden: z.number().int().positive(),
    activation: z.literal('relu'),
    trainableParams: z.number().int().positive(),
    standardization: z.literal('per-feature mean/std of the training responses, inside head.onnx and head.npz'),
  }),
  training: z.object({
    loss: z.enum(['margin', 'bt']),
    margin: z.number(),
    optimizer: z.literal('adam'),
    lr: z.number(),
    batchSize: z.number().int().positive(),
    maxEpochs: z.number().int().positive(),
    patience: z.number().int().positive(),
    epochsRun: z.number().int().nonnegative(),
    bestEpoch: z.number().int().nonnegative(),
    seed: z.number().int(),
    splitBy: z.literal('prompt'),
    valFraction: z.number(),
    testFraction: z.number(),
    pairs: z.object({ train: z.number().int(), val: z.number().int(), test: z.number().int() }),
    dataHash: z.string(),
    dataset: z.string().optional(),
    /**
     * Hashes of the prompts trained on and validated on (seen-prompts.ts), so eval on any data can leave them out.
     * Absent in folders written before it was recorded: eval then reports the overlap as unknown.
     */
    prompts: z.object({ hash: z.string(), train: z.array(z.string()), val: z.array(z.string()) }).optional(),
    /** Pairs of the data left out because the tokenizer refused their text (dataHash still covers all of them). */
    skippedPairs: z.number().int().positive().optional(),
    /** Pairs with at least one response cut to maxTokens (length-policy.ts). */
    truncatedPairs: z.number().int().positive().optional(),
    /** Trained on the curators' decisions (decision-labels.ts): the history point and how pairs entered training. */
    decisions: z
      .object({
        groupId: z.number().int().nullable(),
        decisionId: z.number().int().nullable(),
        undecided: z.enum(['as-labelled', 'exclude']),
        holdOut: z.boolean(),
        holdOutFraction: z.number(),
        asLabelled: z.number().int().nonnegative(),
        swapped: z.number().int().nonnegative(),
        excluded: z.number().int().nonnegative(),
        excludedBy: z.object({ dropped: z.number().int().nonnegative(), undecided: z.number().int().nonnegative(), heldOut: z.number().int().nonnegative() }),
      })
      .optional(),
    seconds: z.number(),
  }),
  metrics: z.object({ train: splitMetrics, val: splitMetrics, test: splitMetrics }),
  attribution: z.object({ method: z.literal('gradient-x-input-fixed-relu-pattern'), description: z.string() }),
  tokenActivations: z.literal('on-demand'),
});
export type RewardModelManifest = z.infer<typeof RewardModelManifest>;

export const ATTRIBUTION_DESCRIPTION =
  'With the ReLU pattern a of the response fixed, s = sum_j x_j * g_j + bias exactly, where x = (p - mean) / std, ' +
  'g = W1^T (a * w2), bias = w2 . (a * b1) + b2. Contribution of latent j = x_j * g_j; contributions sum to s - bias.';
