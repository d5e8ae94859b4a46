import os from 'node:os';
import { InputError } from '../errors';
import type { Db } from './db';
import { buildPairWhere, PairFilterSchema, type PairFilter } from './pairs';
import { DecisionGroupRowSchema, DecisionRowSchema, now, type Decision, type DecisionAction, type DecisionGroup, type HumanDecision } from './rows';

export interface DecideOptions {
  actor?: string;
  /** Note to attach (required for action 'note'; optional with keep/drop/swap). */
  note?: string | null;
  description?: string;
}

export interface DecideResult {
  /** The history group, or null when nothing changed (every pair already had that decision). */
  group: DecisionGroup | null;
  changed: number;
}

/** One entry of a pair's human history with the kind of step that wrote it (a revert is an undo or a redo). */
export type HistoryKind = 'decide' | 'bulk' | 'note' | 'undo' | 'redo';
export type DecisionWithKind = Decision & { kind: HistoryKind };

export interface UndoState {
  canUndo: boolean;
  canRedo: boolean;
  /** The group an undo would revert / a redo would re-apply. */
  undoTarget: DecisionGroup | null;
  redoTarget: DecisionGroup | null;
}

export interface TimelineEntry {
  kind: 'auto' | 'human';
  at: string;
  /** Actor for human entries, reward-model id for automatic verdicts. */
  who: string;
  action: string;
  oldDecision: string | null;
  newDecision: string | null;
  note: string | null;
  runId: number | null;
  rewardModelId: string | null;
  rule: string | null;
  threshold: number | null;
  margin: number | null;
  filterId: number | null;
  decisionId: number | null;
  reverts: number | null;
}

export interface Agreement {
  /** Human decisions on pairs whose automatic verdict is keep or drop. */
  compared: number;
  agree: number;
  /** Share of those human decisions that agree with the verdict (swap counts as agreeing with drop). */
  agreementRate: number | null;
  /** Cohen's κ between verdict and human decision over the compared pairs (null when undefined). */
  kappa: number | null;
  /** Human decisions on pairs the rule left uncertain. */
  onUncertain: number;
  matrix: { autoKeep_humanKeep: number; autoKeep_humanDrop: number; autoDrop_humanKeep: number; autoDrop_humanDrop: number };
}

/**
 * The curators' decisions: an append-only history (table `decisions`, grouped in `decision_groups`) with the current
 * state cached on `pairs.human_decision` / `pairs.note`. Undo and redo append new groups whose entries restore the
 * state before the group they revert; the undo/redo stacks are recomputed by replaying the groups, so nothing is
 * ever updated or deleted in the history.
 */
export class DecisionsRepo {
  constructor(private readonly db: Db) {}

  /** Applies one action to the pairs matching `filter` (a single pair: `{datasetId, ids: [id]}`), as one group. */
  decide(filter: PairFilter, action: DecisionAction, opts: DecideOptions = {}): DecideResult {
    const f = PairFilterSchema.parse(filter);
    const actor = resolveActor(opts.actor);
    if (action === 'note' && (opts.note === undefined || opts.note === null)) {
      throw new InputError({ field: 'note', expected: 'a note text for action "note"' });
    }
    const newDecision: HumanDecision | null | undefined =
      action === 'keep' || action === 'drop' || action === 'swap' ? action : action === 'clear' ? null : undefined; // undefined = unchanged
    const noteGiven = opts.note !== undefined;
    const newNote = opts.note ?? null;
    const { sql, params } = buildPairWhere(f);
    return this.db.transaction((): DecideResult => {
      const decisionExpr = newDecision === undefined ? 'p.human_decision' : '?';
      const noteExpr = noteGiven ? '?' : 'p.note';
      const exprParams: unknown[] = [];
      if (newDecision !== undefined) exprParams.push(newDecision);
      if (noteGiven) exprParams.push(newNote);
      const g = this.db
        .prepare('INSERT INTO decision_groups(dataset_id, kind, action, actor, description, count, created_at) VALUES (?,?,?,?,?,0,?)')
        .run(f.datasetId, 'do', action, actor, opts.description ?? null, now());
      const groupId = Number(g.lastInsertRowid);
      const ts = now();
      const changed = this.db
        .prepare(
          `INSERT INTO decisions(group_id, pair_id, action, old_decision, new_decision, old_note, new_note, auto_verdict, filter_id, run_id, reward_model_id, threshold, actor, created_at)
           SELECT ?, p.id, ?, p.human_decision, ${decisionExpr}, p.note, ${noteExpr}, p.auto_verdict, p.filter_id, f.run_id, r.reward_model_id, f.threshold, ?, ?
           FROM pairs p LEFT JOIN filters f ON f.id = p.filter_id LEFT JOIN scoring_runs r ON r.id = f.run_id
           WHERE ${sql} AND NOT (p.human_decision IS ${decisionExpr} AND p.note IS ${noteExpr})
           ORDER BY p.id`,
        )
        .run(groupId, action, ...exprParams, actor, ts, ...params, ...exprParams).changes;
      if (changed === 0) {
        // Nothing to record: drop the empty group (it was created in this same transaction, never visible).
        this.db.prepare('DELETE FROM decision_groups WHERE id = ?').run(groupId);
        return { group: null, changed: 0 };
      }
      this.applyGroupToPairs(groupId);
      this.db.prepare('UPDATE decision_groups SET count = ? WHERE id = ?').run(changed, groupId);
      return { group: this.group(groupId), changed };
    }).immediate();
  }

