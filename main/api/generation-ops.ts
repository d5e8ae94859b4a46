/**
 * The generation operations of the API (issue 12): presets, start a generation job, runs with lineage and progress,
 * the next round of a generated dataset, a run's candidates. handlers.ts spreads these into its handler object.
 */
import { InputError } from '../engine/errors';
import type { JobRunner } from '../engine/jobs';
import type { DatasetLineage as StoreLineage, GenerationRunRecord, Store } from '../engine/store';
import type { PolicySpec } from '../engine/store/generations';
import { PRESETS } from '../engine/generate/presets';
import { nextRoundParams, openPolicySource, registerGenerateJob, type OpenSource } from '../engine/generate/workflow';
import type { ApiHandlers, DatasetLineage, GenerationRun, OpParsedInput } from './contract';

/** Contract id → store id (store-mapping.ts imports this module for lineage, so its intId is not imported here). */
function intId(value: string, field: string): number {
  if (!/^\d+$/.test(value)) throw new InputError({ field, expected: 'a numeric id', got: JSON.stringify(value) });
  return Number(value);
}

type GenerationOps = Pick<ApiHandlers, 'generationPresets' | 'startGeneration' | 'listGenerationRuns' | 'nextRound' | 'listCandidates'>;

export function toLineage(l: StoreLineage): DatasetLineage {
  const id = (n: number | null) => (n === null ? null : String(n));
  return {
    generationRunId: id(l.generationRunId),
    recipe: l.recipe,
    recipeParams: l.recipeParams,
    policy: l.policy,
    policyLabel: l.policyLabel,
    round: l.round,
    parentDatasetId: id(l.parentDatasetId),
    promptsDatasetId: id(l.promptsDatasetId),
    promptsSource: l.promptsSource,
  };
}

/** The dataset's lineage for DatasetSummary (undefined for imported datasets). */
export function lineageOf(store: Store, datasetId: number): DatasetLineage | undefined {
  const l = store.generations.lineage(datasetId);
  return l ? toLineage(l) : undefined;
}

/**
 * A run left 'running' by a process that died shows its job's fate instead (the job is 'interrupted' after
 * recoverInterrupted; resumeJob continues it). A run driven by another live process keeps 'running'.
 */
function liveStatus(store: Store, r: GenerationRunRecord): GenerationRun['status'] {
  if (r.status !== 'running' || !r.jobId) return r.status;
  const job = store.jobs.find(r.jobId);
  if (!job || job.status === 'running' || job.status === 'queued') return r.status;
  return job.status === 'cancelled' ? 'cancelled' : job.status === 'done' ? 'done' : 'failed';
}

function toRun(store: Store, r: GenerationRunRecord): GenerationRun & { lineage: DatasetLineage | null } {
  const id = (n: number | null) => (n === null ? null : String(n));
  return {
    id: String(r.id),
    name: r.name,
    policyKind: r.policyKind,
    policy: r.policy,
    policyLabel: r.policyLabel,
    sampling: r.sampling,
    n: r.n,
    promptsSource: r.promptsSource,
    recipe: r.recipe,
    recipeParams: r.recipeParams,
    rewardModelId: r.rewardModelId,
    round: r.round,
    parentDatasetId: id(r.parentDatasetId),
    datasetId: id(r.datasetId),
    status: liveStatus(store, r),
    promptsTotal: r.promptsTotal,
    promptsDone: r.promptsDone,
    tokens: r.tokens,
    jobId: r.jobId,
    createdAt: r.createdAt,
    finishedAt: r.finishedAt,
    lineage: r.datasetId === null ? null : (lineageOf(store, r.datasetId) ?? null),
  };
}

export function createGenerationOps(ctx: { store: Store; runner: JobRunner; openSource?: OpenSource }): GenerationOps {
  const { store, runner } = ctx;
  if (!runner.kinds().includes('generate')) registerGenerateJob(runner, ctx.openSource ?? openPolicySource);

  const localPolicy = (checkpointId: string): PolicySpec => {
    const b = store.models.backbone(checkpointId);
    if (!b?.path) throw new InputError({ field: 'checkpointId', expected: 'a registered checkpoint with a folder (add it on the Models screen)', got: checkpointId });
    return { kind: 'local', checkpoint: b.path };
  };
  const rewardModelFolder = (id: string) => {
    const rm = store.models.rewardModel(id);
    if (!rm) throw new InputError({ field: 'rewardModelId', expected: 'a trained reward model', got: id });
    return rm.folder;
  };
  // runner.start validates the params with the job's schema (InputError naming the field).
  const start = (params: unknown) => runner.start('generate', params).id;

  return {
    generationPresets: async () => ({ presets: PRESETS.map((p) => ({ ...p, instructions: { ...p.instructions } })) }),
    startGeneration: async (i: OpParsedInput<'startGeneration'>) =>
      ({
        jobId: start({
          name: i.name,
          prompts: i.prompts.datasetId !== undefined ? { dataset: intId(i.prompts.datasetId, 'prompts.datasetId') } : { file: i.prompts.path! },
          policy: i.policy.kind === 'local' ? localPolicy(i.policy.checkpointId) : { kind: 'endpoint', url: i.policy.url, model: i.policy.model },
          sampling: i.sampling,
          n: i.n,
          recipe: i.recipe,
          preset: i.preset,
          instructions: i.instructions,
          delta: i.delta,
          rewardModel: rewardModelFolder(i.rewardModelId),
          round: i.round,
          parentDatasetId: i.parentDatasetId !== undefined ? intId(i.parentDatasetId, 'parentDatasetId') : undefined,
        }),
      }),
    listGenerationRuns: async ({ datasetId }) => ({
      runs: store.generations.list(datasetId !== undefined ? { datasetId: intId(datasetId, 'datasetId') } : {}).map((r) => toRun(store, r)),
    }),
    nextRound: async ({ datasetId, checkpointId, name }) => ({ jobId: start(nextRoundParams(store, intId(datasetId, 'datasetId'), localPolicy(checkpointId), name)) }),
    listCandidates: async ({ runId, offset, limit }) => {
      const id = intId(runId, 'runId');
      store.generations.get(id);
      const prompts = store.generations.prompts(id);
      return {
        total: store.generations.candidateCount(id),
        candidates: store.generations.candidates(id, { offset, limit }).map((c) => ({
          id: String(c.id),
          promptIndex: c.promptIndex,
          prompt: prompts[c.promptIndex]?.prompt ?? '',
          variant: c.variant,
          candidateIndex: c.candidateIndex,
          text: c.text,
          tokenCount: c.tokens ? c.tokens.length : null,
          logprob: c.logprob,
          finishReason: c.finishReason,
          score: c.score,
        })),
      };
    },
  };
}
