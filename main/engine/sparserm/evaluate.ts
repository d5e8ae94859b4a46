/**
 * Honest evaluation of a reward model on any pairs (docs/sparserm.md, Evaluation): pairs whose prompt the model
 * was trained or validated on are found through the prompt hashes in its manifest and left out by default; the
 * baselines are trained on exactly the given pairs the model trained on and tested on exactly the rows the model
 * is evaluated on; every accuracy carries n, exact ties and a 95 % Wilson interval.
 * Re-exported by service.ts (callers import it from there).
 */
import type { EpRequest } from '../runtime/ort';
import { runBaselines, type BaselineResult } from './baselines';
import { splitMetrics, type FeatureTable, type PairRef, type SplitMetrics } from './fit';
import type { RewardModelManifest } from './manifest';
import { perSourceAccuracy, type AccuracyStats } from './metrics';
import { readRewardModel } from './model-folder';
import { pairsHash, type PairInput } from './pairs-file';
import { controlStringsIn } from './prompt-encoding';
import { overlapOf, promptStatuses, usableRecord, type PromptStatus } from './seen-prompts';
import { keptPairs, modelSae, pairRefs, pooledFor, responsesOf, scoreRepresentations, skippedPairs, truncatedCount, type JobHooks, type SkippedPair } from './pair-jobs';
import { splitByPrompt } from './splits';
import { groupNearDuplicates } from './near-duplicates';

export interface EvalRequest extends JobHooks {
  modelDir: string;
  /** The data to evaluate on: any pairs (the training file, a later export, another dataset). */
  pairs: PairInput[];
  /** Also evaluate pairs whose prompt the model was trained or validated on (default false: held-out only). */
  includeSeen?: boolean;
  /** Also train and report the baselines (dense probe, raw SAE activations, random directions). Default true. */
  baselines?: boolean;
  /**
   * The model's training data (e.g. its training file): the baselines then train on exactly the pairs the model
   * trained on, even when `pairs` holds few or none of them. Default: the pairs of `pairs` the model trained on.
   */
  trainPairs?: PairInput[];
  checkpoint?: string;
  ep?: EpRequest;
}

export interface EvalReport extends AccuracyStats {
  modelId: string;
  /**
   * 'test-split': the training data itself, its held-out prompts; 'unseen-prompts': other data, the pairs whose
   * prompt the model never saw; 'all': every pair (--include-seen, or the overlap is unknown).
   */
  evaluatedOn: 'test-split' | 'unseen-prompts' | 'all';
  includeSeen: boolean;
  /** Distinct prompts / pairs of the given data the model trained or validated on; null = unknown (old folder). */
  overlap: { prompts: number | null; pairs: number | null };
  /**
   * Part of the overlap report: near-duplicate prompt groups of the data with both seen and unseen members (the
   * prompt hashes call those unseen members held out), and the unseen pairs in them. Absent when the overlap is unknown.
   */
  nearDuplicates?: { groups: number; unseenPairs: number };
  /** Pairs evaluated (= n). */
  pairs: number;
  auc: number;
  /** Accuracy per source on HELD-OUT pairs only (all evaluated pairs when the overlap is unknown). */
  perSource: Record<string, AccuracyStats>;
  trainableParams: number;
  /** Trained on the given pairs the model trained on (val: validated on); tested on exactly the evaluated rows. */
  baselines: Array<BaselineResult & { vsSparseRm: SplitMetrics }>;
  baselineTrainN: number;
  baselineTestN: number;
  /** Why the baselines did not run (none of the model's training pairs in the data, or nothing to test on). */
  baselinesSkipped?: string;
  /** Pairs left out (text the tokenizer refuses); the metrics are on the rest. */
  skipped: SkippedPair[];
  /** Pairs (of those not skipped) with at least one response cut to the model's max-token setting. */
  truncated: number;
  /** Control-token strings in the evaluated pairs' text, encoded as ordinary text (per response sequence). */
  controlStrings: number;
}

