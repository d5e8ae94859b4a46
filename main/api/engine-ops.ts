/**
 * Engine operations the API needs beyond the store: model registration, demo kit, import, train, score,
 * explanations, export, labels. Each maps to the public functions of the engine areas; long ones are jobs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Store, Pair, Score, RewardModel, Backbone, Sae as SaeRow } from '../engine/store';
import type { JobRunner, JobContext } from '../engine/jobs';
import { InputError } from '../engine/errors';
import { architectureFor, loadCheckpoint, ensureBackboneGraph, readModelConfig, llama8bMemoryLine, LLAMA31_8B_L15, GEMMA2_9B_L31, precisionMemoryLine, PRECISIONS, type Precision } from '../engine/backbone';
import { resolveMaxTokens } from '../engine/sparserm/length-policy';
import { loadSae, checkSaeForBackbone } from '../engine/sae';
import { probeGpus, selectExecutionProvider } from '../engine/runtime';
import { registerDataJobs, checkExportTargets, exportRecord, importLabels, toolVersion, FORMATS, type ImportResult, type ExportResult } from '../engine/data';
import { ensureDemoKit, readKit, DEMO_LABEL } from '../engine/demo/kit';
import { ensureDemoDataset, ensureDemoLabels, ensureDemoModels } from '../engine/demo/demo-store';
import { demoKitDir, projectRoot } from '../engine/paths';
import { registerCheckpoint, registerSae } from '../engine/sparserm/registry';
import { precisionCheck } from '../engine/sparserm/precision-check';
import { decisionTrainingSet } from '../engine/sparserm/decision-labels';
import { trainRewardModel, registerRewardModel, evaluateRewardModel, scoreDatasetIntoStore, explainPair, datasetPairs, type PairExplanation, type Progress, type SkippedPair, type ResponseExplanation as EngineExplanation } from '../engine/sparserm/service';
import { RewardModelManifest } from '../engine/sparserm/manifest';
import { wilsonInterval } from '../engine/sparserm/metrics';
import type { AccuracyView, ImportReport, LatentContribution, ModelInfo, OpOutput, OpParsedInput, ResponseExplanation, TrainResult } from './contract';

export interface EngineOps {
  doctor(): Promise<Omit<OpOutput<'doctor'>, 'dbPath'>>;
  listModels(): ModelInfo[];
  addCheckpoint(path: string): Promise<ModelInfo>;
  addSae(path: string): Promise<ModelInfo>;
  checkCompatibility(i: OpParsedInput<'checkCompatibility'>): Promise<OpOutput<'checkCompatibility'>>;
  startBuild(i: OpParsedInput<'buildModel'>): string;
  demoStatus(): Promise<OpOutput<'demoStatus'>>;
  startInstallDemo(): string;
  startImport(i: OpParsedInput<'importDataset'>): string;
  startTrain(i: OpParsedInput<'train'>): string;
  listRuns(datasetId?: number): TrainResult[];
  startScore(i: { datasetId: number; rewardModelId: string; precision?: Precision }): string;
  startPrecisionCheck(i: { datasetId: number; rewardModelId: string; precision: 'f16' | 'int8' | 'int4' | 'f32'; threshold?: number; limit?: number }): string;
  explanation(p: Pair, score: Score, rm: RewardModel): { chosen: LatentContribution[]; rejected: LatentContribution[] } | null;
  explainPair(p: Pair, rm: RewardModel, top: number): Promise<OpOutput<'explainPair'>>;
  exportPreview(i: { datasetId: number; format: 'standard' | 'conversational'; lines: number; include: ExportSelection }): Promise<OpOutput<'exportPreview'>>;
  startExport(i: { datasetId: number; format: 'standard' | 'conversational'; path: string; include: ExportSelection; droppedPath?: string; overwrite?: boolean; allowEmpty?: boolean; onePerGroup?: boolean }): string;
  importLabels(i: OpParsedInput<'importLabels'>): Promise<OpOutput<'importLabels'>>;
  /** How a finished job's stored result is shown to the UI (e.g. an import's result as an ImportReport). */
  resultView(kind: string, result: unknown): unknown;
}

