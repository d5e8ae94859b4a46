/**
 * The generation workflow (issue 12): a policy (any CandidateSource) answers each prompt with n candidates, which
 * are stored as they come (a restarted job skips the prompts already done), scored by a SparseRM reward model
 * (from features captured while decoding when the source has them, else the normal feature path), paired by a
 * recipe, and written as a NEW dataset with lineage, a scoring run and — for the recipes whose label does not come
 * from SparseRM — the paper's filter (s_w < s_l dropped) as the model verdict, so Review, filter and Export treat it
 * like any other dataset.
 */
import { z } from 'zod';

import type { ChatMessage } from '../backbone/chat-template';
import { contentHash } from '../data/hash';
import { InputError, throwIfAborted } from '../errors';
import type { JobRunner } from '../jobs';
import { pooledFor, scoreRepresentations } from '../sparserm/pair-jobs';
import { readRewardModel, type RewardModel } from '../sparserm/model-folder';
import { registerRewardModel } from '../sparserm/registry';
import { sigmoid } from '../sparserm/metrics';
import type { GenerationRunRecord, NewCandidate, Store } from '../store';
import { GenerationSamplingSchema, PolicySpecSchema, RecipeName, type PolicySpec } from '../store/generations';
import { presetById, type InstructionPair } from './presets';
import { datasetPrompts, readPromptsFile, type PromptItem } from './prompts-file';
import { bestWorstPairs, distinctPairs, instructedPairs, marginPairs, selfJudgedPairs, VARIANTS, withInstruction, type BuiltPair, type PairableCandidate } from './recipes';
import type { CandidateSource } from './types';

export const GenerateParams = z.object({
  /** Name of the generated dataset (default: `<prompts>-<recipe>-r<round>`, made unique). */
  name: z.string().trim().min(1).max(200).optional(),
  prompts: z.union([z.object({ file: z.string().min(1) }).strict(), z.object({ dataset: z.union([z.string().min(1), z.number().int()]) }).strict()]),
  policy: PolicySpecSchema,
  sampling: GenerationSamplingSchema,
  n: z.number().int().min(1).max(64),
  recipe: RecipeName,
  preset: z.string().max(100).optional(),
  instructions: z.object({ chosen: z.string().min(1).max(4000), rejected: z.string().min(1).max(4000) }).optional(),
  delta: z.number().min(0).max(1e6).default(0),
  /** Reward model folder. */
  rewardModel: z.string().min(1),
  round: z.number().int().min(1).max(1000).default(1),
  parentDatasetId: z.number().int().optional(),
});
export type GenerateParams = z.input<typeof GenerateParams>;

export interface GenerateProgress {
  phase: 'generate' | 'score' | 'judge' | 'pair';
  done: number;
  total: number;
  tokens: number;
  /** Generated tokens per second in this attempt (null before the first token). */
  tokensPerSecond: number | null;
  message: string;
}

export interface GenerateResult {
  runId: number;
  datasetId: number;
  dataset: string;
  round: number;
  policy: string;
  recipe: string;
  prompts: number;
  candidates: number;
  pairs: number;
  /** Model verdicts of the paper's filter (for best-worst and margin every pair is kept by construction). */
  kept: number;
  dropped: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number | null;
}

export type OpenSource = (spec: PolicySpec, ctx: { rewardModel: RewardModel; signal?: AbortSignal }) => Promise<CandidateSource>;

export interface GenerateOptions {
  openSource: OpenSource;
  signal?: AbortSignal;
  onProgress?: (p: GenerateProgress) => void;
  onWarning?: (message: string) => void;
  /** Resume this run (its prompts are frozen; the ones done are skipped). */
  runId?: number;
  /** Told the run id as soon as the run exists (the job saves it as its checkpoint). */
  onRun?: (runId: number) => void;
  jobId?: string;
  cacheRoot?: string;
}

/** The instructions of the instructed recipe: explicit ones win, else the preset (default TruthfulQA). */
export function recipeInstructions(p: { preset?: string; instructions?: InstructionPair }): InstructionPair {
  if (p.instructions) return p.instructions;
  const id = p.preset ?? 'truthfulqa';
  const preset = presetById(id);
  if (!preset) throw new InputError({ field: 'preset', expected: 'truthfulqa or saferlhf (or explicit instructions)', got: `"${id}"` });
  return preset.instructions;
}

/**
 * A seed per prompt, instruction variant and round: a resumed run draws exactly what an uninterrupted one would, and
 * a next round with the same seed still draws afresh (the same policy twice does not repeat its candidates).
 */
