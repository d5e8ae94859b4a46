/**
 * Engine operations the API needs beyond the store: model registration, demo kit, import, train, score,
 * explanations, export, labels. Each maps to the public functions of the engine areas; long ones are jobs.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Store, Pair, Score, RewardModel, Backbone, Sae as SaeRow } from '../engine/store';
import type { JobRunner, JobContext } from '../engine/jobs';
import { InputError } from '../engine/errors';
import { loadCheckpoint, ensureBackboneGraph } from '../engine/backbone';
import { loadSae, checkSaeForBackbone } from '../engine/sae';
import { probeCuda, selectExecutionProvider } from '../engine/runtime';
import { importFile } from '../engine/data/import';
import { FORMATS, type FormatName } from '../engine/data/formats';
import { ensureDemoKit, readKit, DEMO_LABEL } from '../engine/demo/kit';
import { demoKitDir, projectRoot } from '../engine/paths';
import type { ImportReport, LatentContribution, ModelInfo, OpOutput, OpParsedInput, TokenActivations, TrainResult } from './contract';

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
  startScore(i: { datasetId: number; rewardModelId: string }): string;
  explanation(p: Pair, score: Score, rm: RewardModel): { chosen: LatentContribution[]; rejected: LatentContribution[] } | null;
  latentTokens(p: Pair, side: 'chosen' | 'rejected', latent: number): Promise<TokenActivations>;
  exportPreview(i: { datasetId: number; format: 'standard' | 'conversational'; lines: number }): Promise<OpOutput<'exportPreview'>>;
  startExport(i: { datasetId: number; format: 'standard' | 'conversational'; path: string }): string;
  importLabels(i: OpParsedInput<'importLabels'>): Promise<OpOutput<'importLabels'>>;
}

export interface EngineContext {
  store: Store;
  runner: JobRunner;
  partials: Map<string, unknown>;
}

const pathId = (prefix: string, p: string) => `${prefix}-${crypto.createHash('sha256').update(path.resolve(p)).digest('hex').slice(0, 12)}`;
const isDemoMeta = (m: Record<string, unknown>) => m.demo === true;
const scalar = (v: unknown): string | number | boolean | null => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : v === null || v === undefined ? null : JSON.stringify(v));

function backboneInfo(b: Backbone): ModelInfo {
  const m = b.metadata;
  return {
    id: b.id,
    kind: 'checkpoint',
    name: isDemoMeta(m) ? `${b.name} · ${DEMO_LABEL}` : b.name,
    path: b.path ?? '',
    isDemo: isDemoMeta(m),
    details: { architecture: b.architecture, layers: scalar(m.numLayers), hidden: scalar(m.hiddenSize) },
  };
}
function saeInfo(s: SaeRow): ModelInfo {
  const m = s.metadata;
  return {
    id: s.id,
    kind: 'sae',
    name: isDemoMeta(m) ? `${s.name} · ${DEMO_LABEL}` : s.name,
    path: s.path ?? '',
    isDemo: isDemoMeta(m),
    details: { layer: s.layer, dSae: s.dSae, dIn: scalar(m.dIn), format: scalar(m.format) },
  };
}
function rewardModelInfo(r: RewardModel): ModelInfo {
  return {
    id: r.id,
    kind: 'reward-model',
    name: r.demo ? `${r.name} · ${DEMO_LABEL}` : r.name,
    path: r.folder,
    isDemo: r.demo,
    details: { layer: r.layer, backbone: r.backboneId, sae: r.saeId, accuracy: scalar(r.metrics.accuracy ?? r.metrics.testAccuracy) },
  };
}

const ImportParams = z.object({ path: z.string(), format: z.string().optional(), name: z.string().optional() });
const BuildParams = z.object({ checkpointId: z.string(), layer: z.number().int().nonnegative() });

export function createEngineOps(ctx: EngineContext): EngineOps {
  const { store, runner } = ctx;

  async function registerCheckpoint(dir: string, opts: { id?: string; demo?: boolean; name?: string } = {}): Promise<Backbone> {
    const ck = await loadCheckpoint(dir);
    try {
      return store.models.upsertBackbone({
        id: opts.id ?? pathId('ckpt', dir),
        name: opts.name ?? path.basename(path.resolve(dir)),
        path: path.resolve(dir),
        architecture: ck.config.hfArchitecture,
        metadata: { hiddenSize: ck.config.hiddenSize, numLayers: ck.config.numLayers, vocabSize: ck.config.vocabSize, demo: opts.demo ?? false },
      });
    } finally {
      ck.close();
    }
  }
  async function registerSae(p: string, opts: { id?: string; demo?: boolean; name?: string; neuronpedia?: { modelId: string; saeId: string } } = {}): Promise<SaeRow> {
    const sae = await loadSae(p);
    return store.models.upsertSae({
      id: opts.id ?? sae.id,
      name: opts.name ?? sae.id,
      path: path.resolve(p),
      hash: sae.hash,
      layer: sae.hookLayer ?? null,
      dSae: sae.dSae,
      metadata: { dIn: sae.dIn, format: sae.format, demo: opts.demo ?? false, ...(opts.neuronpedia ? { neuronpedia: opts.neuronpedia } : {}) },
    });
  }
  const requireBackbone = (id: string) => store.models.backbone(id) ?? (() => { throw new InputError({ field: 'checkpointId', expected: 'a registered checkpoint (add it on the Models screen)', got: id }); })();
  const requireSae = (id: string) => store.models.sae(id) ?? (() => { throw new InputError({ field: 'saeId', expected: 'a registered SAE (add it on the Models screen)', got: id }); })();

  function importReport(r: Awaited<ReturnType<typeof importFile>>): ImportReport {
    return {
      datasetId: String(r.datasetId),
      format: r.format,
      imported: r.imported,
      skipped: r.skippedTotal,
      duplicates: r.duplicates,
      problems: [...r.skipped.map((s) => ({ line: s.line, message: s.reason })), ...r.notes.map((n) => ({ line: n.line, message: n.note }))].slice(0, 1000),
    };
  }
  async function runImport(p: z.infer<typeof ImportParams>, job: JobContext, demo = false): Promise<ImportReport> {
    const format = p.format && p.format !== 'auto' ? p.format : 'auto';
    if (format !== 'auto' && !(FORMATS as readonly string[]).includes(format)) {
      throw new InputError({ field: 'format', expected: `auto or one of ${FORMATS.join(', ')}`, got: format });
    }
    const name = p.name?.trim() || path.basename(p.path).replace(/\.(jsonl?|gz)+$/i, '');
    if (demo && !store.datasets.byName(name)) store.datasets.create(name, { demo: true, description: `TruthfulQA pairs of the demo kit (${DEMO_LABEL})` });
    const r = await importFile(store, p.path, {
      dataset: name,
      format: format as FormatName | 'auto',
      signal: job.signal,
      onProgress: (x) => job.progress(x.bytesRead, x.totalBytes, `${x.imported.toLocaleString('en')} pairs`),
    });
    return importReport(r);
  }

  runner.define('import', (params: z.infer<typeof ImportParams>, job) => runImport(params, job), ImportParams);
  runner.define(
    'build',
    async (params: z.infer<typeof BuildParams>, job) => {
      const b = requireBackbone(params.checkpointId);
      const ck = await loadCheckpoint(b.path ?? '');
      try {
        const g = await ensureBackboneGraph(ck, { layer: params.layer, signal: job.signal, onProgress: (e) => job.progress(e.done, e.total, e.phase === 'hash' ? 'hashing weights' : 'building graph') });
        return { graphPath: g.graphPath, reused: g.reused };
      } finally {
        ck.close();
      }
    },
    BuildParams,
  );
  runner.define('demo', async (_p: unknown, job) => {
    const kit = await ensureDemoKit({ signal: job.signal, onProgress: (p) => job.progress(p.done, p.total, p.phase) });
    const ck = await registerCheckpoint(kit.checkpoint, { id: kit.modelId, demo: true, name: 'demo Gemma-2 (tiny)' });
    const sae = await registerSae(kit.sae, { id: kit.saeId, demo: true, name: `demo SAE L${kit.layer} (${kit.dSae} latents)`, neuronpedia: { modelId: kit.modelId, saeId: kit.saeId } });
    store.models.upsertSae({ ...sae, layer: kit.layer, metadata: sae.metadata });
    let datasetId: number | undefined = store.datasets.list().find((d) => d.demo)?.id;
    let report: ImportReport | null = null;
    if (datasetId === undefined) {
      report = await runImport({ path: kit.dataset, name: 'TruthfulQA (demo kit)', format: 'standard' }, job, true);
      datasetId = Number(report.datasetId);
    }
    return { checkpointId: ck.id, saeId: sae.id, layer: kit.layer, datasetId: String(datasetId), import: report, label: DEMO_LABEL };
  });

  const notYet = (what: string): never => {
    throw new Error(`${what} is not available in this build yet (the SparseRM service is not wired)`);
  };

  return {
    async doctor() {
      const probe = probeCuda();
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
          { name: 'demo kit', ok: !!kit, detail: kit ? `${kit.dir} (${DEMO_LABEL})` : 'not generated yet' },
        ],
      };
    },
    listModels() {
      return [...store.models.backbones().map(backboneInfo), ...store.models.saes().map(saeInfo), ...store.models.rewardModels().map(rewardModelInfo)];
    },
    async addCheckpoint(p) {
      return backboneInfo(await registerCheckpoint(p));
    },
    async addSae(p) {
      return saeInfo(await registerSae(p));
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
      return runner.start('import', i).id;
    },
    startTrain: () => notYet('training'),
    listRuns: () => [],
    startScore: () => notYet('scoring'),
    explanation: () => null,
    latentTokens: async () => notYet('token activations'),
    exportPreview: async () => notYet('export'),
    startExport: () => notYet('export'),
    importLabels: async () => notYet('label import'),
  };
}
