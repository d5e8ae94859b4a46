/**
 * Training labels from the curators' decisions (issue 14 item 1): each pair's current human decision says how it
 * enters training — keep → as labelled, swap → chosen and rejected exchanged, drop → left out, undecided → as
 * labelled or left out (a policy). A deterministic share of the curator-decided pairs is held out (never trained
 * on by default) so curator-agreement.ts can measure, per model generation, whether retraining agrees with the
 * curators more on pairs no generation learned from.
 */
import crypto from 'node:crypto';

import { InputError } from '../errors';
import type { HumanDecision, Store } from '../store';
import type { PairInput } from './pairs-file';

export type UndecidedPolicy = 'as-labelled' | 'exclude';
export const UNDECIDED_POLICIES: readonly UndecidedPolicy[] = ['as-labelled', 'exclude'];

/** Share of curator-decided (keep / swap) pairs held out for the "does it get better?" measurement. */
export const CURATOR_HOLDOUT_FRACTION = 0.2;

/**
 * Whether a pair belongs to the curator hold-out: sha256 of its store id, so membership depends on nothing else
 * (deciding more pairs never moves an already-decided pair between the sides).
 */
export function inCuratorHoldout(pairId: number, fraction = CURATOR_HOLDOUT_FRACTION): boolean {
  const h = crypto.createHash('sha256').update(`sparserm-curator-holdout\u0000${pairId}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}

export interface LabelCounts {
  /** Pairs trained on with their original orientation (kept, or undecided under 'as-labelled'). */
  asLabelled: number;
  /** Pairs trained on with chosen and rejected exchanged (curator swap). */
  swapped: number;
  /** Pairs left out: dropped, undecided under 'exclude', or held out. */
  excluded: number;
}

/** The point of the decision history a model learned from (recorded in its manifest). */
export interface DecisionPoint {
  /** Highest decision-group / decision id of the dataset at training time (null: no decision yet). */
  groupId: number | null;
  decisionId: number | null;
  undecided: UndecidedPolicy;
  /** Whether the curator hold-out was left out of training. */
  holdOut: boolean;
  holdOutFraction: number;
  asLabelled: number;
  swapped: number;
  excluded: number;
  excludedBy: { dropped: number; undecided: number; heldOut: number };
}

export interface LabelOptions {
  undecided?: UndecidedPolicy;
  /** Leave the curator hold-out out of training (default true). */
  holdOut?: boolean;
  holdOutFraction?: number;
}

export interface LabelledPair {
  pairId: number;
  pair: PairInput;
  decision: HumanDecision | null;
}

/** Pure: decisions → the pairs to train on (swaps applied) and the counts. Order of `rows` is kept. */
export function applyDecisions(rows: LabelledPair[], opts: LabelOptions = {}): { pairs: PairInput[]; pairIds: number[]; counts: LabelCounts; excludedBy: DecisionPoint['excludedBy'] } {
  const undecided = opts.undecided ?? 'as-labelled';
  if (!UNDECIDED_POLICIES.includes(undecided)) throw new InputError({ field: 'undecided', expected: UNDECIDED_POLICIES.join(' or '), got: JSON.stringify(undecided) });
  const holdOut = opts.holdOut ?? true;
  const fraction = opts.holdOutFraction ?? CURATOR_HOLDOUT_FRACTION;
  const pairs: PairInput[] = [];
  const pairIds: number[] = [];
  const counts: LabelCounts = { asLabelled: 0, swapped: 0, excluded: 0 };
  const excludedBy = { dropped: 0, undecided: 0, heldOut: 0 };
  for (const r of rows) {
    const d = r.decision;
    if (d === 'drop') excludedBy.dropped++;
    else if (d === null && undecided === 'exclude') excludedBy.undecided++;
    else if (d !== null && holdOut && inCuratorHoldout(r.pairId, fraction)) excludedBy.heldOut++;
    else {
      const swap = d === 'swap';
      pairs.push(swap ? { ...r.pair, chosen: r.pair.rejected, rejected: r.pair.chosen } : r.pair);
      pairIds.push(r.pairId);
      counts[swap ? 'swapped' : 'asLabelled']++;
      continue;
    }
    counts.excluded++;
  }
  return { pairs, pairIds, counts, excludedBy };
}

export interface DecisionTrainingSet {
  datasetId: number;
  name: string;
  pairs: PairInput[];
  pairIds: number[];
  point: DecisionPoint;
}

/** A store dataset's pairs as the curators' decisions label them, with the history point they were read at. */
export function decisionTrainingSet(store: Store, dataset: string | number, opts: LabelOptions = {}): DecisionTrainingSet {
  const ds = store.datasets.resolve(dataset);
  // One read transaction: the pairs and the history point are one consistent snapshot.
  return store.db.transaction(() => {
    const rows: LabelledPair[] = [];
    for (const p of store.pairs.iterate({ datasetId: ds.id })) {
      rows.push({ pairId: p.id, decision: p.humanDecision, pair: { id: p.externalId ?? String(p.id), prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, source: p.source ?? undefined } });
    }
    if (rows.length === 0) throw new InputError({ field: 'dataset', expected: 'a dataset with pairs', got: `"${ds.name}" is empty` });
    const last = store.db
      .prepare('SELECT max(g.id) AS g, max(d.id) AS d FROM decision_groups g LEFT JOIN decisions d ON d.group_id = g.id WHERE g.dataset_id = ?')
      .get(ds.id) as { g: number | null; d: number | null };
    const res = applyDecisions(rows, opts);
    if (res.pairs.length < 2) {
      throw new InputError({ field: 'dataset', expected: `at least 2 pairs left to train on after the curators' decisions`, got: `${res.pairs.length} (${res.excludedBy.dropped} dropped, ${res.excludedBy.undecided} undecided left out, ${res.excludedBy.heldOut} held out)` });
    }
    return {
      datasetId: ds.id,
      name: ds.name,
      pairs: res.pairs,
      pairIds: res.pairIds,
      point: {
        groupId: last.g,
        decisionId: last.d,
        undecided: opts.undecided ?? 'as-labelled',
        holdOut: opts.holdOut ?? true,
        holdOutFraction: opts.holdOutFraction ?? CURATOR_HOLDOUT_FRACTION,
        ...res.counts,
        excludedBy: res.excludedBy,
      },
    };
  })();
}