export function promptSeed(seed: number, promptIndex: number, variant: number, round = 1): number {
  return (seed + Math.imul(promptIndex + 1, 0x9e3779b1) + variant * 7919 + Math.imul(round - 1, 0x85ebca6b)) >>> 1;
}

function uniqueName(store: Store, base: string): string {
  if (!store.datasets.byName(base)) return base;
  for (let i = 2; ; i++) if (!store.datasets.byName(`${base}-${i}`)) return `${base}-${i}`;
}

function loadPrompts(store: Store, p: z.output<typeof GenerateParams>): { items: PromptItem[]; source: string; datasetId: number | null; label: string } {
  if ('file' in p.prompts) {
    const items = readPromptsFile(p.prompts.file);
    const base = p.prompts.file.split(/[\\/]/).pop()!.replace(/\.[^.]*$/, '') || 'prompts';
    return { items, source: p.prompts.file, datasetId: null, label: base };
  }
  const d = datasetPrompts(store, p.prompts.dataset);
  return { items: d.prompts, source: `dataset:${d.name}`, datasetId: d.datasetId, label: d.name };
}

function checkRecipe(p: z.output<typeof GenerateParams>): Record<string, unknown> {
  if (p.recipe === 'instructed') return { instructions: recipeInstructions(p), ...(p.preset ? { preset: p.preset } : {}) };
  if (p.n < 2) throw new InputError({ field: 'n', expected: `at least 2 candidates per prompt for the ${p.recipe} recipe`, got: String(p.n) });
  return p.recipe === 'margin' ? { delta: p.delta } : {};
}

/** Runs (or resumes) a generation into a new dataset. */
export async function runGeneration(store: Store, params: GenerateParams, opts: GenerateOptions): Promise<GenerateResult> {
  const p = GenerateParams.parse(params);
  const started = Date.now();
  const model = await readRewardModel(p.rewardModel);
  if (!store.models.rewardModel(model.manifest.id)) registerRewardModel(store, model.dir, model.manifest);
  let run: GenerationRunRecord | undefined = opts.runId !== undefined ? store.generations.get(opts.runId) : undefined;
  const recipeParams = run ? run.recipeParams : checkRecipe(p);
  if (run?.datasetId != null) return summary(store, run, started, { tokens: 0, seconds: 0 });
  if (p.parentDatasetId !== undefined) store.datasets.get(p.parentDatasetId);
  if (!run && p.name && store.datasets.byName(p.name)) throw new InputError({ field: 'name', expected: 'a dataset name not in use', got: `"${p.name}"` });

  const source = await opts.openSource(run?.policySpec ?? p.policy, { rewardModel: model, signal: opts.signal });
  try {
    if (!run) {
      const prompts = loadPrompts(store, p);
      run = store.generations.create(
        {
          name: p.name ?? `${prompts.label}-${p.recipe}-r${p.round}`,
          policyKind: source.description.kind,
          policy: source.description.policy,
          policyLabel: source.description.label,
          policySpec: p.policy,
          sampling: p.sampling,
          n: p.n,
          promptsSource: prompts.source,
          promptsDatasetId: prompts.datasetId,
          recipe: p.recipe,
          recipeParams,
          rewardModelId: model.manifest.id,
          round: p.round,
          parentDatasetId: p.parentDatasetId ?? null,
          jobId: opts.jobId ?? null,
        },
        prompts.items,
      );
    } else {
      if (source.description.policy !== run.policy) {
        throw new InputError({ field: 'policy', expected: `the policy generation run ${run.id} started with (${run.policyLabel}, ${run.policy.slice(0, 24)})`, got: `${source.description.label} (${source.description.policy.slice(0, 24)})` });
      }
      store.generations.setStatus(run.id, 'running');
      if (opts.jobId) store.generations.setJob(run.id, opts.jobId);
    }
    opts.onRun?.(run.id);
    const gen = await generateAll(store, run, source, model, opts);
    await scoreMissing(store, run, model, opts);
    const pairs = distinctPairs(await buildPairs(store, run, source, opts));
    const final = writeDataset(store, run, pairs, model, p.name);
    const result = summary(store, final, started, gen);
    const rate = result.tokensPerSecond !== null ? ` · ${result.tokensPerSecond.toFixed(1)} tokens/s` : '';
    opts.onProgress?.({ phase: 'pair', done: result.prompts, total: result.prompts, tokens: result.tokens, tokensPerSecond: result.tokensPerSecond, message: `${result.prompts}/${result.prompts} prompts · ${result.candidates} candidates · ${result.pairs} pairs (kept ${result.kept}, dropped ${result.dropped})${rate}` });
    return result;
  } catch (err) {
    if (run) store.generations.setStatus(run.id, opts.signal?.aborted ? 'cancelled' : 'failed');
    throw err;
  } finally {
    await source.close();
  }
}

