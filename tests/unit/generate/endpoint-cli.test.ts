/**
 * `sparserm generate --endpoint URL --model NAME` end to end against a REAL server process: `sparserm serve --policy`
 * on the demo kit's checkpoint (spawned), candidates over HTTP, scored locally by a SparseRM model (a second
 * backbone pass: an endpoint can't capture features), paired best-vs-worst into a dataset with lineage.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backboneRunCounter } from '../../../main/engine/backbone';
import { ensureDemoKit, type DemoKit } from '../../../main/engine/demo/kit';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { trainRewardModel } from '../../../main/engine/sparserm/service';
import { openStore } from '../../../main/engine/store';
import { startServe, type Served } from '../../e2e/harness';
import { runCli } from '../../helpers/cli';
import { tempDir } from '../../helpers/paths';

const home = tempDir('sparserm-endpoint-cli-');
process.env.SPARSERM_HOME = home;
const db = path.join(home, 'db.sqlite');
let kit: DemoKit;
let rm: string;
let served: Served;
let url: string;

beforeAll(async () => {
  kit = await ensureDemoKit();
  const t = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs: readPairsJsonl(kit.dataset).slice(0, 60), k: 8, maxEpochs: 5, outDir: path.join(home, 'rm'), ep: 'cpu' });
  rm = t.modelDir;
  const renderer = path.join(home, 'renderer');
  fs.mkdirSync(renderer);
  fs.writeFileSync(path.join(renderer, 'index.html'), '<!doctype html>');
  served = await startServe({ db: path.join(home, 'serve.sqlite'), args: ['--json', '--renderer', renderer, '--policy', kit.checkpoint, '--served-model-name', 'demo-policy', '--ep', 'cpu'] });
  const info = JSON.parse(served.url) as { url: string; token: string };
  url = `${info.url}v1`;
  // The key travels in the environment, never on the command line.
  process.env.SPARSERM_ENDPOINT_KEY = info.token;
}, 300_000);

afterAll(async () => {
  delete process.env.SPARSERM_ENDPOINT_KEY;
  await served?.stop();
});

describe('sparserm generate --endpoint', () => {
  it('generates over HTTP, scores locally and pairs best vs worst with the endpoint as the policy', async () => {
    const prompts = path.join(home, 'prompts.txt');
    fs.writeFileSync(prompts, 'Is the moon made of cheese?\nDo we only use 10% of our brains?\n');
    const runs = backboneRunCounter();
    const r = await runCli('generate', '--db', db, '--endpoint', url, '--model', 'demo-policy', '--prompts', prompts, '--n', '3', '--recipe', 'best-worst', '--reward-model', rm, '--temperature', '1', '--seed', '9', '--max-new-tokens', '5', '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ recipe: 'best-worst', prompts: 2, candidates: 6 });
    // Scored locally: the endpoint gives no features, so the backbone ran here.
    expect(backboneRunCounter()).toBeGreaterThan(runs);
    const store = openStore(db, { readonly: true });
    try {
      const run = store.generations.get(j.runId);
      expect(run.policyKind).toBe('endpoint');
      expect(run.policy).toBe(`${url}/chat/completions#demo-policy`);
      const cands = store.generations.candidates(j.runId);
      expect(cands).toHaveLength(6);
      for (const c of cands) {
        expect(c.tokens!.length).toBeGreaterThan(0);
        expect(c.tokens!.length).toBeLessThanOrEqual(5);
        expect(c.logprob).toBeLessThan(0);
        expect(c.score).not.toBeNull();
      }
    } finally {
      store.close();
    }
  }, 300_000);

  it('a wrong key is a bad-input error naming the key', async () => {
    process.env.SPARSERM_ENDPOINT_KEY = 'wrong';
    try {
      const prompts = path.join(home, 'one.txt');
      fs.writeFileSync(prompts, 'Why is the sky blue?\n');
      const r = await runCli('generate', '--db', db, '--endpoint', url, '--model', 'demo-policy', '--prompts', prompts, '--n', '2', '--recipe', 'best-worst', '--reward-model', rm, '--json');
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/apiKey/);
    } finally {
      process.env.SPARSERM_ENDPOINT_KEY = JSON.parse(served.url).token;
    }
  }, 120_000);
});
