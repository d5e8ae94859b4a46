import path from 'node:path';

import type { Command } from 'commander';

import { readModelConfig } from '../../engine/backbone/config';
import { ensureDemoKit } from '../../engine/demo/kit';
import { InputError } from '../../engine/errors';
import type { EpRequest } from '../../engine/runtime/ort';
import type { Precision } from '../../engine/backbone/linear-weights';
import type { SaeEncoding } from '../../engine/sae';
import { openStore, type Store } from '../../engine/store';
import { resolveMaxTokens } from '../../engine/sparserm/length-policy';
import { readPairsJsonl, trainRewardModel, registerRewardModel, datasetPairs, type PairInput, type Progress } from '../../engine/sparserm/service';
import { formatAccuracy } from '../../engine/sparserm/metrics';
import { crossedUnderExactSplit } from '../../engine/sparserm/splits';
import { trainingOutcome } from '../../engine/demo/run-demo';
import { action, printJson, progress } from '../output';
import { decisionOptions, decisionLine, decisionPointOf, labelsView, loadDecisionPairs } from './train-decisions';
import { parseEp, parseLayer, parsePrecision, PRECISION_HELP } from './hidden';

/** Shared by train / score / eval / latents: where the backbone, layer and SAE come from. */
export interface BackboneOpts {
  checkpoint?: string;
  layer?: string;
  sae?: string;
  /** Llama Scope only: saelens (default) | authors. */
  saeEncoding?: string;
  demo?: boolean;
  ep?: string;
  precision?: string;
}

/** --sae-encoding → the loader's option (sae/llama-scope.ts). */
export function parseSaeEncoding(v: string | undefined): SaeEncoding | undefined {
  if (v === undefined) return undefined;
  if (v !== 'saelens' && v !== 'authors') throw new InputError({ field: '--sae-encoding', expected: 'saelens or authors', got: JSON.stringify(v) });
  return v;
}

export async function resolveBackbone(o: BackboneOpts): Promise<{ checkpoint: string; layer: number; sae: string; saeEncoding?: SaeEncoding; ep: EpRequest; precision: Precision; demoDataset?: string; labelSet?: { modelId: string; saeId: string } }> {
  if (o.demo) {
    const kit = await ensureDemoKit({ onProgress: (p) => progress(`demo kit: ${p.phase} ${p.done}/${p.total}`) });
    progress(`using ${kit.label}: ${kit.checkpoint}, layer ${kit.layer}, SAE ${kit.sae}`);
    return {
      checkpoint: o.checkpoint ?? kit.checkpoint,
      layer: o.layer !== undefined ? parseLayer(o.layer) : kit.layer,
      sae: o.sae ?? kit.sae,
      ep: parseEp(o.ep),
      precision: parsePrecision(o.precision),
      demoDataset: kit.dataset,
      labelSet: { modelId: kit.modelId, saeId: kit.saeId },
    };
  }
  for (const [flag, v] of [['--checkpoint', o.checkpoint], ['--layer', o.layer], ['--sae', o.sae]] as const) {
    if (v === undefined) throw new InputError({ field: flag, expected: `${flag} (or --demo for the demo kit)`, got: 'nothing' });
  }
  const saeEncoding = parseSaeEncoding(o.saeEncoding);
  return { checkpoint: o.checkpoint!, layer: parseLayer(o.layer), sae: o.sae!, ...(saeEncoding ? { saeEncoding } : {}), ep: parseEp(o.ep), precision: parsePrecision(o.precision) };
}

export interface DataOpts {
  data?: string;
  dataset?: string;
  db?: string;
}

/** Pairs from --data FILE (JSONL) or --dataset NAME (store); `fallback` (the demo pairs) when neither is given. */
export function loadPairs(o: DataOpts, fallback?: string): { pairs: PairInput[]; store?: Store; datasetName?: string; pairIds?: number[] } {
  if (o.data && o.dataset) throw new InputError({ field: '--data/--dataset', expected: 'one of --data FILE or --dataset NAME', got: 'both' });
  if (o.dataset) {
    const store = openStore(o.db);
    const ds = datasetPairs(store, o.dataset);
    return { pairs: ds.pairs, store, datasetName: ds.name, pairIds: ds.pairIds };
  }
  const file = o.data ?? fallback;
  if (!file) throw new InputError({ field: '--data', expected: '--data FILE.jsonl ({prompt, chosen, rejected, source?}) or --dataset NAME', got: 'neither' });
  return { pairs: readPairsJsonl(file) };
}