async function generateAll(store: Store, run: GenerationRunRecord, source: CandidateSource, model: RewardModel, opts: GenerateOptions): Promise<{ tokens: number; seconds: number }> {
  const prompts = store.generations.prompts(run.id);
  const instructions = run.recipe === 'instructed' ? (run.recipeParams.instructions as InstructionPair) : null;
  const H = model.manifest.backbone.hiddenSize;
  const t0 = Date.now();
  let tokens = 0;
  let done = prompts.filter((q) => q.done).length;
  const report = () => {
    const secs = (Date.now() - t0) / 1000;
    const rate = tokens > 0 && secs > 0 ? tokens / secs : null;
    opts.onProgress?.({ phase: 'generate', done, total: prompts.length, tokens, tokensPerSecond: rate, message: `${done}/${prompts.length} prompts · ${tokens} tokens${rate !== null ? ` · ${rate.toFixed(1)} tokens/s` : ''}` });
  };
  report();
  for (const q of prompts) {
    if (q.done) continue;
    throwIfAborted(opts.signal);
    const variants: Array<[string, ChatMessage[]]> = instructions
      ? [[VARIANTS.chosen, withInstruction(q.messages, instructions.chosen)], [VARIANTS.rejected, withInstruction(q.messages, instructions.rejected)]]
      : [['', q.messages.map((m) => ({ role: m.role as ChatMessage['role'], content: m.content }))]];
    const rows: NewCandidate[] = [];
    let promptTokens = 0;
    for (const [vi, [variant, messages]] of variants.entries()) {
      const cands = await source.generate({
        ...run.sampling,
        seed: promptSeed(run.sampling.seed, q.index, vi, run.round),
        messages,
        n: run.n,
        signal: opts.signal,
        onTokens: (k) => {
          tokens += k;
          promptTokens += k;
          report();
        },
      });
      // Score while generating: the features captured during decoding replace a second backbone pass.
      const captured = cands.filter((c) => c.captured && c.captured.length === H);
      const s = captured.length ? await scoreRepresentations(model, concat(captured.map((c) => c.captured!)), captured.length) : new Float32Array(0);
      cands.forEach((c, i) => {
        const j = captured.indexOf(c);
        rows.push({ variant, candidateIndex: i, text: c.text, tokens: c.tokens, logprob: c.logprob, finishReason: c.finishReason, score: j >= 0 ? s[j]! : null });
      });
    }
    store.generations.addPromptCandidates(run.id, q.index, rows, promptTokens);
    done++;
    report();
  }
  return { tokens, seconds: (Date.now() - t0) / 1000 };
}

function concat(vs: Float32Array[]): Float32Array {
  const out = new Float32Array(vs.reduce((s, v) => s + v.length, 0));
  let o = 0;
  for (const v of vs) {
    out.set(v, o);
    o += v.length;
  }
  return out;
}

/** Candidates scored per feature-path call: bounds the pooled table in memory; each chunk's scores are stored at once. */
const SCORE_CHUNK = 4096;

/**
 * Scores the candidates that have no score yet through the normal feature path (a source without captured features,
 * or a text the capture could not cover), in chunks whose scores are stored as they finish (resumes skip them).
 */
async function scoreMissing(store: Store, run: GenerationRunRecord, model: RewardModel, opts: GenerateOptions): Promise<void> {
  const todo = store.generations.candidates(run.id).filter((c) => c.score === null);
  if (todo.length === 0) return;
  const prompts = store.generations.prompts(run.id);
  for (let from = 0; from < todo.length; from += SCORE_CHUNK) {
    const chunk = todo.slice(from, from + SCORE_CHUNK);
    const feats = await pooledFor(model, chunk.map((c) => ({ prompt: prompts[c.promptIndex]!.prompt, response: c.text })), {
      signal: opts.signal,
      cacheRoot: opts.cacheRoot,
      skipBadText: true,
      onWarning: opts.onWarning,
      onProgress: (x) => {
        const done = from + Math.round((x.done / Math.max(1, x.total ?? chunk.length)) * chunk.length);
        opts.onProgress?.({ phase: 'score', done, total: todo.length, tokens: 0, tokensPerSecond: null, message: `scoring candidates ${done}/${todo.length}` });
      },
    });
    const bad = new Set(feats.rejected.map((r) => r.index));
    for (const r of feats.rejected) opts.onWarning?.(`candidate ${chunk[r.index]!.id} left unscored: ${r.field ?? 'text'}: expected ${r.expected}`);
    const s = await scoreRepresentations(model, feats.table.z, feats.table.n);
    store.generations.setScores(chunk.flatMap((c, i) => (bad.has(i) ? [] : [{ id: c.id, score: s[i]! }])));
  }
}