  /** Convenience: one pair. */
  decidePair(pairId: number, action: DecisionAction, opts: DecideOptions = {}): DecideResult {
    const row = this.db.prepare('SELECT dataset_id FROM pairs WHERE id = ?').get(pairId) as { dataset_id: number } | undefined;
    if (!row) throw new InputError({ field: 'pair', expected: 'an existing pair id', got: String(pairId) });
    return this.decide({ datasetId: row.dataset_id, ids: [pairId] }, action, opts);
  }

  /**
   * Reverts this curator's latest not-yet-undone group in the dataset (each curator has their own undo stack, so
   * one curator's `u` never reverts another's work). Returns group null when there is nothing to undo.
   */
  undo(datasetId: number, actor?: string): DecideResult {
    const who = resolveActor(actor);
    const target = this.state(datasetId, who).undoTarget;
    if (!target) return { group: null, changed: 0 };
    return this.revert(datasetId, target, 'undo', who);
  }

  /** Re-applies this curator's latest undone group (only until they make a new decision, as in any editor). */
  redo(datasetId: number, actor?: string): DecideResult {
    const who = resolveActor(actor);
    const target = this.state(datasetId, who).redoTarget;
    if (!target) return { group: null, changed: 0 };
    return this.revert(datasetId, target, 'redo', who);
  }

  /** One curator's undo / redo stacks, recomputed by replaying their part of the append-only group log. */
  state(datasetId: number, actor?: string): UndoState {
    const groups = this.db
      .prepare('SELECT * FROM decision_groups WHERE dataset_id = ? AND actor = ? ORDER BY id')
      .all(datasetId, resolveActor(actor))
      .map((r) => DecisionGroupRowSchema.parse(r));
    const undo: DecisionGroup[] = [];
    let redo: DecisionGroup[] = [];
    for (const g of groups) {
      if (g.kind === 'do') {
        undo.push(g);
        redo = [];
      } else if (g.kind === 'undo') {
        undo.pop();
        redo.push(g);
      } else {
        redo.pop();
        undo.push(g);
      }
    }
    const undoTarget = undo.at(-1) ?? null;
    const redoTarget = redo.at(-1) ?? null;
    return { canUndo: undoTarget !== null, canRedo: redoTarget !== null, undoTarget, redoTarget };
  }

