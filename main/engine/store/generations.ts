/**
 * Generation runs (issue 12): the policy, sampling and prompts of a run, its frozen prompt list, the candidates
 * generated per prompt (and their SparseRM scores), and the lineage of the datasets generation produces.
 * Rows are validated with zod on the way out, like every repository.
 */
import { z } from 'zod';

import { InputError } from '../errors';
import type { Db } from './db';
import { MessageSchema, now, type Message } from './rows';

const jsonCol = <T extends z.ZodType>(inner: T) =>
  z.string().transform((s, ctx) => {
    try {
      return inner.parse(JSON.parse(s)) as z.output<T>;
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `invalid JSON column: ${(e as Error).message}` });
      return z.NEVER;
    }
  });

export const GenerationSamplingSchema = z.object({
  temperature: z.number().min(0),
  topP: z.number().gt(0).max(1),
  topK: z.number().int().nonnegative(),
  seed: z.number().int().nonnegative(),
  maxNewTokens: z.number().int().positive(),
});
export type GenerationSampling = z.infer<typeof GenerationSamplingSchema>;

export const RecipeName = z.enum(['instructed', 'self-judged', 'best-worst', 'margin']);
export type RecipeName = z.infer<typeof RecipeName>;
export const GenerationStatus = z.enum(['running', 'done', 'failed', 'cancelled']);
export type GenerationStatus = z.infer<typeof GenerationStatus>;

/** How to reopen the policy on resume (local checkpoint folder, or endpoint URL + model). */
export const PolicySpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('local'),
    checkpoint: z.string().min(1),
    /** Weight precision of the decoder (f32 | f16 | int8 | int4; default f32) and its execution provider. */
    precision: z.string().max(10).optional(),
    ep: z.enum(['auto', 'cpu', 'cuda', 'webgpu']).optional(),
  }),
  z.object({ kind: z.literal('endpoint'), url: z.string().min(1), model: z.string().min(1) }),
]);
export type PolicySpec = z.infer<typeof PolicySpecSchema>;

