import fs from 'node:fs';
import path from 'node:path';

import { loadCheckpoint } from '../backbone';
import { exportDataset, type ExportResult } from '../data';
import { loadSae } from '../sae';
import { throwIfAborted } from '../errors';
import type { EpRequest } from '../runtime/ort';
import { dataHome, databasePath, rewardModelsHome } from '../paths';
import { datasetPairs, evaluateRewardModel, readRewardModel, registerRewardModel, scoreDatasetIntoStore, trainRewardModel, type Progress } from '../sparserm/service';
import { pairsHash } from '../sparserm/pairs-file';
import { wilsonInterval } from '../sparserm/metrics';
import type { RewardModelManifest } from '../sparserm/manifest';
import { openStore, type Store, type VerdictCounts } from '../store';
import { DEMO_DATASET, ensureDemoDataset, ensureDemoLabels, ensureDemoModels, type DemoDatasetResult } from './demo-store';
import { ensureDemoKit, type DemoKit, type DemoProgress } from './kit';
import { runDemoGeneration, type DemoGenerationResult } from './generation-demo';

/**
 * The main job on the demo kit in one call — what `sparserm demo` runs and what the desktop app's first-run
 * "demo kit in one click" calls:
 *   ensure the kit → import the TruthfulQA pairs into the dataset "demo-truthfulqa" (reused, never duplicated) →
 *   train a SparseRM reward model (split by prompt; held-out accuracy on the test prompts) → score every pair into a
 *   scoring run → apply the paper's rule (drop where s_chosen < s_rejected) → export the kept pairs as TRL JSONL
 *   with the provenance sidecar (and the left-out pairs beside it, for audit).
 * Re-running is idempotent: the same dataset, reward model and scoring run are reused when nothing changed (the
 * curator's decisions on the demo dataset survive), and the export is rewritten atomically.
 * Everything it does goes through the public engine functions (store, data, sparserm service).
 */

/**
 * Progress of the demo: `stage` says which step a service phase belongs to (the same phases — tokenize, backbone,
 * sae — run for training and again for scoring); `note` is one finished fact to print as is (what was reused, why
 * training stopped), so a front end never has to guess from counters.
 */
export type RunDemoProgress = DemoProgress & { etaS?: number; stage?: 'kit' | 'import' | 'train' | 'score' | 'baselines' | 'export' | 'generate'; note?: string; stats?: Progress['stats'] };

/** One sentence on how training ended: early stopping named, with the epoch kept. */
export function trainingOutcome(t: { epochsRun: number; maxEpochs: number; bestEpoch: number; patience: number }): string {
  return t.epochsRun < t.maxEpochs
    ? `stopped early after epoch ${t.epochsRun} of at most ${t.maxEpochs}: the held-out loss had not improved for ${t.patience} epochs; kept the weights of epoch ${t.bestEpoch}`
    : `ran all ${t.maxEpochs} epochs; kept the weights of epoch ${t.bestEpoch} (lowest held-out loss)`;
}

export interface RunDemoOptions {
  onProgress?: (p: RunDemoProgress) => void;
  signal?: AbortSignal;
  /** Where the kit lives (default models/demo). */
  kitDir?: string;
  /** Where exports go (default <data home>/demo). */
  outDir?: string;
  /** Database file (default: databasePath()). Ignored when `store` is given. */
  db?: string;
  /** An already open store (the desktop app's); not closed by runDemo. */
  store?: Store;
  /** Also train the paper's comparisons (dense probe, raw SAE activations, random directions) on the same split
   *  and report them next to SparseRM's held-out accuracy (slower: three more heads). */
  baselines?: boolean;
  /** Compute device for the backbone (default auto: CUDA when usable, else CPU, with the reason). */
  ep?: EpRequest;
  env?: NodeJS.ProcessEnv;
}