export interface ExportSelection {
  uncertain: boolean;
  undecided: boolean;
}

export interface EngineContext {
  store: Store;
  runner: JobRunner;
  partials: Map<string, unknown>;
}

const underDemoKit = (p: string | null) => !!p && (path.resolve(p) + path.sep).startsWith(path.resolve(demoKitDir) + path.sep);
const isDemoMeta = (m: Record<string, unknown>, p: string | null = null) => m.demo === true || underDemoKit(p);

/**
 * Registration merges rows of the same checkpoint folder / SAE (engine/sparserm/registry.ts); a database written
 * before that may still hold two. Show one entry per path: the one with the richest metadata.
 */
function dedupeByPath<T extends { path: string | null; metadata: Record<string, unknown> }>(rows: T[]): T[] {
  const byPath = new Map<string, T>();
  for (const r of rows) {
    const key = r.path ? path.resolve(r.path) : `#${byPath.size}`;
    const prev = byPath.get(key);
    if (!prev || Object.keys(r.metadata).length > Object.keys(prev.metadata).length) byPath.set(key, r);
  }
  return [...byPath.values()];
}
const scalar = (v: unknown): string | number | boolean | null => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : v === null || v === undefined ? null : JSON.stringify(v));

function backboneInfo(b: Backbone): ModelInfo {
  const m = b.metadata;
  return {
    id: b.id,
    kind: 'checkpoint',
    name: b.name,
    path: b.path ?? '',
    isDemo: isDemoMeta(m, b.path),
    details: { family: architectureFor(b.architecture ?? '')?.label ?? null, architecture: b.architecture, layers: scalar(m.numLayers), hidden: scalar(m.hiddenSize), ...memoryDetails(b.path) },
  };
}
/** Models screen: what each precision needs for all blocks of a checkpoint, and what fits this machine (issue 13). */
function memoryDetails(dir: string | null | undefined): Record<string, string> {
  try {
    const c = readModelConfig(dir ?? '');
    const line = precisionMemoryLine(c, c.numLayers - 1);
    return { [`memory (all ${c.numLayers} blocks)`]: line.detail };
  } catch {
    return {};
  }
}
function saeInfo(s: SaeRow): ModelInfo {
  const m = s.metadata;
  return {
    id: s.id,
    kind: 'sae',
    name: s.name,
    path: s.path ?? '',
    isDemo: isDemoMeta(m, s.path),
    details: { layer: s.layer, dSae: s.dSae, dIn: scalar(m.dIn), format: scalar(m.format), llamaScope: m.llamaScope === true },
  };
}
function rewardModelInfo(r: RewardModel): ModelInfo {
  return {
    id: r.id,
    kind: 'reward-model',
    name: r.name,
    path: r.folder,
    isDemo: r.demo,
    details: { layer: r.layer, dataset: scalar(r.metrics.datasetName) },
  };
}

/** The train job's evaluation as kept in reward_models.metrics_json (older rows lack n / ties / ci95 / overlap). */
interface StoredEval {
  n?: number;
  accuracy?: number;
  correct?: number;
  ties?: number;
  ci95?: [number, number];
  auc?: number;
  evaluatedOn?: string;
  overlap?: { prompts: number | null; pairs: number | null };
  baselines?: Array<{ name: string; accuracy: number; n?: number; correct?: number; ties?: number; ci95?: [number, number]; auc?: number; params?: number; trainN?: number }>;
}

/** An accuracy for the UI with its n, ties and 95 % Wilson interval (recomputed from accuracy·n for older rows). */
function accuracyView(accuracy: number | null, n: number | null, ties?: number, ci95?: [number, number]): AccuracyView {
  const a = accuracy !== null && Number.isFinite(accuracy) ? accuracy : null;
  const ci = ci95 && ci95.every(Number.isFinite) ? ci95 : a !== null && n ? wilsonInterval(Math.round(a * n), n) : null;
  return { accuracy: a, n, ties: ties ?? null, ci95: ci };
}