  /** A new group whose entries restore, for every entry of `target`, the state before it. */
  // Only entries whose pair still holds what `target` wrote are restored: a pair another curator changed since keeps
  // their decision (undo is per curator, so it must not silently overwrite someone else's later work).
  private revert(datasetId: number, target: DecisionGroup, kind: 'undo' | 'redo', who: string): DecideResult {
    return this.db.transaction((): DecideResult => {
      const g = this.db
        .prepare('INSERT INTO decision_groups(dataset_id, kind, target_group, action, actor, description, count, created_at) VALUES (?,?,?,?,?,?,0,?)')
        .run(datasetId, kind, target.id, target.action, who, `${kind} of #${target.id} (${target.action}, ${target.count} pairs)`, now());
      const groupId = Number(g.lastInsertRowid);
      const changed = this.db
        .prepare(
          `INSERT INTO decisions(group_id, pair_id, action, old_decision, new_decision, old_note, new_note, auto_verdict, filter_id, run_id, reward_model_id, threshold, reverts, actor, created_at)
           SELECT ?, p.id, 'revert', p.human_decision, d.old_decision, p.note, d.old_note, p.auto_verdict, p.filter_id, f.run_id, r.reward_model_id, f.threshold, d.id, ?, ?
           FROM decisions d JOIN pairs p ON p.id = d.pair_id LEFT JOIN filters f ON f.id = p.filter_id LEFT JOIN scoring_runs r ON r.id = f.run_id
           WHERE d.group_id = ? AND p.human_decision IS d.new_decision AND p.note IS d.new_note ORDER BY d.id`,
        )
        .run(groupId, who, now(), target.id).changes;
      this.applyGroupToPairs(groupId);
      this.db.prepare('UPDATE decision_groups SET count = ? WHERE id = ?').run(changed, groupId);
      return { group: this.group(groupId), changed };
    }).immediate();
  }

  private applyGroupToPairs(groupId: number): void {
    this.db
      .prepare('UPDATE pairs SET human_decision = d.new_decision, note = d.new_note FROM decisions d WHERE d.group_id = ? AND d.pair_id = pairs.id')
      .run(groupId);
  }

  group(groupId: number): DecisionGroup {
    const r = this.db.prepare('SELECT * FROM decision_groups WHERE id = ?').get(groupId);
    if (!r) throw new InputError({ field: 'group', expected: 'an existing decision group id', got: String(groupId) });
    return DecisionGroupRowSchema.parse(r);
  }

  groups(datasetId: number, opts: { limit?: number; beforeId?: number } = {}): DecisionGroup[] {
    return this.db
      .prepare('SELECT * FROM decision_groups WHERE dataset_id = ? AND id < ? ORDER BY id DESC LIMIT ?')
      .all(datasetId, opts.beforeId ?? Number.MAX_SAFE_INTEGER, opts.limit ?? 100)
      .map((r) => DecisionGroupRowSchema.parse(r));
  }

  /** Human history of one pair, oldest first. */
  history(pairId: number): Decision[] {
    return this.db.prepare('SELECT * FROM decisions WHERE pair_id = ? ORDER BY id').all(pairId).map((r) => DecisionRowSchema.parse(r));
  }

  /** Human history of one pair, oldest first, each entry with the kind of step (decide, bulk, note, undo, redo). */
  historyWithKind(pairId: number): DecisionWithKind[] {
    const rows = this.db
      .prepare('SELECT d.*, g.kind AS group_kind, g.count AS group_count FROM decisions d JOIN decision_groups g ON g.id = d.group_id WHERE d.pair_id = ? ORDER BY d.id')
      .all(pairId) as (Record<string, unknown> & { group_kind: 'do' | 'undo' | 'redo'; group_count: number })[];
    return rows.map((r) => {
      const d = DecisionRowSchema.parse(r);
      const kind: HistoryKind = r.group_kind !== 'do' ? r.group_kind : d.action === 'note' ? 'note' : r.group_count > 1 ? 'bulk' : 'decide';
      return { ...d, kind };
    });
  }