export interface DemoResult {
  /** "demo (random weights)". */
  label: string;
  kit: DemoKit;
  database: string;
  dataset: DemoDatasetResult;
  labelsImported: number;
  rewardModel: {
    id: string;
    dir: string;
    reused: boolean;
    pairs: RewardModelManifest['training']['pairs'];
    /** Accuracy on the held-out test prompts (never trained or early-stopped on). */
    heldOutAccuracy: number | null;
    heldOutPairs: number;
    valAccuracy: number | null;
  };
  run: { id: number; reused: boolean; accuracyAllPairs: number };
  /** With `baselines`: each comparison's accuracy on the same held-out test pairs. */
  baselines?: Array<{ name: string; description: string; trainableParams: number; accuracy: number; auc: number; n: number }>;
  filter: { id: number; rule: 'paper'; threshold: number; counts: VerdictCounts };
  export: ExportResult;
  /** The file the demo produced: the TRL JSONL of the kept pairs (what the CLI prints last). */
  outputFile: string;
  /** The generation loop (issue 12): two rounds on a few demo prompts → instructed pairs → SparseRM filter → export. */
  generation: DemoGenerationResult;
  /** Short human summary lines. */
  summary: string[];
}

export async function runDemo(opts: RunDemoOptions = {}): Promise<DemoResult> {
  const { signal } = opts;
  const progress = (p: RunDemoProgress) => opts.onProgress?.(p);
  const note = (stage: RunDemoProgress['stage'], text: string) => progress({ stage, phase: stage ?? '', done: 1, total: 1, note: text });
  let kitBuilt = false;
  const kit = await ensureDemoKit({
    dir: opts.kitDir,
    onProgress: (p) => {
      kitBuilt = true;
      progress({ ...p, stage: 'kit' });
    },
    signal,
  });
  if (!kitBuilt) note('kit', `demo kit: reused ${kit.dir}`);
  throwIfAborted(signal);

  const database = opts.store ? opts.store.path : databasePath(opts.db, opts.env);
  if (!opts.store) fs.mkdirSync(path.dirname(database), { recursive: true });
  const store = opts.store ?? openStore(database);
  try {
    const dataset = await ensureDemoDataset(store, kit.dataset, { signal });
    const labelsImported = await ensureDemoLabels(store, kit);
    await ensureDemoModels(store, kit); // the same Models rows the app's demo registers
    note('import', dataset.action === 'reused' ? `import: reused dataset "${dataset.name}" (${dataset.pairs} pairs, already imported; decisions kept)` : `import: ${dataset.action} dataset "${dataset.name}": ${dataset.pairs} pairs`);
    throwIfAborted(signal);

    const serviceProgress = (stage: 'train' | 'score' | 'baselines') => (p: Progress) => progress({ stage, phase: p.phase, done: p.done, total: p.total, etaS: p.etaS, ...(p.stats ? { stats: p.stats } : {}) });
    const model = await ensureDemoRewardModel(store, kit, dataset, { ep: opts.ep, signal, onProgress: serviceProgress('train'), env: opts.env });
    note(
      'train',
      model.reused
        ? `train: reused reward model ${model.manifest.id} (trained on these exact pairs with this backbone and SAE)`
        : `train: ${trainingOutcome(model.manifest.training)}`,
    );
    throwIfAborted(signal);

    const run = await ensureDemoScoring(store, dataset.datasetId, model.dir, model.manifest.id, { ep: opts.ep, signal, onProgress: serviceProgress('score') });
    if (run.reused) note('score', `score: reused scoring run ${run.id} (every pair already scored by this model)`);
    let baselines: DemoResult['baselines'];
    if (opts.baselines) {
      const report = await evaluateRewardModel({ modelDir: model.dir, pairs: datasetPairs(store, dataset.datasetId).pairs, baselines: true, ep: opts.ep, signal, onProgress: serviceProgress('baselines') });
      baselines = report.baselines.map((b) => ({ name: b.name, description: b.description, trainableParams: b.trainableParams, accuracy: b.test.accuracy, auc: b.test.auc, n: b.test.n }));
    }
    const current = store.runs.currentFilter(dataset.datasetId);
    const filter =
      current && current.runId === run.id && current.rule === 'paper' && current.band === 0
        ? current
        : store.runs.applyFilter({ datasetId: dataset.datasetId, runId: run.id, rule: 'paper' });

    const outDir = path.resolve(opts.outDir ?? path.join(dataHome(opts.env), 'demo'));
    fs.mkdirSync(outDir, { recursive: true });
    const out = path.join(outDir, `${DEMO_DATASET}.kept.jsonl`);
    const exported = await exportDataset(store, {
      dataset: dataset.datasetId,
      out,
      format: 'standard',
      dropped: path.join(outDir, `${DEMO_DATASET}.left-out.jsonl`),
      signal,
      // The demo owns these files: a re-run replaces its own previous export (atomically).
      overwrite: true,
      onProgress: (p) => progress({ stage: 'export', phase: 'export', done: p.done, total: p.total }),
    });

    // The seed's full loop on a handful of prompts: the demo checkpoint generates, SparseRM filters, round 2 follows.
    const generation = await runDemoGeneration(store, kit, model.dir, {
      outDir,
      datasetId: dataset.datasetId,
      ep: opts.ep,
      signal,
      onProgress: (p) => p.phase === 'generate' && progress({ stage: 'generate', phase: `round ${p.round} prompts`, done: p.done, total: p.total }),
    });
    const m = model.manifest.metrics;
    const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
    // Every accuracy with its 95 % Wilson interval (accuracy = correct / n exactly, so correct = round(accuracy·n)).
    const ci = (x: number | null, n: number) => {
      if (x === null || !Number.isFinite(x) || n === 0) return '95% CI n/a';
      const [lo, hi] = wilsonInterval(Math.round(x * n), n);
      return `95% CI ${(100 * lo).toFixed(1)}–${(100 * hi).toFixed(1)}%`;
    };
    const c = exported.counts;
    const summary = [
      `${kit.label}: a tiny random-weight Gemma-2 — scores and latents carry no meaning about the text; this run shows the workflow`,
      `dataset "${dataset.name}": ${dataset.pairs} TruthfulQA pairs (${dataset.action}); ${labelsImported} latent labels loaded`,
      `reward model ${model.manifest.id} (${model.reused ? 'reused' : 'trained'}; ${model.manifest.training.pairs.train} train / ${model.manifest.training.pairs.val} val / ${model.manifest.training.pairs.test} test pairs, split by prompt): ` +
        `held-out accuracy ${pct(m.test.accuracy)} on ${m.test.n} test pairs (${ci(m.test.accuracy, m.test.n)}; val ${pct(m.val.accuracy)} on ${m.val.n})`,
      ...(baselines
        ? [`baselines on the same held-out pairs: ${baselines.map((b) => `${b.name} ${pct(b.accuracy)} (n = ${b.n}, ${ci(b.accuracy, b.n)}; ${b.trainableParams.toLocaleString('en')} params)`).join(', ')}; SparseRM ${pct(m.test.accuracy)} (${model.manifest.head.trainableParams.toLocaleString('en')} params)`]
        : []),
      `scoring run ${run.id}${run.reused ? ' (reused)' : ''}: all ${dataset.pairs} pairs; rule "drop where s_chosen < s_rejected": kept ${filter.counts.keep}, dropped ${filter.counts.drop}` +
        (filter.counts.uncertain ? `, uncertain ${filter.counts.uncertain}` : ''),
      `export: ${c.exported} kept pairs (TRL standard, explicit prompt) → ${exported.out}`,
      `provenance → ${exported.provenance}; left-out pairs → ${exported.dropped}`,
      `reward model folder → ${model.dir}; database → ${database}`,
      ...generation.rounds.map((g) => `generate round ${g.round}: the demo checkpoint answered ${g.prompts} prompts (${g.candidates} candidates, ${g.tokens} tokens${g.tokensPerSecond !== null ? `, ${g.tokensPerSecond.toFixed(0)} tokens/s` : ''}) → dataset "${g.dataset}": ${g.pairs} instructed pairs, SparseRM kept ${g.kept}, dropped ${g.dropped}`),
      `generated round 2 export: ${generation.export.counts.exported} kept pairs → ${generation.export.out} (provenance names the round and the policy)`,
    ];
    return {
      label: kit.label,
      kit,
      database,
      dataset,
      labelsImported,
      rewardModel: {
        id: model.manifest.id,
        dir: model.dir,
        reused: model.reused,
        pairs: model.manifest.training.pairs,
        heldOutAccuracy: m.test.accuracy,
        heldOutPairs: m.test.n,
        valAccuracy: m.val.accuracy,
      },
      run,
      baselines,
      filter: { id: filter.id, rule: 'paper', threshold: filter.threshold, counts: filter.counts },
      export: exported,
      outputFile: exported.out,
      generation,
      summary,
    };
  } finally {
    if (!opts.store) store.close();
  }
}