const BuildParams = z.object({ checkpointId: z.string(), layer: z.number().int().nonnegative(), precision: z.enum(PRECISIONS).optional() });
const TrainParams = z.object({ datasetId: z.number().int(), checkpointId: z.string(), saeId: z.string(), layer: z.number().int().nonnegative(), k: z.number().int().positive(), loss: z.enum(['margin', 'bt']), maxTokens: z.number().int().positive().optional(), saeEncoding: z.enum(['saelens', 'authors']).optional(), fromDecisions: z.boolean().optional(), undecided: z.enum(['as-labelled', 'exclude']).optional(), precision: z.enum(PRECISIONS).optional() });
const ScoreParams = z.object({ datasetId: z.number().int(), rewardModelId: z.string(), precision: z.enum(PRECISIONS).optional() });
const PrecisionCheckParams = z.object({ datasetId: z.number().int(), rewardModelId: z.string(), precision: z.enum(['f16', 'int8', 'int4', 'f32']), threshold: z.number().optional(), limit: z.number().int().positive().optional() });

export function createEngineOps(ctx: EngineContext): EngineOps {
  const { store, runner } = ctx;

  const requireBackbone = (id: string) => store.models.backbone(id) ?? (() => { throw new InputError({ field: 'checkpointId', expected: 'a registered checkpoint (add it on the Models screen)', got: id }); })();
  const requireSae = (id: string) => store.models.sae(id) ?? (() => { throw new InputError({ field: 'saeId', expected: 'a registered SAE (add it on the Models screen)', got: id }); })();

  function importReport(r: ImportResult): ImportReport {
    return {
      datasetId: String(r.datasetId),
      format: r.format,
      imported: r.imported,
      skipped: r.skippedTotal,
      duplicates: r.duplicates,
      problems: [...r.skipped.map((s) => ({ line: s.line, message: s.reason })), ...r.notes.map((n) => ({ line: n.line, message: n.note }))].slice(0, 1000),
    };
  }
  // 'import' and 'export' jobs belong to the data area; the API only starts them and presents their results.
  registerDataJobs(runner);
  runner.define(
    'build',
    async (params: z.infer<typeof BuildParams>, job) => {
      const b = requireBackbone(params.checkpointId);
      const ck = await loadCheckpoint(b.path ?? '');
      try {
        const g = await ensureBackboneGraph(ck, { layer: params.layer, precision: params.precision, signal: job.signal, onProgress: (e) => job.progress(e.done, e.total, e.phase === 'hash' ? 'hashing weights' : 'building graph') });
        return { graphPath: g.graphPath, reused: g.reused };
      } finally {
        ck.close();
      }
    },
    BuildParams,
  );
  // The same dataset and Models rows as `sparserm demo` (demo module): "demo-truthfulqa", reused, never duplicated.
  runner.define('demo', async (_p: unknown, job) => {
    const kit = await ensureDemoKit({ signal: job.signal, onProgress: (p) => job.progress(p.done, p.total, p.phase) });
    await ensureDemoLabels(store, kit);
    const { checkpoint, sae } = await ensureDemoModels(store, kit);
    const dataset = await ensureDemoDataset(store, kit.dataset, {
      signal: job.signal,
      onProgress: (x) => job.progress(x.bytesRead, x.totalBytes, `${x.imported.toLocaleString('en')} pairs`),
    });
    return { checkpointId: checkpoint.id, saeId: sae.id, layer: kit.layer, datasetId: String(dataset.datasetId), dataset, label: DEMO_LABEL };
  });

  // ---- SparseRM: train, score, explain ----------------------------------------------------------------------
  const manifests = new Map<string, RewardModelManifest | null>();
  /** The model folder's manifest (cached; null when the folder is gone or unreadable). */
  function manifestOf(rm: RewardModel): RewardModelManifest | null {
    if (!manifests.has(rm.folder)) {
      try {
        manifests.set(rm.folder, RewardModelManifest.parse(JSON.parse(fs.readFileSync(path.join(rm.folder, 'manifest.json'), 'utf8'))));
      } catch {
        manifests.set(rm.folder, null);
      }
    }
    return manifests.get(rm.folder)!;
  }
  function labelsFor(rm: RewardModel, indices: number[]): Map<number, string> {
    const m = manifestOf(rm);
    // The model's own label set, else the one later attached to its SAE (labels imported after training).
    const saeRow = m ? store.models.saes().find((x) => x.hash === m.sae.hash && x.metadata.neuronpedia) : undefined;
    const set = m?.sae.labels ?? (saeRow?.metadata.neuronpedia as { modelId: string; saeId: string } | undefined);
    return set ? store.labels.best(set.modelId, set.saeId, indices) : new Map();
  }
  const explainCache = new Map<string, OpOutput<'explainPair'>>();

  function toExplanation(e: EngineExplanation, labels: Map<number, string>): ResponseExplanation {
    const start = e.responseSpan[0];
    return {
      score: e.score,
      bias: e.bias,
      tokens: e.tokens,
      pooledSpan: e.pooledSpan,
      tokenContributions: e.tokenContributions,
      ...(e.saeEncoding ? { saeEncoding: e.saeEncoding } : {}),
      latents: e.contributions.map((c) => {
        const perToken = new Array<number>(e.tokens.length).fill(0);
        for (const t of c.tokens) if (t.index - start >= 0 && t.index - start < perToken.length) perToken[t.index - start] = t.activation;
        return {
          latent: c.latent,
          label: c.label ?? labels.get(c.latent) ?? null,
          side: c.side,
          contribution: c.contribution,
          activation: c.activation,
          projection: c.projection,
          trainingMean: c.trainingMean,
          trainingStd: c.trainingStd,
          weight: c.weight,
          tokenContributions: c.tokenContributions,
          firing: c.firing,
          perToken,
        };
      }),
    };
  }

  function trainView(rm: RewardModel): TrainResult | null {
    const m = manifestOf(rm);
    if (!m) return null;
    let curve: { epoch: number; trainLoss: number; valLoss?: number; valAccuracy?: number }[] = [];
    try {
      curve = JSON.parse(fs.readFileSync(path.join(rm.folder, 'curve.json'), 'utf8'));
    } catch {
      // a model folder without its curve still shows its metrics
    }
    const ev = rm.metrics.eval as StoredEval | undefined;
    const labels = labelsFor(rm, m.selected.map((s) => s.index));
    return {
      runId: rm.id,
      rewardModelId: rm.id,
      isDemo: rm.demo,
      layer: m.backbone.layer,
      k: m.k,
      loss: m.training.loss,
      curve: curve.map((c) => ({ epoch: c.epoch, trainLoss: c.trainLoss, valLoss: c.valLoss ?? null, valAccuracy: c.valAccuracy ?? null })),
      heldOutAccuracy: ev?.accuracy ?? m.metrics.test.accuracy ?? null,
      heldOut: ev
        ? { ...accuracyView(ev.accuracy ?? null, ev.n ?? null, ev.ties, ev.ci95), overlap: ev.overlap?.pairs ?? null }
        : { ...accuracyView(m.metrics.test.accuracy, m.metrics.test.n), overlap: null },
      baselines: (ev?.baselines ?? []).filter((b) => Number.isFinite(b.accuracy)).map((b) => ({ name: b.name, ...accuracyView(b.accuracy, b.n ?? null, b.ties, b.ci95), accuracy: b.accuracy })),
      selected: m.selected.map((s) => ({ latent: s.index, sign: s.side, label: labels.get(s.index) ?? null, muChosen: s.muW, muRejected: s.muL })),
    };
  }

  /** Pairs a job left out (text the tokenizer refuses), for its result: the first 1000 and how many in all. */
  const skippedView = (skipped: SkippedPair[], pairIds?: number[]) => ({
    skipped: skipped.slice(0, 1000).map((x) => {
      const id = x.pairId ?? pairIds?.[x.index];
      return { pairId: id !== undefined ? String(id) : null, index: x.index, reason: x.reason };
    }),
    skippedTotal: skipped.length,
  });
  // ORT runs (backbone, SAE, head) go to worker threads: the Node binding runs inference synchronously, and this
  // process must keep answering IPC/HTTP (listing pairs, job snapshots) while a job extracts features or scores.
  const offThread = { worker: true } as const;
  const phaseText: Record<string, string> = { tokenize: 'tokenizing', backbone: 'running the backbone', features: 'extracting features', sae: 'SAE latents', train: 'training the head', store: 'saving scores', baselines: 'baselines' };
  const reporter = (job: JobContext, partialCurve?: TrainResult['curve']) => (p: Progress) => {
    // The live curve goes into the job's partial result BEFORE the progress event, so a snapshot taken on that
    // event (getJob, the UI's poll) already shows this epoch.
    if (partialCurve && p.phase === 'train' && p.stats) {
      const st = p.stats;
      partialCurve.push({ epoch: st.epoch, trainLoss: st.trainLoss, valLoss: st.valLoss ?? null, valAccuracy: st.valAccuracy ?? null });
      ctx.partials.set(job.id, { curve: [...partialCurve] });
    }
    job.progress(p.done, p.total, `${phaseText[p.phase] ?? p.phase}: ${p.done}/${p.total}`);
  };

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
    async doctor() {
      const probe = await probeGpus('auto');
      const choice = selectExecutionProvider('auto', probe);
      const kit = readKit();
      return {
        version: JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version as string,
        node: process.versions.node,
        platform: `${process.platform}-${process.arch}`,
        ep: choice.ep,
        epReason: choice.reason,
        checks: [
          { name: 'ONNX Runtime CUDA provider', ok: !!probe.providerLibrary, detail: probe.providerLibrary ?? 'not installed (CPU only)' },
          { name: 'NVIDIA GPU', ok: !!probe.gpu, detail: probe.gpu ?? 'none visible' },
          { name: 'WebGPU adapter', ok: !!probe.webgpuAvailable, detail: probe.webgpuAvailable ? 'available (--ep webgpu)' : (probe.webgpuError ?? (probe.cudaAvailable ? 'not probed (CUDA is used)' : 'not available')) },
          { name: 'demo kit', ok: !!kit, detail: kit ? `${kit.dir} (${DEMO_LABEL})` : 'not generated yet' },
          { name: `memory for ${LLAMA31_8B_L15.label}`, ...llama8bMemoryLine() },
          { name: `memory for ${GEMMA2_9B_L31.label}`, ok: precisionMemoryLine(GEMMA2_9B_L31.shape, GEMMA2_9B_L31.layer).ok, detail: precisionMemoryLine(GEMMA2_9B_L31.shape, GEMMA2_9B_L31.layer).detail },
          // Every registered checkpoint, all its blocks (the most a layer choice can need), per precision.
          ...dedupeByPath(store.models.backbones()).flatMap((b) => {
            try {
              const c = readModelConfig(b.path ?? '');
              const line = precisionMemoryLine(c, c.numLayers - 1);
              return [{ name: `memory for ${b.name} (all ${c.numLayers} blocks)`, ok: line.ok, detail: line.detail }];
            } catch {
              return [];
            }
          }),
        ],
      };
    },
    listModels() {
      const rms = store.models.rewardModels().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      // Held-out numbers from the same view as listRuns (the manifest, or the app's stored evaluation), whichever
      // front end trained the model.
      return [...dedupeByPath(store.models.backbones()).map(backboneInfo), ...dedupeByPath(store.models.saes()).map(saeInfo), ...rms.map((r) => { const info = rewardModelInfo(r); return { ...info, details: { ...info.details, precision: manifestOf(r)?.backbone.precision ?? 'f32' }, heldOut: trainView(r)?.heldOut ?? null }; })];
    },
    async addCheckpoint(p) {
      return backboneInfo(await registerCheckpoint(store, p));
    },
    async addSae(p) {
      return saeInfo(await registerSae(store, p));
    },
    async checkCompatibility({ checkpointId, saeId, layer }) {
      const b = requireBackbone(checkpointId);
      const s = requireSae(saeId);
      const ck = await loadCheckpoint(b.path ?? '');
      try {
        const sae = await loadSae(s.path ?? '');
        const L = layer ?? sae.hookLayer ?? s.layer ?? null;
        const problems: string[] = [];
        if (L === null) return { ok: false, layer: null, problems: ['the SAE does not say which layer it was trained on: choose a layer'] };
        if (L >= ck.config.numLayers) problems.push(`layer ${L} does not exist: the checkpoint has ${ck.config.numLayers} layers (0–${ck.config.numLayers - 1})`);
        try {
          problems.push(...checkSaeForBackbone(sae, { checkpoint: ck.dir, hiddenSize: ck.config.hiddenSize, layer: L }).warnings.map((w) => `warning: ${w}`));
          ck.validateThrough(Math.min(L, ck.config.numLayers - 1));
        } catch (err) {
          problems.push(err instanceof Error ? err.message : String(err));
        }
        return { ok: problems.every((p) => p.startsWith('warning:')), layer: L, problems };
      } finally {
        ck.close();
      }
    },
    startBuild(i) {
      requireBackbone(i.checkpointId);
      return runner.start('build', i).id;
    },
    async demoStatus() {
      const kit = readKit();
      return { installed: !!kit, path: kit?.dir ?? demoKitDir, datasetPath: kit?.dataset ?? null };
    },
    startInstallDemo() {
      return runner.start('demo', {}).id;
    },
    startImport(i) {
      if (!fs.existsSync(i.path)) throw new InputError({ file: i.path, expected: 'an existing file (a path on the machine running SparseRM Studio)' });
      const format = i.format && i.format !== 'auto' ? i.format : 'auto';
      if (format !== 'auto' && !(FORMATS as readonly string[]).includes(format)) throw new InputError({ field: 'format', expected: `auto or one of ${FORMATS.join(', ')}`, got: format });
      const dataset = i.name?.trim() || path.basename(i.path).replace(/(\.jsonl?|\.json|\.gz)+$/i, '');
      return runner.start('import', { file: path.resolve(i.path), dataset, format, ...(i.maxLineBytes ? { maxLineBytes: i.maxLineBytes } : {}) }).id;
    },
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
    startPrecisionCheck(i) {
      store.models.requireRewardModel(i.rewardModelId);
      return runner.start('precisionCheck', i).id;
    },
    explanation(_p, score, rm) {
      const e = score.explanation as { top?: { latent: number; chosen: number; rejected: number }[] } | null;
      if (!e?.top?.length) return null;
      const labels = labelsFor(rm, e.top.map((t) => t.latent));
      const side = (k: 'chosen' | 'rejected'): LatentContribution[] =>
        e.top!.map((t) => ({ latent: t.latent, label: labels.get(t.latent) ?? null, contribution: t[k], activation: null })).sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
      return { chosen: side('chosen'), rejected: side('rejected') };
    },
    async explainPair(p, rm, top) {
      const key = `${rm.id}:${p.id}:${top}`;
      const hit = explainCache.get(key);
      if (hit) return hit;
      const m = manifestOf(rm);
      const labels = m ? labelsFor(rm, m.selected.map((s) => s.index)) : new Map<number, string>();
      const ex: PairExplanation = await explainPair({ modelDir: rm.folder, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, top, labels, ...offThread });
      const marginDecomposition = { ...ex.marginDecomposition, latents: ex.marginDecomposition.latents.map((l) => ({ ...l, label: l.label ?? labels.get(l.latent) ?? null })) };
      const out = { chosen: toExplanation(ex.chosen, labels), rejected: toExplanation(ex.rejected, labels), rewardModelId: rm.id, margin: ex.margin, marginDecomposition, why: ex.why };
      explainCache.set(key, out);
      if (explainCache.size > 64) explainCache.delete(explainCache.keys().next().value!);
      return out;
    },
    async exportPreview({ datasetId, format, lines, include }) {
      const ds = store.datasets.get(datasetId);
      const sum = store.datasets.summary(datasetId);
      const selection: ('keep' | 'swap' | 'uncertain' | 'undecided')[] = ['keep', 'swap', ...(include.uncertain ? ['uncertain' as const] : []), ...(include.undecided ? ['undecided' as const] : [])];
      const out: string[] = [];
      for (const p of store.pairs.iterate({ datasetId, effective: selection }, { batch: lines })) {
        out.push(JSON.stringify(exportRecord(p, format, p.effective === 'swap')));
        if (out.length >= lines) break;
      }
      const exported = selection.reduce((n, k) => n + sum.counts[k], 0);
      const filter = store.runs.currentFilter(datasetId);
      const scored = filter ? store.runs.scoreCount(filter.runId) : 0;
      const run = filter ? store.runs.get(filter.runId) : undefined;
      const rm = run ? store.models.rewardModel(run.rewardModelId) : undefined;
      return {
        datasetName: ds.name,
        lines: out,
        counts: {
          total: sum.pairs,
          kept: exported,
          // Only pairs decided or judged drop: uncertain / undecided / unscored pairs are reported as such.
          dropped: sum.counts.drop,
          swapped: sum.counts.swap,
          uncertain: sum.counts.uncertain,
          undecided: sum.counts.undecided,
          unscored: Math.max(0, sum.pairs - scored),
          overrides: store.pairs.count({ datasetId, disagrees: true }),
        },
        // The same facts the sidecar will hold (written by the export job with the file's hash and final counts).
        provenance: {
          tool: { name: 'SparseRM Studio', version: toolVersion() },
          dataset: { id: ds.id, name: ds.name, demo: ds.demo },
          sources: store.datasets.imports(datasetId).map((i) => ({ file: i.file, sha256: i.fileSha256, format: i.format, imported: i.imported })),
          reward_model: rm ? { id: rm.id, name: rm.name, manifest_hash: rm.manifestHash, layer: rm.layer, demo: rm.demo, ...(rm.demo ? { label: DEMO_LABEL } : {}) } : null,
          rule: filter ? { name: filter.rule, threshold: filter.threshold, band: filter.band } : null,
          selection,
          format,
          curator_decisions: sum.humanDecided,
        },
      };
    },
    startExport({ datasetId, format, path: out, include, droppedPath, overwrite, allowEmpty, onePerGroup }) {
      const dir = path.dirname(path.resolve(out));
      if (!fs.existsSync(dir)) throw new InputError({ file: out, field: 'path', expected: 'an output path in an existing folder' });
      if (!allowEmpty) {
        const sum = store.datasets.summary(datasetId);
        const n = sum.counts.keep + sum.counts.swap + (include.uncertain ? sum.counts.uncertain : 0) + (include.undecided ? sum.counts.undecided : 0);
        // A 0-pair export is almost always a wrong dataset or selection: refused unless asked for explicitly.
        if (n === 0) throw new InputError({ field: 'include', expected: `at least one pair to export (dataset "${store.datasets.get(datasetId).name}" has ${sum.pairs} pairs, none kept or swapped by this selection); include uncertain/undecided pairs or force an empty export`, got: '0 pairs' });
      }
      // Refused now, before a job exists: the database as output, the same file twice, an existing file (kind 'exists').
      checkExportTargets(store, { out, dropped: droppedPath, overwrite });
      return runner.start('export', {
        overwrite: !!overwrite,
        dataset: datasetId,
        out: path.resolve(out),
        format,
        includeUncertain: include.uncertain,
        includeUndecided: include.undecided,
        ...(droppedPath ? { dropped: path.resolve(droppedPath) } : {}),
        ...(onePerGroup ? { onePerGroup: true } : {}),
      }).id;
    },
    async importLabels({ path: file, saeId }) {
      const sae = saeId ? requireSae(saeId) : undefined;
      const np = sae?.metadata.neuronpedia as { modelId?: string; saeId?: string } | undefined;
      const r = await importLabels(store, file, { ...(np?.modelId ? { model: np.modelId } : {}), ...(np?.saeId ? { sae: np.saeId } : {}) });
      // Remember which label set describes this SAE, so models trained on it (and their explanations) show labels.
      if (sae && !np && r.sets.length === 1) {
        store.models.upsertSae({ ...sae, metadata: { ...sae.metadata, neuronpedia: { modelId: r.sets[0].modelId, saeId: r.sets[0].saeId } } });
      }
      return { imported: r.imported };
    },
    resultView(kind, result) {
      if (result === null || result === undefined) return null;
      if (kind === 'import') return importReport(result as ImportResult);
      if (kind === 'export') {
        const r = result as ExportResult;
        return { path: r.out, provenance: r.provenance, sha256: r.sha256, counts: r.counts };
      }
      return result;
    },
  };
}
