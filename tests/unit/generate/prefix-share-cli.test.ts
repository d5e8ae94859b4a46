/**
 * `--no-prefix-share` on train and score: the demo kit trained and scored with and without prefix sharing gives the
 * same margins within 1e-4 (separate feature caches, so each path really computes its features).
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, expect, it } from 'vitest';

import { readDemoPairs } from '../../../main/engine/demo/demo-data';
import { runCli } from '../../helpers/cli';
import { tempDir } from '../../helpers/paths';

const work = tempDir('sparserm-prefix-cli-');
process.env.SPARSERM_HOME = path.join(work, 'home');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

it('score with and without --no-prefix-share gives the same margins', async () => {
  const data = path.join(work, 'pairs.jsonl');
  fs.writeFileSync(data, readDemoPairs().slice(0, 24).map((p) => JSON.stringify({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected })).join('\n') + '\n');
  process.env.SPARSERM_CACHE = path.join(work, 'cache-a');
  const t = await runCli('train', '--demo', '--data', data, '--k', '8', '--max-epochs', '2', '--no-prefix-share', '--out', path.join(work, 'rm'), '--ep', 'cpu', '--json');
  expect(t.code).toBe(0);
  const a = await runCli('score', '--model', path.join(work, 'rm'), '--data', data, '--no-prefix-share', '--ep', 'cpu', '--json');
  process.env.SPARSERM_CACHE = path.join(work, 'cache-b');
  const b = await runCli('score', '--model', path.join(work, 'rm'), '--data', data, '--ep', 'cpu', '--json');
  expect(a.code).toBe(0);
  expect(b.code).toBe(0);
  const margins = (r: { out: string }) => (JSON.parse(r.out) as { pairs: Array<{ margin: number }> }).pairs.map((p) => p.margin);
  const ma = margins(a);
  const mb = margins(b);
  expect(ma).toHaveLength(24);
  ma.forEach((m, i) => expect(Math.abs(m - mb[i])).toBeLessThan(1e-4));
});
