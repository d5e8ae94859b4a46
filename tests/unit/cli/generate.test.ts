import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { trainRewardModel } from '../../../main/engine/sparserm/service';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { openStore } from '../../../main/engine/store';
import { JobRunner } from '../../../main/engine/jobs';
import { openPolicySource, registerGenerateJob } from '../../../main/engine/generate/workflow';
import { runCli } from '../../helpers/cli';
import { tempDir } from '../../helpers/paths';

// The real local policy (the demo kit's checkpoint through the KV-cache decoder) and a real SparseRM model on it.
const home = tempDir('sparserm-cli-gen-');
process.env.SPARSERM_HOME = home;
const db = path.join(home, 'db.sqlite');
let kit: DemoKit;
let rm: string;
let prompts: string;

beforeAll(async () => {
  kit = await ensureDemoKit();
  const t = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs: readPairsJsonl(kit.dataset).slice(0, 60), k: 8, maxEpochs: 5, outDir: path.join(home, 'rm'), ep: 'cpu' });
  rm = t.modelDir;
  prompts = path.join(home, 'prompts.txt');
  fs.writeFileSync(prompts, 'Is the moon made of cheese?\nWhat happens if you crack your knuckles?\nDo we only use 10% of our brains?\n');
}, 300_000);

const gen = (...args: string[]) => runCli('generate', '--db', db, '--checkpoint', kit.checkpoint, '--ep', 'cpu', '--max-new-tokens', '6', ...args);