async function buildPairs(store: Store, run: GenerationRunRecord, source: CandidateSource, opts: GenerateOptions): Promise<BuiltPair[]> {
  const cands: PairableCandidate[] = store.generations.candidates(run.id);
  const scoredOnly = () => cands.filter((c) => c.score !== null);
  switch (run.recipe) {
    case 'instructed':
      return instructedPairs(cands);
    case 'best-worst':
      return bestWorstPairs(scoredOnly());
    case 'margin':
      return marginPairs(scoredOnly(), Number(run.recipeParams.delta ?? 0));
    case 'self-judged': {
      const prompts = store.generations.prompts(run.id);
      return selfJudgedPairs(cands, (i) => prompts[i]!.prompt, source, {
        signal: opts.signal,
        onJudged: (done, total) => opts.onProgress?.({ phase: 'judge', done, total, tokens: 0, tokensPerSecond: null, message: `self-judging ${done}/${total} pairs` }),
      });
    }
  }
}

/** The generated dataset, its pairs, lineage, scoring run and (paper's rule) verdicts: one transaction. */
function writeDataset(store: Store, run: GenerationRunRecord, pairs: BuiltPair[], model: RewardModel, name?: string): GenerationRunRecord {
  if (pairs.length === 0) {
    throw new InputError({ field: 'recipe', expected: `candidates the ${run.recipe} recipe can pair`, got: `no pairs from ${run.promptsTotal} prompts (try more candidates per prompt, a higher temperature or a smaller delta)` });
  }
  const prompts = store.generations.prompts(run.id);
  return store.transaction(() => {
    const ds = store.datasets.create(name ?? uniqueName(store, run.name), { description: `generated: ${run.recipe}, round ${run.round}, policy ${run.policyLabel}` });
    const scores: Array<{ pairId: number; w: number; l: number }> = [];
    for (const bp of pairs) {
      const q = prompts[bp.promptIndex]!;
      const pairId = store.pairs.insert(ds.id, null, {
        line: null,
        source: run.recipe,
        externalId: `gen${run.id}-${bp.chosen.id}-${bp.rejected.id}`,
        prompt: q.prompt,
        chosen: bp.chosen.text,
        rejected: bp.rejected.text,
        promptMessages: q.messages,
        chosenMessages: [{ role: 'assistant', content: bp.chosen.text }],
        rejectedMessages: [{ role: 'assistant', content: bp.rejected.text }],
        metadata: { generationRunId: run.id, round: run.round, policy: run.policy, recipe: run.recipe, labelBy: bp.labelBy, chosenCandidateId: bp.chosen.id, rejectedCandidateId: bp.rejected.id, ...(bp.judge ? { judge: bp.judge } : {}) },
        contentHash: contentHash(q.prompt, bp.chosen.text, bp.rejected.text),
      });
      if (pairId !== null && bp.chosen.score !== null && bp.rejected.score !== null) scores.push({ pairId, w: bp.chosen.score, l: bp.rejected.score });
    }
    store.generations.linkDataset(run.id, ds.id);
    const sr = store.runs.create({ datasetId: ds.id, rewardModelId: model.manifest.id, params: { modelDir: model.dir, generationRunId: run.id, recipe: run.recipe } });
    store.runs.addScores(sr.id, scores.map((s) => ({ pairId: s.pairId, scoreChosen: s.w, scoreRejected: s.l, pChosen: sigmoid(s.w - s.l) })));
    store.runs.finish(sr.id, 'done');
    // The paper's filter: a pair whose label SparseRM contradicts (s_w < s_l) gets the model verdict "drop".
    store.runs.applyFilter({ datasetId: ds.id, runId: sr.id, rule: 'paper' });
    store.generations.setStatus(run.id, 'done');
    return store.generations.get(run.id);
  });
}

