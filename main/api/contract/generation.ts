/** Generation (issue 12): a policy generates candidates, a recipe pairs them, SparseRM filters the pairs. */
import { z } from 'zod';
import { Id, JobRef } from './common';
import { DatasetLineage } from './datasets';
import { empty, op, type OpTable } from './op';

export const Sampling = z.object({
  /** 0 = greedy. */
  temperature: z.number().min(0).max(5).default(1),
  topP: z.number().gt(0).max(1).default(1),
  /** 0 = off. */
  topK: z.number().int().nonnegative().max(100000).default(0),
  seed: z.number().int().nonnegative().max(2 ** 31 - 1).default(0),
  maxNewTokens: z.number().int().min(1).max(4096).default(128),
});
export const GenerationRecipe = z.enum(['instructed', 'self-judged', 'best-worst', 'margin']);
/** An editable pair of instructions (system preface) for the instructed recipe: the label is given by construction. */
export const InstructionPair = z.object({ chosen: z.string().min(1).max(4000), rejected: z.string().min(1).max(4000) });
export const GenerationPreset = z.object({ id: z.string(), name: z.string(), description: z.string(), instructions: InstructionPair });
export const PolicySpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('local'), checkpointId: Id }),
  z.object({ kind: z.literal('endpoint'), url: z.string().min(1).max(2048), model: z.string().min(1).max(200) }),
]);
export const GenerationRun = z.object({
  id: Id,
  name: z.string(),
  policyKind: z.enum(['local', 'endpoint']),
  policy: z.string(),
  policyLabel: z.string(),
  sampling: z.object({ temperature: z.number(), topP: z.number(), topK: z.number().int(), seed: z.number().int(), maxNewTokens: z.number().int() }),
  n: z.number().int().positive(),
  promptsSource: z.string(),
  recipe: GenerationRecipe,
  recipeParams: z.record(z.string(), z.unknown()),
  rewardModelId: z.string().nullable(),
  round: z.number().int().positive(),
  parentDatasetId: Id.nullable(),
  /** The generated dataset, once the run has paired its candidates. */
  datasetId: Id.nullable(),
  status: z.enum(['running', 'done', 'failed', 'cancelled']),
  promptsTotal: z.number().int().nonnegative(),
  promptsDone: z.number().int().nonnegative(),
  /** Tokens generated so far. */
  tokens: z.number().int().nonnegative(),
  jobId: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type GenerationRun = z.infer<typeof GenerationRun>;
export const GenerationCandidate = z.object({
  id: Id,
  promptIndex: z.number().int().nonnegative(),
  prompt: z.string(),
  /** Instructed recipe: 'chosen' / 'rejected' (which instruction it answered); '' otherwise. */
  variant: z.string(),
  candidateIndex: z.number().int().nonnegative(),
  text: z.string(),
  /** Number of generated tokens (null when the source does not say). */
  tokenCount: z.number().int().nonnegative().nullable(),
  logprob: z.number().nullable(),
  finishReason: z.enum(['stop', 'length']),
  /** SparseRM score (null until scored). */
  score: z.number().nullable(),
});
export type GenerationCandidate = z.infer<typeof GenerationCandidate>;

export const generationOps = {
  // --- generation --------------------------------------------------------------------------------------------
  generationPresets: op('Instruction templates for the instructed recipe (TruthfulQA-, SafeRLHF-style).', empty, z.object({ presets: z.array(GenerationPreset) })),
  startGeneration: op(
    "Generate candidates with a policy for a prompts file or a dataset's prompts, score them with a reward model, pair them by a recipe into a new dataset. Runs as a job (progress message carries tokens/s; cancel and resume).",
    z
      .object({
        prompts: z.object({ datasetId: Id.optional(), path: z.string().min(1).max(4096).optional() }).refine((p) => (p.datasetId === undefined) !== (p.path === undefined), { message: 'exactly one of datasetId or path' }),
        policy: PolicySpec,
        sampling: Sampling.default({ temperature: 1, topP: 1, topK: 0, seed: 0, maxNewTokens: 128 }),
        n: z.number().int().min(1).max(64).default(4),
        recipe: GenerationRecipe,
        /** Instructed recipe: a preset id (generationPresets) or explicit instructions (these win). */
        preset: z.string().max(100).optional(),
        instructions: InstructionPair.optional(),
        /** Margin recipe: keep pairs whose SparseRM margin exceeds delta. */
        delta: z.number().min(0).max(1e6).optional(),
        rewardModelId: Id,
        name: z.string().trim().min(1).max(200).optional(),
        round: z.number().int().min(1).max(1000).optional(),
        parentDatasetId: Id.optional(),
      }),
    JobRef,
  ),
  listGenerationRuns: op('Generation runs (newest first) with lineage and progress; of one generated dataset if given.', z.object({ datasetId: Id.optional() }).default({}), z.object({ runs: z.array(GenerationRun.extend({ lineage: DatasetLineage.nullable() })) })),
  nextRound: op(
    'The next round of a generated dataset: same prompts, recipe and sampling, a new policy checkpoint, round + 1, parent = that dataset. Runs as a job.',
    z.object({ datasetId: Id, checkpointId: Id, name: z.string().trim().min(1).max(200).optional() }),
    JobRef,
  ),
  listCandidates: op(
    'Candidates of a generation run with their SparseRM scores (prompt order).',
    z.object({ runId: Id, offset: z.number().int().nonnegative().default(0), limit: z.number().int().min(1).max(500).default(50) }),
    z.object({ total: z.number().int().nonnegative(), candidates: z.array(GenerationCandidate) }),
  ),
} as const satisfies OpTable;