/** Progress lines on stderr: one per phase change and at most one per second within a phase. */
export function progressPrinter(): (p: Progress) => void {
  let phase = '';
  let last = 0;
  return (p) => {
    if (p.stats) {
      // One line per epoch: the training curve as it happens.
      const s = p.stats;
      const val = s.valLoss !== undefined ? `, val loss ${s.valLoss.toFixed(4)}${s.valAccuracy !== undefined ? `, val accuracy ${(100 * s.valAccuracy).toFixed(1)}%` : ''}` : '';
      // "of at most": early stopping usually ends training well before the maximum (said once it does).
      progress(`train: epoch ${s.epoch} (of at most ${p.total}), train loss ${s.trainLoss.toFixed(4)}${val}`);
      return;
    }
    const now = Date.now();
    if (p.phase === phase && now - last < 1000 && p.done !== p.total) return;
    phase = p.phase;
    last = now;
    const eta = p.etaS !== undefined ? `, ETA ${Math.ceil(p.etaS)} s` : '';
    progress(`${p.phase}: ${p.done}/${p.total}${eta}`);
  };
}

export function parseIntOpt(flag: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError({ field: flag, expected: `an integer ≥ ${min}`, got: JSON.stringify(v) });
  return n;
}

export function parseNumOpt(flag: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= min) throw new InputError({ field: flag, expected: `a number > ${min}`, got: JSON.stringify(v) });
  return n;
}

interface TrainOpts extends BackboneOpts, DataOpts {
  k?: string;
  loss?: string;
  pooling?: string;
  seed?: string;
  out?: string;
  margin?: string;
  hidden?: string;
  lr?: string;
  maxEpochs?: string;
  patience?: string;
  labels?: string;
  maxTokens?: string;
  json?: boolean;
  fromDecisions?: boolean;
  undecided?: string;
  includeHeldOut?: boolean;
  /** false with --no-prefix-share. */
  prefixShare?: boolean;
}

/** `MODEL_ID/SAE_ID` (Neuronpedia ids, e.g. gemma-2-2b/12-gemmascope-res-16k) → the ids labels are keyed by. */
export function parseLabelSet(v: string | undefined): { modelId: string; saeId: string } | undefined {
  if (v === undefined) return undefined;
  const i = v.indexOf('/');
  if (i <= 0 || i === v.length - 1) throw new InputError({ field: '--labels', expected: 'MODEL_ID/SAE_ID, e.g. gemma-2-2b/12-gemmascope-res-16k', got: JSON.stringify(v) });
  return { modelId: v.slice(0, i), saeId: v.slice(i + 1) };
}