/**
 * Per given prompt: trained on, validated on, or unseen. From the manifest's prompt hashes when it has them;
 * for an older folder only when the data is the training data itself (the recorded seed/fractions reproduce
 * its split exactly); otherwise null — unknown.
 */
function statusesFor(m: RewardModelManifest, prompts: string[], sameData: boolean): PromptStatus[] | null {
  const t = m.training;
  if (usableRecord(t.prompts)) return promptStatuses(t.prompts, prompts);
  if (!sameData) return null;
  // Folders without the record predate the near-duplicate grouping: their split grouped exact texts only.
  return splitByPrompt(prompts, { seed: t.seed, valFraction: t.valFraction, testFraction: t.testFraction, grouping: 'exact' }).map((s) => (s === 'test' ? 'unseen' : s));
}

/** Near-duplicate groups that mix prompts the model saw with prompts it did not (near-duplicates.ts). */
function seenNearDuplicates(prompts: string[], statuses: PromptStatus[]): { groups: number; unseenPairs: number } {
  const byGroup = new Map<number, number[]>();
  groupNearDuplicates(prompts).groupOf.forEach((g, i) => (byGroup.get(g) ?? byGroup.set(g, []).get(g)!).push(i));
  let groups = 0;
  let unseenPairs = 0;
  for (const idx of byGroup.values()) {
    const unseen = idx.filter((i) => statuses[i] === 'unseen').length;
    if (unseen > 0 && unseen < idx.length) {
      groups++;
      unseenPairs += unseen;
    }
  }
  return { groups, unseenPairs };
}

/** Two feature tables as one (rows of `b` after those of `a`). */
function concatTables(a: FeatureTable, b: FeatureTable): FeatureTable {
  const z = new Float32Array(a.z.length + b.z.length);
  z.set(a.z, 0);
  z.set(b.z, a.z.length);
  return { hiddenSize: a.hiddenSize, n: a.n + b.n, z, latents: [...a.latents, ...b.latents] };
}

