import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';

import { importLabels } from '../../../main/engine/data';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';

// Rows shaped like Neuronpedia's explanation export (index as a string, layer = SAE source id).
const rows = [
  { modelId: 'gemma-2-9b-it', layer: '31-gemmascope-res-16k', index: '86761', description: 'summarising statements', explanationModelName: 'gpt-4o-mini', typeName: 'oai_token-act-pair' },
  { modelId: 'gemma-2-9b-it', layer: '31-gemmascope-res-16k', index: '13277', description: ' negation / disagreement ', explanationModelName: 'gpt-4o-mini' },
  { modelId: 'gemma-2-9b-it', layer: '31-gemmascope-res-16k', index: '13277', description: 'saying no', scores: [{ value: 0.9 }] },
  { modelId: 'gemma-2-9b-it', layer: '20-gemmascope-res-16k', index: 4128, description: 'wrong, untrue remarks' },
  { modelId: 'gemma-2-9b-it', layer: '31-gemmascope-res-16k', index: 'x', description: 'bad index' },
];

describe('Neuronpedia labels', () => {
  it('imports JSON arrays, JSONL and .gz; look-up by (model, sae, indices), best label first', async () => {
    const dir = tempDir();
    const s = openStore(':memory:');
    fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(rows));
    const r = await importLabels(s, path.join(dir, 'a.json'));
    expect(r.imported).toBe(4);
    expect(r.skipped).toEqual([{ line: 5, reason: expect.stringMatching(/field "index": expected a latent index/) }]);
    const found = s.labels.lookup('gemma-2-9b-it', '31-gemmascope-res-16k', [86761, 13277, 4128, 1]);
    expect(found.get(86761)![0]!.description).toBe('summarising statements');
    expect(found.get(13277)!.map((l) => l.description)).toEqual(['saying no', 'negation / disagreement']); // scored first
    expect(found.has(4128)).toBe(false); // other SAE
    expect(found.has(1)).toBe(false);
    expect(s.labels.best('gemma-2-9b-it', '20-gemmascope-res-16k', [4128]).get(4128)).toBe('wrong, untrue remarks');

    fs.writeFileSync(path.join(dir, 'b.jsonl.gz'), zlib.gzipSync(rows.slice(0, 2).map((x) => JSON.stringify({ index: x.index, description: x.description })).join('\n')));
    const g = await importLabels(s, path.join(dir, 'b.jsonl.gz'), { model: 'gemma-2-2b', sae: '13-gemmascope-res-16k' });
    expect(g.imported).toBe(2);
    expect(s.labels.lookup('gemma-2-2b', '13-gemmascope-res-16k', [86761]).get(86761)![0]!.sourceFile).toBe(path.join(dir, 'b.jsonl.gz'));
    expect(s.labels.sets().map((x) => `${x.modelId}/${x.saeId}:${x.latents}`)).toEqual([
      'gemma-2-2b/13-gemmascope-res-16k:2',
      'gemma-2-9b-it/20-gemmascope-res-16k:1',
      'gemma-2-9b-it/31-gemmascope-res-16k:2',
    ]);
    // re-importing is idempotent
    await importLabels(s, path.join(dir, 'a.json'));
    expect(s.db.prepare('SELECT count(*) FROM latent_labels').pluck().get()).toBe(6);
  });

  it('rows without model/SAE need --model/--sae; a file with no valid row is an InputError', async () => {
    const dir = tempDir();
    const s = openStore(':memory:');
    fs.writeFileSync(path.join(dir, 'c.jsonl'), JSON.stringify({ index: 1, description: 'x' }) + '\n');
    await expect(importLabels(s, path.join(dir, 'c.jsonl'))).rejects.toThrow(/modelId.*--model/);
  });
});