export function register(program: Command): void {
  program
    .command('train')
    .description('train a SparseRM reward model: pooled resid_post(L) → SAE latents → top-K preference directions → small head')
    .option('--data <file>', 'JSONL of {prompt, chosen, rejected, source?}')
    .option('--dataset <name>', 'a dataset from the store (the model is registered there too)')
    .option('--db <path>', 'database file (default: SPARSERM_DB or the per-user location)')
    .option('--checkpoint <dir>', 'Hugging Face Gemma-2 or Llama-3.x checkpoint folder')
    .option('--layer <L>', 'block whose resid_post is read (0-based)')
    .option('--sae <path>', 'Gemma Scope params.npz, SAELens folder (cfg.json + sae_weights.safetensors) or Llama Scope folder (hyperparams.json + checkpoints/)')
    .option('--sae-encoding <e>', 'Llama Scope only: saelens (default) | authors (unit-norm decoder; recorded in the model)')
    .option('--demo', 'use the demo kit (tiny random-weight Gemma-2 + SAE; its TruthfulQA pairs when no data is given)')
    .option('--k <K>', 'latents per side (2K directions)', '128')
    .option('--loss <loss>', 'margin | bt (Bradley–Terry)', 'margin')
    .option('--margin <gamma>', 'γ of the margin loss', '1')
    .option('--pooling <p>', 'mean | last (over the response tokens; BOS never included)', 'mean')
    .option('--seed <n>', 'seed for the split, initialisation and batches', '0')
    .option('--hidden <n>', 'hidden units of the head', '512')
    .option('--lr <lr>', 'Adam learning rate', '0.001')
    .option('--max-epochs <n>', 'epoch limit (early stopping on the validation split usually stops sooner)', '40')
    .option('--patience <n>', 'epochs without validation improvement before stopping', '5')
    .option('--max-tokens <n>', 'tokens per response sequence, BOS included (default 1024; longer inputs lose the oldest prompt tokens, then the response end; at most the checkpoint\'s max_position_embeddings)')
    .option('--out <dir>', 'output folder for the reward model (default: <data home>/reward-models/<id>)')
    .option('--labels <model/sae>', 'Neuronpedia ids the store\'s latent labels use for this SAE (shown in explanations)')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu (auto: CUDA, else a WebGPU GPU adapter, else CPU)', 'auto')
    .option('--precision <p>', `${PRECISION_HELP}; recorded in the model (score defaults to it)`, 'f32')
    .option('--from-decisions', "with --dataset: label pairs by the curators' decisions (keep as labelled, swap flipped, drop left out)")
    .option('--undecided <policy>', 'with --from-decisions: as-labelled (default) | exclude')
    .option('--include-held-out', 'with --from-decisions: also train on the curator hold-out (its agreement then measures nothing new)')
    .option('--no-prefix-share', 'run every response with its whole prompt (default: a prompt shared by responses runs once; same features within 1e-4)')
    .option('--json', 'print the result as one JSON document on stdout')
    .action(
      action(async (o: TrainOpts) => {
        const fromDecisions = decisionOptions(o);
        const bb = await resolveBackbone(o);
        const maxTokens = parseIntOpt('--max-tokens', o.maxTokens, 1);
        // Checked before any work: a value above the checkpoint's max_position_embeddings is refused naming both.
        if (maxTokens !== undefined) resolveMaxTokens(maxTokens, readModelConfig(bb.checkpoint), path.join(bb.checkpoint, 'config.json'), '--max-tokens');
        const data = fromDecisions ? loadDecisionPairs(o, fromDecisions) : loadPairs(o, bb.demoDataset);
        if (o.loss !== 'margin' && o.loss !== 'bt') throw new InputError({ field: '--loss', expected: 'margin or bt', got: JSON.stringify(o.loss) });
        if (o.pooling !== 'mean' && o.pooling !== 'last') throw new InputError({ field: '--pooling', expected: 'mean or last', got: JSON.stringify(o.pooling) });
        try {
          const res = await trainRewardModel({
            ...bb,
            pairs: data.pairs,
            outDir: o.out,
            k: parseIntOpt('--k', o.k, 1),
            loss: o.loss,
            margin: parseNumOpt('--margin', o.margin),
            pooling: o.pooling,
            seed: parseIntOpt('--seed', o.seed),
            hidden: parseIntOpt('--hidden', o.hidden, 1),
            lr: parseNumOpt('--lr', o.lr),
            maxEpochs: parseIntOpt('--max-epochs', o.maxEpochs, 1),
            patience: parseIntOpt('--patience', o.patience, 1),
            maxTokens,
            prefixShare: o.prefixShare,
            datasetName: data.datasetName,
            ...decisionPointOf(data),
            labelSet: parseLabelSet(o.labels) ?? bb.labelSet,
            onProgress: progressPrinter(),
            onWarning: (w) => progress(`warning: ${w}`),
          });
          if (data.store) registerRewardModel(data.store, res.modelDir, res.manifest);
          const m = res.manifest;
          progress(`train: ${trainingOutcome(m.training)}`);
          // The split keeps near-duplicate prompt groups on one side; how many the exact-text split would have crossed.
          const skippedIdx = new Set(res.skipped.map((s) => s.index));
          const nd = crossedUnderExactSplit(data.pairs.filter((_, i) => !skippedIdx.has(i)).map((p) => p.prompt), { seed: m.training.seed, valFraction: m.training.valFraction, testFraction: m.training.testFraction });
          const nearDuplicates = { groups: nd.groups, crossedUnderExactSplit: nd.crossed };
          const out = {
            modelDir: res.modelDir,
            id: m.id,
            k: m.k,
            loss: m.training.loss,
            pooling: m.pooling,
            layer: m.backbone.layer,
            pairs: m.training.pairs,
            epochsRun: m.training.epochsRun,
            bestEpoch: m.training.bestEpoch,
            trainableParams: m.head.trainableParams,
            metrics: m.metrics,
            features: res.features,
            skipped: res.skipped,
            maxTokens: m.maxTokens,
            truncated: res.truncated,
            controlStrings: res.controlStrings,
            nearDuplicates,
            ...(m.training.decisions ? { labels: labelsView(m.training.decisions) } : {}),
          };
          if (o.json) printJson(out);
          else {
            process.stdout.write(`reward model ${m.id} → ${res.modelDir}\n`);
            process.stdout.write(`K=${m.k} (${m.selected.length} directions), ${m.training.loss} loss, ${m.head.trainableParams} trainable parameters, ${m.training.epochsRun} epochs (best ${m.training.bestEpoch})\n`);
            const f = (x: number | null) => (x === null ? '–' : x.toFixed(3));
            for (const s of ['train', 'val', 'test'] as const) process.stdout.write(`${s}: accuracy ${formatAccuracy(m.metrics[s])}, AUC ${f(m.metrics[s].auc)}\n`);
            if (m.training.decisions) process.stdout.write(`${decisionLine(m.training.decisions)}\n`);
            if (nd.groups) process.stdout.write(`near-duplicate prompt groups: ${nd.groups}, each kept on one side of the split (the exact-text split would have put ${nd.crossed} on two sides)\n`);
            process.stdout.write(`features: ${res.features.responsesComputed} responses through the backbone, ${res.features.responsesCached} from the cache\n`);
            if (res.truncated) process.stdout.write(`truncated ${res.truncated} pair(s) to ${m.maxTokens} tokens per response (oldest prompt tokens first, then the response end)\n`);
            if (res.skipped.length) process.stdout.write(`skipped ${res.skipped.length} pair(s) whose text cannot be encoded (listed on stderr)\n`);
          }
        } finally {
          data.store?.close();
        }
      }),
    );
}
