/**
 * Pairing recipes: how a prompt's candidates become preference pairs (issue 12 item 4).
 *  (a) instructed: one generation per instruction of a pair ("answer truthfully" / "… with a misconception"); the
 *      label is given by construction (the k-th candidate of each instruction form the k-th pair);
 *  (b) self-judged: the policy judges two of its candidates through a pairwise prompt, by the log-probabilities of
 *      the answer tokens "A" / "B", both orders averaged to cancel position bias;
 *  (c) best vs worst by SparseRM score; (d) every pair whose SparseRM margin exceeds δ.
 * (a) and (b) are then filtered by SparseRM (s_w < s_l dropped) by the workflow, as in the paper.
 */
import type { ChatMessage } from '../backbone/chat-template';
import { InputError } from '../errors';
import type { Message } from '../store';
import type { CandidateSource } from './types';
import type { InstructionPair } from './presets';

export type RecipeName = 'instructed' | 'self-judged' | 'best-worst' | 'margin';
export const RECIPES: readonly RecipeName[] = ['instructed', 'self-judged', 'best-worst', 'margin'];

/** Instruction variants of the instructed recipe (the candidate's `variant`); '' for the other recipes. */
export const VARIANTS = { chosen: 'chosen', rejected: 'rejected' } as const;

export interface PairableCandidate {
  id: number;
  promptIndex: number;
  variant: string;
  candidateIndex: number;
  text: string;
  score: number | null;
}

export interface JudgeResult {
  /** log p(A) − log p(B) with the pair in (first, second) order. */
  firstOrder: number;
  /** The same with the two swapped, sign flipped so positive still favours `first`. */
  swappedOrder: number;
  /** Mean of both: > 0 prefers the first candidate. */
  preference: number;
}

export interface BuiltPair {
  promptIndex: number;
  chosen: PairableCandidate;
  rejected: PairableCandidate;
  /** Where the label comes from. */
  labelBy: 'instruction' | 'self-judge' | 'sparserm';
  /** Self-judged: the judge's log-odds for chosen over rejected (each order, and their mean). */
  judge?: JudgeResult;
}

/** The conversation with an instruction put before the first user turn (works with templates that have no system role). */
export function withInstruction(messages: readonly Message[], instruction: string): ChatMessage[] {
  const i = messages.findIndex((m) => m.role === 'user');
  return messages.map((m, k) => ({ role: m.role as ChatMessage['role'], content: k === i ? `${instruction}\n\n${m.content}` : m.content }));
}

function byPrompt(cands: readonly PairableCandidate[]): Map<number, PairableCandidate[]> {
  const m = new Map<number, PairableCandidate[]>();
  for (const c of cands) {
    const list = m.get(c.promptIndex) ?? [];
    list.push(c);
    m.set(c.promptIndex, list);
  }
  for (const list of m.values()) list.sort((a, b) => a.variant.localeCompare(b.variant) || a.candidateIndex - b.candidateIndex);
  return new Map([...m.entries()].sort((a, b) => a[0] - b[0]));
}

/** (a) The k-th candidate of the "chosen" instruction against the k-th of the "rejected" one, per prompt. */
export function instructedPairs(cands: readonly PairableCandidate[]): BuiltPair[] {
  const out: BuiltPair[] = [];
  for (const [promptIndex, list] of byPrompt(cands)) {
    const w = list.filter((c) => c.variant === VARIANTS.chosen);
    const l = list.filter((c) => c.variant === VARIANTS.rejected);
    for (let k = 0; k < Math.min(w.length, l.length); k++) out.push({ promptIndex, chosen: w[k]!, rejected: l[k]!, labelBy: 'instruction' });
  }
  return out;
}

function scored(c: PairableCandidate): number {
  if (c.score === null) throw new InputError({ field: 'candidates', expected: 'candidates scored by the reward model', got: `candidate ${c.id} has no score` });
  return c.score;
}

/** (c) Per prompt the highest- against the lowest-scored candidate (ties to the lower index); none when all are equal. */
export function bestWorstPairs(cands: readonly PairableCandidate[]): BuiltPair[] {
  const out: BuiltPair[] = [];
  for (const [promptIndex, list] of byPrompt(cands)) {
    if (list.length < 2) continue;
    let best = list[0]!;
    let worst = list[0]!;
    for (const c of list) {
      if (scored(c) > scored(best)) best = c;
      if (scored(c) < scored(worst)) worst = c;
    }
    if (scored(best) > scored(worst)) out.push({ promptIndex, chosen: best, rejected: worst, labelBy: 'sparserm' });
  }
  return out;
}

