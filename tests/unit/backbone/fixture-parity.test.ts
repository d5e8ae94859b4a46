import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openBackbone, type BackboneSession } from '../../../main/engine/backbone';
import { fixturesDir, tempDir } from '../../helpers/paths';

interface Reference {
  cases: Array<{ ids: number[]; resid_post: number[][][] }>;
}

/** Stated tolerance: max |ONNX − reference| over every token and dim, per block. */
const TOL = 1e-4;
const cacheDir = tempDir('sparserm-graphs-');
// The checkpoint digest memo goes under SPARSERM_CACHE: keep it inside the test's temp folder.
process.env.SPARSERM_CACHE = path.join(cacheDir, 'cache');

afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

for (const name of ['checkpoint-f32', 'checkpoint-bf16']) {
  const dir = path.join(fixturesDir, 'gemma2-tiny', name);
  const ref = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'gemma2-tiny', `${name}.reference.json`), 'utf8')) as Reference;

  describe(`gemma2-tiny ${name}: resid_post through the built ONNX graph`, () => {
    for (const layer of [0, 1, 2, 3]) {
      describe(`block ${layer}`, () => {
        let s: BackboneSession;
        beforeAll(async () => {
          s = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir });
        });
        afterAll(() => s.close());

        it(`every case, every token within ${TOL}`, async () => {
          expect(s.info.layer).toBe(layer);
          expect(s.info.hiddenSize).toBe(32);
          const out = await s.hidden(ref.cases.map((c) => c.ids));
          ref.cases.forEach((c, ci) => {
            const want = c.resid_post[layer];
            expect(out[ci].length).toBe(c.ids.length * 32);
            let maxErr = 0;
            for (let t = 0; t < c.ids.length; t++) for (let d = 0; d < 32; d++) maxErr = Math.max(maxErr, Math.abs(out[ci][t * 32 + d] - want[t][d]));
            expect(maxErr, `case ${ci}`).toBeLessThanOrEqual(TOL);
          });
        });

        it('padded batch = unpadded single runs, bit for bit on real positions', async () => {
          const seqs = ref.cases.map((c) => c.ids);
          seqs.push(seqs[0].slice(0, 2), [2]); // very short ones force padding next to the long cases
          const batched = await s.hidden(seqs, { maxBatchTokens: 1 << 20 });
          for (let i = 0; i < seqs.length; i++) {
            const [single] = await s.hidden([seqs[i]]);
            expect(Array.from(batched[i])).toEqual(Array.from(single));
          }
        });
      });
    }
  });
}
