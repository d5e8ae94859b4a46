/** `train --from-decisions`: the flags, the pairs as the curators' decisions label them, and how the result reads. */
import { InputError } from '../../engine/errors';
import { openStore, type Store } from '../../engine/store';
import { decisionTrainingSet, UNDECIDED_POLICIES, type DecisionPoint, type LabelOptions, type UndecidedPolicy } from '../../engine/sparserm/decision-labels';
import type { PairInput } from '../../engine/sparserm/service';

interface Flags {
  dataset?: string;
  data?: string;
  db?: string;
  fromDecisions?: boolean;
  undecided?: string;
  includeHeldOut?: boolean;
}

/** The labelling options, or undefined without --from-decisions (its companion flags are refused alone). */
export function decisionOptions(o: Flags): LabelOptions | undefined {
  if (!o.fromDecisions) {
    for (const [flag, v] of [['--undecided', o.undecided], ['--include-held-out', o.includeHeldOut]] as const) {
      if (v !== undefined) throw new InputError({ field: flag, expected: `${flag} only together with --from-decisions`, got: 'no --from-decisions' });
    }
    return undefined;
  }
  if (!o.dataset || o.data) throw new InputError({ field: '--from-decisions', expected: '--dataset NAME (decisions live in the store), not --data', got: o.data ? '--data' : 'no --dataset' });
  const undecided = (o.undecided ?? 'as-labelled') as UndecidedPolicy;
  if (!UNDECIDED_POLICIES.includes(undecided)) throw new InputError({ field: '--undecided', expected: UNDECIDED_POLICIES.join(' or '), got: JSON.stringify(o.undecided) });
  return { undecided, holdOut: !o.includeHeldOut };
}

export function loadDecisionPairs(o: Flags, opts: LabelOptions): { pairs: PairInput[]; store: Store; datasetName: string; pairIds: number[]; decisionPoint: DecisionPoint } {
  const store = openStore(o.db);
  try {
    const set = decisionTrainingSet(store, o.dataset!, opts);
    return { pairs: set.pairs, store, datasetName: set.name, pairIds: set.pairIds, decisionPoint: set.point };
  } catch (err) {
    store.close();
    throw err;
  }
}

/** The history point of loadDecisionPairs' result, for the train request (nothing for plain pairs). */
export const decisionPointOf = (data: object): { decisionPoint?: DecisionPoint } => ('decisionPoint' in data ? { decisionPoint: data.decisionPoint as DecisionPoint } : {});

export const labelsView = (d: DecisionPoint) => ({ asLabelled: d.asLabelled, swapped: d.swapped, excluded: d.excluded, excludedBy: d.excludedBy, decisionGroup: d.groupId, decisionId: d.decisionId, undecided: d.undecided, holdOut: d.holdOut });

export function decisionLine(d: DecisionPoint): string {
  const at = d.groupId === null ? 'no decisions yet' : `decision history up to group #${d.groupId}`;
  return `labels from the curators' decisions (${at}): ${d.asLabelled} as labelled, ${d.swapped} swapped, ${d.excluded} left out (${d.excludedBy.dropped} dropped, ${d.excludedBy.undecided} undecided, ${d.excludedBy.heldOut} held out)`;
}
