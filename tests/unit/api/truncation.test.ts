/**
 * Length policy through the API: a scored pair's truncation (scores.truncation_json, migration 6) reaches the
 * contract's PairDetail.truncation (validated by dispatch against the contract), null when nothing was cut, and
 * becomes the Review badge text.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createHandlers, type Handlers } from '../../../main/api/handlers';
import { dispatch } from '../../../main/api/dispatch';
import type { EngineOps } from '../../../main/api/engine-ops';
import type { PairDetail } from '../../../main/api/contract';
import { seed } from './seed';
import { truncationBadges } from '../../../renderer/src/truncation';

const noEngine = { explanation: () => null, listRuns: () => [] } as unknown as EngineOps;

/** getPair through dispatch (input and output validated against the contract). */
async function getPair(h: Handlers, pairId: number): Promise<PairDetail> {
  const r = await dispatch(h, 'getPair', { pairId: String(pairId) });
  expect(r.ok).toBe(true);
  return (r as { value: PairDetail }).value;
}

describe('PairDetail.truncation', () => {
  let h: Handlers;
  let ids: number[];
  let runId: number;

  beforeEach(() => {
    h = createHandlers({ dbPath: ':memory:', actor: 'tester', engine: () => noEngine });
    const s = seed(h.store, { n: 6, margins: (i) => i - 2 });
    ids = s.ids;
    runId = s.runId!;
  });
  afterEach(() => h.close());

  it('the scores table has the column; a cut pair carries it through getPair, an uncut one gets null', async () => {
    const cols = (h.store.db.prepare('PRAGMA table_info(scores)').all() as Array<{ name: string }>).map((c) => c.name);
    expect(cols).toContain('truncation_json');

    const truncation = { chosen: { prompt: 120, response: 0, original: 1144 }, rejected: { prompt: 120, response: 37, original: 1181 } };
    const before = h.store.runs.score(runId, ids[1])!;
    h.store.runs.addScores(runId, [{ pairId: ids[1], scoreChosen: before.scoreChosen, scoreRejected: before.scoreRejected, truncation }]);
    expect(h.store.runs.score(runId, ids[1])!.truncation).toEqual(truncation);
    expect(h.store.runs.score(runId, ids[2])!.truncation).toBeNull();

    const cut = await getPair(h, ids[1]);
    expect(cut.truncation).toEqual(truncation);
    const whole = await getPair(h, ids[2]);
    expect(whole.truncation).toBeNull();

    // What Review's pair view shows for them.
    expect(truncationBadges(cut.truncation).map((b) => b.text)).toEqual([
      'truncated (chosen): 120 tokens cut from prompt / 0 from response',
      'truncated (rejected): 120 tokens cut from prompt / 37 from response',
    ]);
    expect(truncationBadges(whole.truncation)).toEqual([]);
  });

  it('a stored truncation that is not the expected shape is refused when read, naming the column', () => {
    h.store.db.prepare('UPDATE scores SET truncation_json = ? WHERE run_id = ? AND pair_id = ?').run('{"chosen":{"prompt":-1}}', runId, ids[0]);
    expect(() => h.store.runs.score(runId, ids[0])).toThrow(/truncation_json/);
  });
});