const GenerationRunRow = z
  .object({
    id: z.number(),
    name: z.string(),
    policy_kind: z.enum(['local', 'endpoint']),
    policy: z.string(),
    policy_label: z.string(),
    policy_json: jsonCol(PolicySpecSchema),
    sampling_json: jsonCol(GenerationSamplingSchema),
    n: z.number().int().positive(),
    prompts_source: z.string(),
    prompts_dataset_id: z.number().nullable(),
    recipe: RecipeName,
    recipe_json: jsonCol(z.record(z.string(), z.unknown())),
    reward_model_id: z.string().nullable(),
    round: z.number().int().positive(),
    parent_dataset_id: z.number().nullable(),
    dataset_id: z.number().nullable(),
    status: GenerationStatus,
    prompts_total: z.number().int().nonnegative(),
    prompts_done: z.number().int().nonnegative(),
    tokens: z.number().int().nonnegative(),
    job_id: z.string().nullable(),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .transform((r) => ({
    id: r.id,
    name: r.name,
    policyKind: r.policy_kind,
    policy: r.policy,
    policyLabel: r.policy_label,
    policySpec: r.policy_json,
    sampling: r.sampling_json,
    n: r.n,
    promptsSource: r.prompts_source,
    promptsDatasetId: r.prompts_dataset_id,
    recipe: r.recipe,
    recipeParams: r.recipe_json,
    rewardModelId: r.reward_model_id,
    round: r.round,
    parentDatasetId: r.parent_dataset_id,
    datasetId: r.dataset_id,
    status: r.status,
    promptsTotal: r.prompts_total,
    promptsDone: r.prompts_done,
    tokens: r.tokens,
    jobId: r.job_id,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  }));
export type GenerationRunRecord = z.output<typeof GenerationRunRow>;

const PromptRow = z
  .object({ prompt_index: z.number().int().nonnegative(), prompt: z.string(), prompt_messages: jsonCol(z.array(MessageSchema)), done: z.number() })
  .transform((r) => ({ index: r.prompt_index, prompt: r.prompt, messages: r.prompt_messages, done: r.done !== 0 }));
export type GenerationPrompt = z.output<typeof PromptRow>;

const CandidateRow = z
  .object({
    id: z.number(),
    run_id: z.number(),
    prompt_index: z.number().int().nonnegative(),
    variant: z.string(),
    candidate_index: z.number().int().nonnegative(),
    text: z.string(),
    tokens_json: z.string().nullable().pipe(z.union([z.null(), jsonCol(z.array(z.number().int()))])),
    logprob: z.number().nullable(),
    finish_reason: z.enum(['stop', 'length']),
    score: z.number().nullable(),
  })
  .transform((r) => ({
    id: r.id,
    runId: r.run_id,
    promptIndex: r.prompt_index,
    variant: r.variant,
    candidateIndex: r.candidate_index,
    text: r.text,
    tokens: r.tokens_json,
    logprob: r.logprob,
    finishReason: r.finish_reason,
    score: r.score,
  }));
export type StoredCandidate = z.output<typeof CandidateRow>;

const LineageRow = z
  .object({
    dataset_id: z.number(),
    generation_run_id: z.number().nullable(),
    recipe: z.string(),
    recipe_json: jsonCol(z.record(z.string(), z.unknown())),
    policy: z.string(),
    policy_label: z.string(),
    round: z.number().int().positive(),
    parent_dataset_id: z.number().nullable(),
    prompts_dataset_id: z.number().nullable(),
    prompts_source: z.string(),
  })
  .transform((r) => ({
    datasetId: r.dataset_id,
    generationRunId: r.generation_run_id,
    recipe: r.recipe,
    recipeParams: r.recipe_json,
    policy: r.policy,
    policyLabel: r.policy_label,
    round: r.round,
    parentDatasetId: r.parent_dataset_id,
    promptsDatasetId: r.prompts_dataset_id,
    promptsSource: r.prompts_source,
  }));
export type DatasetLineage = z.output<typeof LineageRow>;

export interface NewGenerationRun {
  name: string;
  policyKind: 'local' | 'endpoint';
  policy: string;
  policyLabel: string;
  policySpec: PolicySpec;
  sampling: GenerationSampling;
  n: number;
  promptsSource: string;
  promptsDatasetId?: number | null;
  recipe: RecipeName;
  recipeParams?: Record<string, unknown>;
  rewardModelId?: string | null;
  round?: number;
  parentDatasetId?: number | null;
  jobId?: string | null;
}

export interface NewCandidate {
  variant: string;
  candidateIndex: number;
  text: string;
  tokens: number[] | null;
  logprob: number | null;
  finishReason: 'stop' | 'length';
  score?: number | null;
}

export class GenerationsRepo {
  constructor(private readonly db: Db) {}

  /** Creates a run with its prompt list frozen (one transaction). */
  create(r: NewGenerationRun, prompts: ReadonlyArray<{ prompt: string; messages: Message[] }>): GenerationRunRecord {
    if (prompts.length === 0) throw new InputError({ field: 'prompts', expected: 'at least one prompt', got: 'none' });
    const sampling = GenerationSamplingSchema.parse(r.sampling);
    return this.db.transaction(() => {
      const info = this.db
        .prepare(
          `INSERT INTO generation_runs(name, policy_kind, policy, policy_label, policy_json, sampling_json, n, prompts_source, prompts_dataset_id,
             recipe, recipe_json, reward_model_id, round, parent_dataset_id, status, prompts_total, job_id, created_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'running',?,?,?)`,
        )
        .run(
          r.name, r.policyKind, r.policy, r.policyLabel, JSON.stringify(r.policySpec), JSON.stringify(sampling), r.n, r.promptsSource,
          r.promptsDatasetId ?? null, r.recipe, JSON.stringify(r.recipeParams ?? {}), r.rewardModelId ?? null, r.round ?? 1,
          r.parentDatasetId ?? null, prompts.length, r.jobId ?? null, now(),
        );
      const id = Number(info.lastInsertRowid);
      const ins = this.db.prepare('INSERT INTO generation_prompts(run_id, prompt_index, prompt, prompt_messages) VALUES (?,?,?,?)');
      prompts.forEach((p, i) => ins.run(id, i, p.prompt, JSON.stringify(p.messages)));
      return this.get(id);
    }).immediate();
  }

  get(id: number): GenerationRunRecord {
    const r = this.db.prepare('SELECT * FROM generation_runs WHERE id = ?').get(id);
    if (!r) throw new InputError({ field: 'runId', expected: 'an existing generation run id', got: String(id) });
    return GenerationRunRow.parse(r);
  }

  /** Newest first; of one generated dataset when given. */
  list(opts: { datasetId?: number } = {}): GenerationRunRecord[] {
    const rows = opts.datasetId === undefined
      ? this.db.prepare('SELECT * FROM generation_runs ORDER BY id DESC').all()
      : this.db.prepare('SELECT * FROM generation_runs WHERE dataset_id = ? ORDER BY id DESC').all(opts.datasetId);
    return rows.map((r) => GenerationRunRow.parse(r));
  }

  byJob(jobId: string): GenerationRunRecord | undefined {
    const r = this.db.prepare('SELECT * FROM generation_runs WHERE job_id = ? ORDER BY id DESC LIMIT 1').get(jobId);
    return r ? GenerationRunRow.parse(r) : undefined;
  }

  prompts(runId: number): GenerationPrompt[] {
    return this.db.prepare('SELECT * FROM generation_prompts WHERE run_id = ? ORDER BY prompt_index').all(runId).map((r) => PromptRow.parse(r));
  }

  /**
   * Stores all candidates of one prompt and marks it done, in one transaction with the run's counters, so a
   * resumed run skips exactly the prompts whose candidates are all in.
   */
  addPromptCandidates(runId: number, promptIndex: number, candidates: readonly NewCandidate[], tokens: number): void {
    const ins = this.db.prepare(
      `INSERT OR REPLACE INTO generation_candidates(run_id, prompt_index, variant, candidate_index, text, tokens_json, logprob, finish_reason, score)
       VALUES (?,?,?,?,?,?,?,?,?)`,
    );
    this.db.transaction(() => {
      for (const c of candidates) {
        ins.run(runId, promptIndex, c.variant, c.candidateIndex, c.text, c.tokens ? JSON.stringify(c.tokens) : null, c.logprob, c.finishReason, c.score ?? null);
      }
      const upd = this.db.prepare('UPDATE generation_prompts SET done = 1 WHERE run_id = ? AND prompt_index = ? AND done = 0').run(runId, promptIndex);
      if (upd.changes === 0 && !this.db.prepare('SELECT 1 FROM generation_prompts WHERE run_id = ? AND prompt_index = ?').get(runId, promptIndex)) {
        throw new InputError({ field: 'promptIndex', expected: `a prompt of generation run ${runId}`, got: String(promptIndex) });
      }
      this.db.prepare('UPDATE generation_runs SET prompts_done = prompts_done + ?, tokens = tokens + ? WHERE id = ?').run(upd.changes, tokens, runId);
    })();
  }

  setScores(scores: ReadonlyArray<{ id: number; score: number }>): void {
    const upd = this.db.prepare('UPDATE generation_candidates SET score = ? WHERE id = ?');
    this.db.transaction(() => {
      for (const s of scores) {
        if (!Number.isFinite(s.score)) throw new InputError({ field: 'score', expected: 'a finite score', got: `${s.score} for candidate ${s.id}` });
        upd.run(s.score, s.id);
      }
    })();
  }

  candidateCount(runId: number): number {
    return (this.db.prepare('SELECT count(*) AS n FROM generation_candidates WHERE run_id = ?').get(runId) as { n: number }).n;
  }

  /** Candidates in prompt, variant, candidate order (a page when offset/limit are given). */
  candidates(runId: number, opts: { offset?: number; limit?: number; promptIndex?: number } = {}): StoredCandidate[] {
    const where = opts.promptIndex === undefined ? 'run_id = ?' : 'run_id = ? AND prompt_index = ?';
    const params: number[] = opts.promptIndex === undefined ? [runId] : [runId, opts.promptIndex];
    return this.db
      .prepare(`SELECT * FROM generation_candidates WHERE ${where} ORDER BY prompt_index, variant, candidate_index LIMIT ? OFFSET ?`)
      .all(...params, opts.limit ?? -1, opts.offset ?? 0)
      .map((r) => CandidateRow.parse(r));
  }

  setStatus(runId: number, status: GenerationStatus): void {
    this.db.prepare('UPDATE generation_runs SET status = ?, finished_at = ? WHERE id = ?').run(status, status === 'running' ? null : now(), runId);
  }

  setJob(runId: number, jobId: string): void {
    this.db.prepare('UPDATE generation_runs SET job_id = ? WHERE id = ?').run(jobId, runId);
  }

  /** Points the run at its generated dataset and records the dataset's lineage (one transaction). */
  linkDataset(runId: number, datasetId: number): DatasetLineage {
    const run = this.get(runId);
    this.db.transaction(() => {
      this.db.prepare('UPDATE generation_runs SET dataset_id = ? WHERE id = ?').run(datasetId, runId);
      this.db
        .prepare(
          `INSERT OR REPLACE INTO dataset_lineage(dataset_id, generation_run_id, recipe, recipe_json, policy, policy_label, round, parent_dataset_id, prompts_dataset_id, prompts_source)
           VALUES (?,?,?,?,?,?,?,?,?,?)`,
        )
        .run(datasetId, runId, run.recipe, JSON.stringify(run.recipeParams), run.policy, run.policyLabel, run.round, run.parentDatasetId, run.promptsDatasetId, run.promptsSource);
    })();
    return this.lineage(datasetId)!;
  }

  lineage(datasetId: number): DatasetLineage | undefined {
    const r = this.db.prepare('SELECT * FROM dataset_lineage WHERE dataset_id = ?').get(datasetId);
    return r ? LineageRow.parse(r) : undefined;
  }
}