  /**
   * The full story of one pair, oldest first: automatic verdicts (one per filter application, kind 'auto', who =
   * the reward model) and human decisions (kind 'human'), with the run, reward model and τ of each.
   */
  timeline(pairId: number): TimelineEntry[] {
    return (
      this.db
        .prepare(
          `SELECT 'auto' AS kind, f.created_at AS at, r.reward_model_id AS who, 'verdict' AS action, NULL AS oldDecision, v.verdict AS newDecision,
                  NULL AS note, f.run_id AS runId, r.reward_model_id AS rewardModelId, f.rule AS rule, f.threshold AS threshold, v.margin AS margin,
                  f.id AS filterId, NULL AS decisionId, NULL AS reverts, 0 AS ord
           FROM verdicts v JOIN filters f ON f.id = v.filter_id JOIN scoring_runs r ON r.id = f.run_id WHERE v.pair_id = ?
           UNION ALL
           SELECT 'human', d.created_at, d.actor, d.action, d.old_decision, d.new_decision, d.new_note, d.run_id, d.reward_model_id, NULL, d.threshold,
                  NULL, d.filter_id, d.id, d.reverts, 1
           FROM decisions d WHERE d.pair_id = ?
           ORDER BY at, ord, filterId, decisionId`,
        )
        .all(pairId, pairId) as TimelineEntry[]
    );
  }

  entries(groupId: number): Decision[] {
    return this.db.prepare('SELECT * FROM decisions WHERE group_id = ? ORDER BY id').all(groupId).map((r) => DecisionRowSchema.parse(r));
  }

  /** Agreement between the current automatic verdicts and the curators' decisions on the same pairs. */
  agreement(datasetId: number): Agreement {
    const rows = this.db
      .prepare(
        `SELECT auto_verdict AS a, CASE human_decision WHEN 'keep' THEN 'keep' ELSE 'drop' END AS h, count(*) AS n
         FROM pairs WHERE dataset_id = ? AND human_decision IS NOT NULL AND auto_verdict IS NOT NULL GROUP BY a, h`,
      )
      .all(datasetId) as { a: 'keep' | 'drop' | 'uncertain'; h: 'keep' | 'drop'; n: number }[];
    const m = { autoKeep_humanKeep: 0, autoKeep_humanDrop: 0, autoDrop_humanKeep: 0, autoDrop_humanDrop: 0 };
    let onUncertain = 0;
    for (const r of rows) {
      if (r.a === 'uncertain') onUncertain += r.n;
      else if (r.a === 'keep') m[r.h === 'keep' ? 'autoKeep_humanKeep' : 'autoKeep_humanDrop'] += r.n;
      else m[r.h === 'keep' ? 'autoDrop_humanKeep' : 'autoDrop_humanDrop'] += r.n;
    }
    const n = m.autoKeep_humanKeep + m.autoKeep_humanDrop + m.autoDrop_humanKeep + m.autoDrop_humanDrop;
    const agree = m.autoKeep_humanKeep + m.autoDrop_humanDrop;
    return { compared: n, agree, agreementRate: n ? agree / n : null, kappa: cohensKappa(m), onUncertain, matrix: m };
  }
}

/** Cohen's κ for a 2×2 table; null when chance agreement is 1 (κ undefined) or there is no data. */
export function cohensKappa(m: Agreement['matrix']): number | null {
  const n = m.autoKeep_humanKeep + m.autoKeep_humanDrop + m.autoDrop_humanKeep + m.autoDrop_humanDrop;
  if (n === 0) return null;
  const po = (m.autoKeep_humanKeep + m.autoDrop_humanDrop) / n;
  const autoKeep = (m.autoKeep_humanKeep + m.autoKeep_humanDrop) / n;
  const humanKeep = (m.autoKeep_humanKeep + m.autoDrop_humanKeep) / n;
  const pe = autoKeep * humanKeep + (1 - autoKeep) * (1 - humanKeep);
  if (pe >= 1) return null;
  return (po - pe) / (1 - pe);
}

/** The OS user (what a decision is attributed to unless the curator set a name); SPARSERM_ACTOR overrides it. */
export function defaultActor(): string {
  if (process.env.SPARSERM_ACTOR) return process.env.SPARSERM_ACTOR;
  try {
    const u = os.userInfo().username;
    if (u) return u;
  } catch {
    // No passwd entry for this uid (some containers): fall back to the environment.
  }
  return process.env.USER || process.env.USERNAME || 'curator';
}

function resolveActor(actor: string | undefined): string {
  return actor?.trim() || defaultActor();
}