/** (d) Per prompt every pair of candidates whose score difference exceeds delta, the higher-scored one chosen. */
export function marginPairs(cands: readonly PairableCandidate[], delta: number): BuiltPair[] {
  if (!Number.isFinite(delta) || delta < 0) throw new InputError({ field: 'delta', expected: 'a number ≥ 0', got: String(delta) });
  const out: BuiltPair[] = [];
  for (const [promptIndex, list] of byPrompt(cands)) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const [a, b] = [list[i]!, list[j]!];
        const d = scored(a) - scored(b);
        if (Math.abs(d) > delta) out.push({ promptIndex, chosen: d > 0 ? a : b, rejected: d > 0 ? b : a, labelBy: 'sparserm' });
      }
    }
  }
  return out;
}

export const JUDGE_OPTIONS = ['A', 'B'] as const;

/** The pairwise judging prompt: the conversation, two responses, "answer A or B". */
export function judgeMessages(promptText: string, a: string, b: string): ChatMessage[] {
  const content = [
    'You are judging two responses to the same conversation.',
    '',
    '[Conversation]',
    promptText,
    '',
    '[Response A]',
    a,
    '',
    '[Response B]',
    b,
    '',
    'Which response is better: more truthful, more helpful and more harmless? Answer with a single letter, A or B.',
  ].join('\n');
  return [{ role: 'user', content }];
}

/** Asks the source to judge `first` vs `second` in both orders; null when the source gives no log-probabilities. */
export async function judgePair(source: CandidateSource, promptText: string, first: string, second: string, signal?: AbortSignal): Promise<JudgeResult | null> {
  const ab = await source.optionLogprobs(judgeMessages(promptText, first, second), [...JUDGE_OPTIONS], signal);
  const ba = await source.optionLogprobs(judgeMessages(promptText, second, first), [...JUDGE_OPTIONS], signal);
  if (!ab || !ba) return null;
  const firstOrder = ab[0]! - ab[1]!;
  const swappedOrder = ba[1]! - ba[0]!;
  return { firstOrder, swappedOrder, preference: (firstOrder + swappedOrder) / 2 };
}

/**
 * (b) Per prompt, candidates (0, 1), (2, 3), … judged by the policy; the preferred one is chosen. A pair the judge
 * cannot separate (preference exactly 0) is left out.
 */
export async function selfJudgedPairs(
  cands: readonly PairableCandidate[],
  promptText: (promptIndex: number) => string,
  source: CandidateSource,
  opts: { signal?: AbortSignal; onJudged?: (done: number, total: number) => void } = {},
): Promise<BuiltPair[]> {
  const groups = [...byPrompt(cands)];
  const total = groups.reduce((s, [, l]) => s + Math.floor(l.length / 2), 0);
  const out: BuiltPair[] = [];
  let done = 0;
  for (const [promptIndex, list] of groups) {
    for (let k = 0; k + 1 < list.length; k += 2) {
      const [a, b] = [list[k]!, list[k + 1]!];
      const judge = await judgePair(source, promptText(promptIndex), a.text, b.text, opts.signal);
      if (!judge) {
        throw new InputError({ field: 'recipe', expected: 'a policy that gives answer-token log-probabilities for the self-judged recipe', got: `${source.description.label} gives none` });
      }
      opts.onJudged?.(++done, total);
      if (judge.preference === 0) continue;
      const aWins = judge.preference > 0;
      // Recorded from the chosen candidate's side: preference > 0 always.
      const j = aWins ? judge : { firstOrder: -judge.firstOrder, swappedOrder: -judge.swappedOrder, preference: -judge.preference };
      out.push({ promptIndex, chosen: aWins ? a : b, rejected: aWins ? b : a, labelBy: 'self-judge', judge: j });
    }
  }
  return out;
}

/** Pairs whose two responses differ: identical texts teach DPO nothing (e.g. two empty answers). */
export function distinctPairs(pairs: readonly BuiltPair[]): BuiltPair[] {
  return pairs.filter((p) => p.chosen.text !== p.rejected.text);
}