export async function evaluateRewardModel(req: EvalRequest): Promise<EvalReport> {
  const model = await readRewardModel(req.modelDir);
  const m = model.manifest;
  const includeSeen = req.includeSeen === true;
  const sae = await modelSae(model);
  const feats = await pooledFor(model, responsesOf(req.pairs), { ...req, sae, skipBadText: true });
  const skipped = skippedPairs(req.pairs, feats.rejected, req);
  // Positions below are into `kept`: training split the same kept pairs, so a reproduced split matches.
  const kept = keptPairs(req.pairs.length, skipped);
  const keptIn = kept.map((i) => req.pairs[i]);
  const prompts = keptIn.map((p) => p.prompt);
  const scores = await scoreRepresentations(model, feats.table.z, feats.table.n, { worker: req.worker });
  const margins = kept.map((i) => scores[2 * i] - scores[2 * i + 1]);
  const sameData = pairsHash(req.pairs) === m.training.dataHash;

  const statuses = statusesFor(m, prompts, sameData);
  const positions = kept.map((_, j) => j);
  const unseen = statuses ? positions.filter((j) => statuses[j] === 'unseen') : positions;
  const evalIdx = includeSeen ? positions : unseen;
  const overlap = statuses ? overlapOf(prompts, statuses) : { prompts: null, pairs: null };
  const nearDuplicates = statuses ? seenNearDuplicates(prompts, statuses) : undefined;
  if (!statuses) {
    req.onWarning?.(
      `${model.dir}: the manifest does not record which prompts the model was trained on (written by an older version), so the overlap of this data with its training data is unknown; evaluating all ${kept.length} pairs — retrain for a held-out evaluation`,
    );
  } else if (includeSeen && overlap.pairs! > 0) {
    req.onWarning?.(`the metrics include ${overlap.pairs} pair(s) whose prompt the model was trained or validated on: they overstate held-out accuracy`);
  } else if (evalIdx.length === 0) {
    req.onWarning?.(`none of the ${kept.length} pairs is held out: the model was trained or validated on every prompt (--include-seen evaluates them anyway)`);
  }

  const evalMargins = evalIdx.map((j) => margins[j]);
  const overall = splitMetrics(evalMargins);
  const perSource = perSourceAccuracy(unseen.map((j) => margins[j]), unseen.map((j) => keptIn[j].source));

  // Baselines: the model's own training rows to train (from trainPairs when given, else those within the given
  // data), the evaluated rows to test.
  let baselines: EvalReport['baselines'] = [];
  let baselinesSkipped: string | undefined;
  let trainN = 0;
  if (req.baselines !== false) {
    const refs = pairRefs(req.pairs, kept);
    let rows: { table: FeatureTable; train: PairRef[]; val: PairRef[] } | string;
    if (req.trainPairs) {
      const tf = await pooledFor(model, responsesOf(req.trainPairs), { ...req, sae, skipBadText: true });
      const tKept = keptPairs(req.trainPairs.length, skippedPairs(req.trainPairs, tf.rejected, { onSkip: () => {} }));
      const tStatuses = statusesFor(m, tKept.map((i) => req.trainPairs![i].prompt), pairsHash(req.trainPairs) === m.training.dataHash);
      // The training pairs' rows follow the evaluated data's in one table (2 rows per pair, chosen then rejected).
      const tRefs = pairRefs(req.trainPairs, tKept).map((r) => ({ ...r, chosen: r.chosen + feats.table.n, rejected: r.rejected + feats.table.n }));
      const pick = (s: PromptStatus) => (tStatuses ? tRefs.filter((_, j) => tStatuses[j] === s) : []);
      rows = !tStatuses ? 'the model folder does not record which prompts it was trained on, and the training data given is not its training file' : { table: concatTables(feats.table, tf.table), train: pick('train'), val: pick('val') };
    } else {
      const pick = (s: PromptStatus) => (statuses ? positions.filter((j) => statuses[j] === s).map((j) => refs[j]) : []);
      rows = !statuses ? 'the model folder does not record which prompts it was trained on' : { table: feats.table, train: pick('train'), val: pick('val') };
    }
    if (typeof rows === 'string') baselinesSkipped = rows;
    else if (rows.train.length === 0) baselinesSkipped = 'none of the pairs has a prompt the model was trained on (baselines train on exactly those pairs: include them, or pass the training data, e.g. --train-data FILE)';
    else if (evalIdx.length === 0) baselinesSkipped = 'no pairs to evaluate on';
    if (baselinesSkipped || typeof rows === 'string') req.onWarning?.(`baselines skipped: ${baselinesSkipped}`);
    else {
      const t = m.training;
      const res = await runBaselines(rows.table, rows.train, rows.val, evalIdx.map((j) => refs[j]), m.selected.map((s) => s.index), {
        loss: t.loss, margin: t.margin, hidden: m.head.hidden, lr: t.lr, batchSize: t.batchSize, maxEpochs: t.maxEpochs, patience: t.patience, seed: t.seed, signal: req.signal,
      });
      trainN = rows.train.length;
      baselines = res.map((b) => ({ ...b, vsSparseRm: overall }));
    }
  }
  return {
    modelId: m.id,
    evaluatedOn: !statuses || includeSeen ? 'all' : sameData ? 'test-split' : 'unseen-prompts',
    includeSeen,
    overlap,
    ...(nearDuplicates ? { nearDuplicates } : {}),
    pairs: overall.n,
    ...overall,
    perSource,
    trainableParams: m.head.trainableParams,
    baselines,
    baselineTrainN: trainN,
    baselineTestN: baselines.length ? evalIdx.length : 0,
    ...(baselinesSkipped ? { baselinesSkipped } : {}),
    skipped,
    truncated: truncatedCount(feats.truncation, kept),
    controlStrings: controlStringsIn(feats.controlStrings, kept),
  };
}