/**
 * The demo's reward model lives in one fixed folder (<data home>/reward-models/demo-truthfulqa): reused when it was
 * trained on exactly these pairs with this kit's backbone and SAE, otherwise retrained in place — so re-running the
 * demo never piles up models.
 */
async function ensureDemoRewardModel(
  store: Store,
  kit: DemoKit,
  dataset: DemoDatasetResult,
  hooks: { ep?: EpRequest; signal?: AbortSignal; onProgress?: (p: Progress) => void; env?: NodeJS.ProcessEnv },
): Promise<{ dir: string; manifest: RewardModelManifest; reused: boolean }> {
  const dir = path.join(rewardModelsHome(hooks.env), DEMO_DATASET);
  const { pairs } = datasetPairs(store, dataset.datasetId);
  if (fs.existsSync(dir)) {
    const existing = await readRewardModel(dir).catch(() => undefined);
    const m = existing?.manifest;
    // Same pairs AND the very same SAE and backbone weights (a regenerated kit keeps its paths but may change bytes).
    if (m && m.training.dataHash === pairsHash(pairs) && m.sae.hash === (await loadSae(kit.sae)).hash && m.backbone.contentHash === (await backboneHash(kit))) {
      if (!store.models.rewardModel(m.id)) registerRewardModel(store, dir, m, { demo: true });
      return { dir, manifest: m, reused: true };
    }
    // Stale or broken: retrain in place. Older scoring runs keep their scores in the store; their model folder is gone
    // (it described a kit that no longer exists).
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const res = await trainRewardModel({
    checkpoint: kit.checkpoint,
    layer: kit.layer,
    sae: kit.sae,
    ep: hooks.ep,
    pairs,
    outDir: dir,
    datasetName: dataset.name,
    labelSet: { modelId: kit.modelId, saeId: kit.saeId },
    signal: hooks.signal,
    onProgress: hooks.onProgress,
  });
  registerRewardModel(store, res.modelDir, res.manifest, { demo: true });
  return { dir: res.modelDir, manifest: res.manifest, reused: false };
}

async function backboneHash(kit: DemoKit): Promise<string> {
  const ckpt = await loadCheckpoint(kit.checkpoint);
  try {
    return await ckpt.contentHash(kit.layer);
  } finally {
    ckpt.close();
  }
}

/** Reuses the latest finished scoring run of this model on the dataset when it covers every pair; else scores. */
async function ensureDemoScoring(
  store: Store,
  datasetId: number,
  modelDir: string,
  modelId: string,
  hooks: { ep?: EpRequest; signal?: AbortSignal; onProgress?: (p: Progress) => void },
): Promise<{ id: number; reused: boolean; accuracyAllPairs: number }> {
  const total = store.pairs.count({ datasetId });
  const latest = store.runs.latestDone(datasetId);
  if (latest && latest.rewardModelId === modelId && store.runs.scoreCount(latest.id) === total) {
    const margins = store.pairs.iterate({ datasetId });
    let correct = 0;
    for (const p of margins) {
      const s = store.runs.score(latest.id, p.id);
      if (s && s.margin > 0) correct++;
    }
    return { id: latest.id, reused: true, accuracyAllPairs: correct / total };
  }
  const r = await scoreDatasetIntoStore({ store, dataset: datasetId, modelDir, ep: hooks.ep, signal: hooks.signal, onProgress: hooks.onProgress });
  return { id: r.runId, reused: false, accuracyAllPairs: r.accuracy };
}