/** `gen`: tokens generated in this attempt and the seconds spent generating them (the tokens/s of the result). */
function summary(store: Store, run: GenerationRunRecord, started: number, gen: { tokens: number; seconds: number }): GenerateResult {
  const datasetId = run.datasetId!;
  const counts = store.datasets.countsByDecision(datasetId);
  const seconds = (Date.now() - started) / 1000;
  return {
    runId: run.id,
    datasetId,
    dataset: store.datasets.get(datasetId).name,
    round: run.round,
    policy: run.policyLabel,
    recipe: run.recipe,
    prompts: run.promptsTotal,
    candidates: store.generations.candidateCount(run.id),
    pairs: Object.values(counts).reduce((a, b) => a + b, 0),
    kept: counts.keep,
    dropped: counts.drop,
    tokens: run.tokens,
    seconds,
    tokensPerSecond: gen.tokens > 0 && gen.seconds > 0 ? gen.tokens / gen.seconds : null,
  };
}

/** Registers the 'generate' job kind: resumable (the run id is the checkpoint; finished prompts are skipped). */
export function registerGenerateJob(runner: JobRunner, openSource: OpenSource): JobRunner {
  runner.define<z.output<typeof GenerateParams>, GenerateResult, { runId: number }>(
    'generate',
    async (p, ctx) =>
      runGeneration(ctx.store, p, {
        openSource,
        signal: ctx.signal,
        jobId: ctx.id,
        runId: ctx.checkpoint?.runId,
        onRun: (runId) => ctx.saveCheckpoint({ runId }),
        onProgress: (x) => ctx.progress(x.done, x.total, x.message),
      }),
    GenerateParams as never,
  );
  return runner;
}

/**
 * Parameters of the next round of a generated dataset: the same prompts, recipe, sampling and reward model, a new
 * policy, round + 1, parent = that dataset.
 */
export function nextRoundParams(store: Store, datasetId: number, policy: PolicySpec, name?: string): z.output<typeof GenerateParams> {
  const lineage = store.generations.lineage(datasetId);
  const ds = store.datasets.get(datasetId);
  if (!lineage || lineage.generationRunId === null) throw new InputError({ field: 'datasetId', expected: 'a dataset made by `sparserm generate` (it has lineage)', got: `"${ds.name}"` });
  const run = store.generations.get(lineage.generationRunId);
  const rm = run.rewardModelId ? store.models.rewardModel(run.rewardModelId) : undefined;
  if (!rm) throw new InputError({ field: 'rewardModel', expected: `the reward model of generation run ${run.id} registered in the store`, got: String(run.rewardModelId) });
  const prompts = run.promptsDatasetId !== null ? { dataset: run.promptsDatasetId } : { file: run.promptsSource };
  const round = run.round + 1;
  return GenerateParams.parse({
    name: name ?? uniqueName(store, `${run.name.replace(/-r\d+$/, '')}-r${round}`),
    prompts,
    policy,
    sampling: run.sampling,
    n: run.n,
    recipe: run.recipe,
    ...(run.recipe === 'instructed' ? { instructions: run.recipeParams.instructions } : {}),
    ...(run.recipe === 'margin' ? { delta: run.recipeParams.delta } : {}),
    rewardModel: rm.folder,
    round,
    parentDatasetId: datasetId,
  });
}

/**
 * The real sources: an OpenAI-compatible endpoint (endpoint-source.ts) or this engine's own decoder on a checkpoint
 * folder (local-source.ts), which captures SparseRM features while decoding when its checkpoint is the reward model's
 * backbone. Imported lazily, so ONNX Runtime loads only when a local policy is used.
 */
export const openPolicySource: OpenSource = async (spec, ctx) => {
  if (spec.kind === 'endpoint') {
    const { endpointSource } = await import('./endpoint-source');
    return endpointSource({ url: spec.url, model: spec.model, retries: 3 });
  }
  const [{ localSource }, { parsePrecision }] = await Promise.all([import('./local-source'), import('../backbone/linear-weights')]);
  const b = ctx.rewardModel.manifest.backbone;
  return localSource({
    checkpoint: spec.checkpoint,
    precision: parsePrecision(spec.precision, 'precision'),
    ep: spec.ep,
    // The capture spec names what the two-pass path would do (precision, max tokens), so captured = second pass.
    capture: { layer: b.layer, backboneHash: b.contentHash, pooling: ctx.rewardModel.manifest.pooling, precision: b.precision, maxTokens: ctx.rewardModel.manifest.maxTokens },
    signal: ctx.signal,
  });
};

