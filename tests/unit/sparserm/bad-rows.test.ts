/**
 * Rows whose text the checkpoint's chat template refuses are skipped and reported, and the job goes on with the
 * rest: training, evaluation, scoring into the store, and `sparserm score --json`. The checkpoint here is the demo
 * kit's with a template that raises on "REFUSE-ME" (Gemma's own template refuses no text once the turns are shaped).
 * Control-token strings ("<end_of_turn>", "<start_of_turn>") are NOT a reason: they are encoded as text and counted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { importFile } from '../../../main/engine/data';
import { openStore, type Store } from '../../../main/engine/store';
import { readPairsJsonl, type PairInput } from '../../../main/engine/sparserm/pairs-file';
import { evaluateRewardModel, scoreDatasetIntoStore, scorePairs, trainRewardModel, type SkippedPair } from '../../../main/engine/sparserm/service';
import { dataDir, repoRoot, tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-badrows-');
process.env.SPARSERM_HOME = home;
const cacheRoot = path.join(home, 'features');

let kit: DemoKit;
let all: PairInput[];
let good: PairInput[];
const BAD_RESPONSE = 7; // its chosen response holds text the template refuses
const BAD_PROMPT = 20; // its prompt does
const CONTROL = 30; // its prompt and chosen response spell control tokens: kept, encoded as text
let checkpoint: string;

beforeAll(async () => {
  kit = await ensureDemoKit();
  all = readPairsJsonl(path.join(dataDir, 'truthfulqa', 'pairs.jsonl')).slice(0, 60).map((p, i) => ({ ...p, id: `tqa-${i}` }));
  all[BAD_RESPONSE] = { ...all[BAD_RESPONSE], chosen: `${all[BAD_RESPONSE].chosen} REFUSE-ME` };
  all[BAD_PROMPT] = { ...all[BAD_PROMPT], prompt: `REFUSE-ME ${all[BAD_PROMPT].prompt}` };
  all[CONTROL] = { ...all[CONTROL], prompt: `<start_of_turn>user\n${all[CONTROL].prompt}`, chosen: `${all[CONTROL].chosen} <end_of_turn>` };
  checkpoint = path.join(home, 'strict-checkpoint');
  fs.mkdirSync(checkpoint);
  for (const f of fs.readdirSync(kit.checkpoint)) fs.copyFileSync(path.join(kit.checkpoint, f), path.join(checkpoint, f));
  const cfgFile = path.join(checkpoint, 'tokenizer_config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const refuse = "{% for m in messages %}{% if 'REFUSE-ME' in m['content'] %}{{ raise_exception('this template refuses REFUSE-ME') }}{% endif %}{% endfor %}";
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, chat_template: refuse + cfg.chat_template }));
  good = all.filter((_, i) => i !== BAD_RESPONSE && i !== BAD_PROMPT);
}, 300_000);

const expectReasons = (skipped: SkippedPair[]) => {
  expect(skipped.map((s) => [s.index, s.id])).toEqual([[BAD_RESPONSE, `tqa-${BAD_RESPONSE}`], [BAD_PROMPT, `tqa-${BAD_PROMPT}`]]);
  expect(skipped[0].reason).toMatch(/^chosen response: expected a conversation the chat template accepts .*, got "this template refuses REFUSE-ME"$/);
  // A refused prompt fails both responses; the pair is reported once.
  expect(skipped[1].reason).toMatch(/^prompt: expected a conversation the chat template accepts .*, got "this template refuses REFUSE-ME"$/);
};

describe('bad rows are skipped, reported, and the rest goes on', () => {
  let modelDir: string;

  it('trains and evaluates on the other pairs: the same model as training on them alone', async () => {
    const warnings: string[] = [];
    const withBad = await trainRewardModel({ checkpoint, layer: kit.layer, sae: kit.sae, pairs: all, k: 8, outDir: path.join(home, 'with-bad'), cacheRoot, ep: 'cpu', onWarning: (w) => warnings.push(w) });
    expectReasons(withBad.skipped);
    expect(warnings.filter((w) => w.startsWith('skipped pair'))).toEqual([
      `skipped pair #${BAD_RESPONSE} (id tqa-${BAD_RESPONSE}): ${withBad.skipped[0].reason}`,
      `skipped pair #${BAD_PROMPT} (id tqa-${BAD_PROMPT}): ${withBad.skipped[1].reason}`,
    ]);
    const t = withBad.manifest.training;
    expect(t.pairs.train + t.pairs.val + t.pairs.test).toBe(good.length);
    expect(t.skippedPairs).toBe(2);
    // Control strings: one in the prompt (counted for both of its responses) and one in the chosen response.
    expect(withBad.controlStrings).toBe(3);
    const alone = await trainRewardModel({ checkpoint, layer: kit.layer, sae: kit.sae, pairs: good, k: 8, outDir: path.join(home, 'alone'), cacheRoot, ep: 'cpu' });
    expect(alone.skipped).toEqual([]);
    expect(withBad.manifest.selected).toEqual(alone.manifest.selected);
    expect(withBad.manifest.metrics).toEqual(alone.manifest.metrics);
    modelDir = withBad.modelDir;

    // Evaluation on the same data reports the same held-out split as training did.
    const ev = await evaluateRewardModel({ modelDir, pairs: all, baselines: false, cacheRoot, ep: 'cpu' });
    expectReasons(ev.skipped);
    expect(ev.controlStrings).toBe(3);
    expect(ev.evaluatedOn).toBe('test-split');
    expect(ev.n).toBe(withBad.manifest.metrics.test.n);
    expect(ev.accuracy).toBeCloseTo(withBad.manifest.metrics.test.accuracy!, 6);
  }, 300_000);

  it('scores a store dataset with one bad row: the others are scored, the bad one named by pair id', async () => {
    const db = path.join(home, 'bad.db');
    const file = path.join(home, 'pairs.jsonl');
    fs.writeFileSync(file, all.map((p) => JSON.stringify({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected })).join('\n') + '\n');
    const store: Store = openStore(db);
    let badIds: number[];
    try {
      await importFile(store, file, { dataset: 'with-bad-rows', format: 'standard' });
      const ds = store.datasets.byName('with-bad-rows')!;
      const ids = [...store.pairs.iterate({ datasetId: ds.id })].map((p) => p.id);
      expect(ids).toHaveLength(all.length);
      badIds = [ids[BAD_RESPONSE], ids[BAD_PROMPT]];
      const r = await scoreDatasetIntoStore({ store, dataset: 'with-bad-rows', modelDir, cacheRoot, ep: 'cpu' });
      expect(r.pairs).toBe(good.length);
      expect(r.skipped.map((s) => s.pairId)).toEqual(badIds);
      expect(r.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/^chosen response: .*REFUSE-ME/), expect.stringMatching(/^prompt: .*REFUSE-ME/)]);
      expect(r.controlStrings).toBe(3);
      expect(store.runs.score(r.runId, ids[CONTROL])).toBeDefined();
      expect(store.runs.get(r.runId).status).toBe('done');
      expect(store.runs.scoreCount(r.runId)).toBe(good.length);
      for (const id of badIds) expect(store.runs.score(r.runId, id)).toBeUndefined();
      // The stored scores are those of the good pairs scored on their own.
      const direct = await scorePairs({ modelDir, pairs: good, cacheRoot, ep: 'cpu' });
      const stored = ids.filter((id) => !badIds.includes(id)).map((id) => store.runs.score(r.runId, id)!.margin);
      stored.forEach((m, i) => expect(m).toBeCloseTo(direct[i].margin, 5));
    } finally {
      store.close();
    }

    // The CLI: the skipped pairs in --json, one line each on stderr, exit 0.
    const cli = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'score', '--dataset', 'with-bad-rows', '--model', modelDir, '--db', db, '--ep', 'cpu', '--json'], {
      env: { ...process.env, SPARSERM_HOME: home },
      encoding: 'utf8',
    });
    expect(cli.status).toBe(0);
    const out = JSON.parse(cli.stdout) as { pairs: number; skipped: SkippedPair[]; controlStrings: number };
    expect(out.pairs).toBe(good.length);
    expect(out.controlStrings).toBe(3);
    expect(out.skipped.map((s) => s.pairId)).toEqual(badIds!);
    for (const id of badIds!) expect(cli.stderr).toMatch(new RegExp(`skipped pair ${id}: `));
  }, 300_000);

  it('sparserm score --data lists the skipped pairs in --json and scores the rest', () => {
    const file = path.join(home, 'file-pairs.jsonl');
    fs.writeFileSync(file, all.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const cli = spawnSync('node', [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'score', '--data', file, '--model', modelDir, '--ep', 'cpu', '--json'], { env: { ...process.env, SPARSERM_HOME: home }, encoding: 'utf8' });
    expect(cli.status).toBe(0);
    const out = JSON.parse(cli.stdout) as { n: number; pairs: { index: number; controlStrings?: number }[]; skipped: SkippedPair[]; controlStrings: number };
    expect(out.n).toBe(good.length);
    expect(out.pairs.map((p) => p.index)).not.toContain(BAD_RESPONSE);
    expect(out.pairs.find((p) => p.index === CONTROL)?.controlStrings).toBe(3);
    expect(out.controlStrings).toBe(3);
    expectReasons(out.skipped);
    expect(cli.stderr).toContain(`skipped pair #${BAD_RESPONSE} (id tqa-${BAD_RESPONSE}): chosen response`);
  }, 120_000);
});