describe('sparserm generate', () => {
  it('two rounds on the demo checkpoint: candidates scored while decoding, instructed pairs filtered by SparseRM, lineage in datasets and the export', async () => {
    const runs = backboneRunCounter();
    const r1 = await gen('--prompts', prompts, '--n', '2', '--recipe', 'instructed', '--preset', 'truthfulqa', '--reward-model', rm, '--seed', '5', '--name', 'tqa-r1', '--json');
    expect(r1.code, r1.err).toBe(0);
    const j1 = JSON.parse(r1.out);
    expect(j1).toMatchObject({ dataset: 'tqa-r1', round: 1, recipe: 'instructed', prompts: 3, candidates: 12 });
    // Up to one pair per candidate index and prompt; a pair of two identical answers is left out.
    expect(j1.pairs).toBeGreaterThan(0);
    expect(j1.pairs).toBeLessThanOrEqual(6);
    expect(j1.kept + j1.dropped).toBe(j1.pairs);
    expect(j1.tokensPerSecond).toBeGreaterThan(0);
    expect(r1.err).toMatch(/tokens\/s/);
    // The policy is the reward model's backbone: features were captured while decoding, no second backbone pass.
    expect(backboneRunCounter()).toBe(runs);

    const r2 = await gen('--next-round', 'tqa-r1', '--json');
    expect(r2.code, r2.err).toBe(0);
    const j2 = JSON.parse(r2.out);
    expect(j2).toMatchObject({ dataset: 'tqa-r2', round: 2, recipe: 'instructed', prompts: 3 });

    const store = openStore(db, { readonly: true });
    try {
      const ds2 = store.datasets.byName('tqa-r2')!;
      const ds1 = store.datasets.byName('tqa-r1')!;
      expect(store.generations.lineage(ds2.id)).toMatchObject({ round: 2, parentDatasetId: ds1.id, recipe: 'instructed', policyLabel: path.resolve(kit.checkpoint) });
      for (const c of store.generations.candidates(j2.runId)) {
        expect(c.score).not.toBeNull();
        expect(c.tokens!.length).toBeLessThanOrEqual(6);
      }
      // Verdicts are the paper's rule on the label given by construction.
      const filter = store.runs.currentFilter(ds1.id)!;
      for (const p of store.pairs.iterate({ datasetId: ds1.id })) {
        const s = store.runs.score(filter.runId, p.id)!;
        expect(p.autoVerdict).toBe(s.scoreChosen < s.scoreRejected ? 'drop' : 'keep');
        expect(p.chosen).not.toBe(p.rejected);
      }
    } finally {
      store.close();
    }

    const list = await runCli('datasets', '--db', db);
    expect(list.out).toMatch(new RegExp(`tqa-r2\\t${j2.pairs}\\t.*round 2 instructed by .* from #\\d+`));
    const out = path.join(home, 'r2.jsonl');
    const ex = await runCli('export', '--db', db, '--dataset', 'tqa-r2', '--out', out, '--json');
    expect(ex.code, ex.err).toBe(0);
    const prov = JSON.parse(fs.readFileSync(out + '.provenance.json', 'utf8'));
    expect(prov.lineage).toMatchObject({ round: 2, recipe: 'instructed', parent_dataset: { name: 'tqa-r1' }, policy: path.resolve(kit.checkpoint) });
    expect(fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.trim()).length).toBe(j2.kept);
  }, 300_000);

  it('best-worst over a dataset\'s prompts; --ids continues raw token ids', async () => {
    const r = await gen('--dataset', 'tqa-r1', '--n', '3', '--recipe', 'best-worst', '--reward-model', rm, '--temperature', '1.2', '--top-k', '50', '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ recipe: 'best-worst', prompts: 3, candidates: 9 });
    expect(j.dropped).toBe(0); // best vs worst by SparseRM: every pair agrees with SparseRM by construction
    const ids = await runCli('generate', '--checkpoint', kit.checkpoint, '--ids', '2,10,11', '--temperature', '0', '--max-new-tokens', '3', '--ep', 'cpu', '--json');
    expect(ids.code, ids.err).toBe(0);
    expect(JSON.parse(ids.out).tokens.length).toBeLessThanOrEqual(3);
  }, 300_000);

  it('--resume finishes a job that died mid-run without generating its finished prompts again', async () => {
    // A first attempt whose policy "crashes" on its second prompt (the real decoder underneath).
    const store = openStore(db);
    let jobId: string;
    let calls = 0;
    try {
      const runner = new JobRunner(store);
      registerGenerateJob(runner, async (spec, ctx) => {
        const real = await openPolicySource(spec, ctx);
        return { ...real, description: real.description, generate: (req) => (++calls === 2 ? Promise.reject(new Error('simulated crash')) : real.generate(req)), optionLogprobs: real.optionLogprobs.bind(real), close: () => real.close() };
      });
      const h = runner.start('generate', { prompts: { file: prompts }, policy: { kind: 'local', checkpoint: kit.checkpoint, ep: 'cpu' }, sampling: { temperature: 1, topP: 1, topK: 0, seed: 4, maxNewTokens: 6 }, n: 2, recipe: 'best-worst', rewardModel: rm, name: 'resumed' });
      jobId = h.id;
      await expect(h.result).rejects.toThrow(/simulated crash/);
      expect(store.generations.byJob(jobId)!.promptsDone).toBe(1);
    } finally {
      store.close();
    }
    const before = openStore(db, { readonly: true });
    const runId = before.generations.byJob(jobId)!.id;
    const first = before.generations.candidates(runId, { promptIndex: 0 });
    before.close();
    const r = await runCli('generate', '--db', db, '--resume', jobId, '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ runId, dataset: 'resumed', prompts: 3, candidates: 6 });
    const after = openStore(db, { readonly: true });
    try {
      // Prompt 0's rows are the ones from before the crash (same ids): it was not generated again.
      expect(after.generations.candidates(runId, { promptIndex: 0 }).map((c) => [c.id, c.text])).toEqual(first.map((c) => [c.id, c.text]));
      expect(after.generations.get(runId)).toMatchObject({ status: 'done', promptsDone: 3 });
    } finally {
      after.close();
    }
  }, 300_000);

  it('refuses bad flags with exit code 2 naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--prompts', prompts, '--reward-model', rm], /--recipe/],
      [['--prompts', prompts, '--dataset', 'tqa-r1', '--recipe', 'margin', '--reward-model', rm], /--prompts\/--dataset/],
      [['--prompts', prompts, '--recipe', 'best-worst', '--reward-model', 'no-such-model'], /--reward-model/],
      [['--prompts', prompts, '--recipe', 'best-worst', '--reward-model', rm, '--n', '1'], /at least 2 candidates/],
      [['--prompts', prompts, '--recipe', 'instructed', '--reward-model', rm, '--preset', 'nope'], /truthfulqa or saferlhf/],
      [['--prompts', prompts, '--recipe', 'best-worst', '--reward-model', rm, '--top-p', '2'], /--top-p/],
      [['--prompts', prompts, '--recipe', 'best-worst', '--reward-model', rm, '--endpoint', 'http://127.0.0.1:9'], /--checkpoint\/--endpoint/],
      [['--next-round', 'nope'], /nope/],
    ];
    for (const [args, msg] of cases) {
      const r = await gen(...args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(msg);
    }
  }, 120_000);
});
