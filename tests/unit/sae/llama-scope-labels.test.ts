import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';

import { importLabels } from '../../../main/engine/data';
import { llamaScopeNeuronpediaIds } from '../../../main/engine/sae';
import { openStore } from '../../../main/engine/store';
import { tempDir } from '../../helpers/paths';

describe('Neuronpedia labels of Llama Scope SAEs', () => {
  it('a bulk export for llama3.1-8b / 15-llamascope-res-32k and -131k imports and is found by those ids', async () => {
    const dir = tempDir('sparserm-llama-labels-');
    const rows = [
      { modelId: 'llama3.1-8b', layer: '15-llamascope-res-32k', index: '31002', description: ' refusals to help ', explanationModelName: 'gpt-4o-mini' },
      { modelId: 'llama3.1-8b', layer: '15-llamascope-res-32k', index: 7, description: 'citations' },
      { modelId: 'llama3.1-8b', layer: '15-llamascope-res-131k', index: 120000, description: 'hedging language' },
    ];
    fs.writeFileSync(path.join(dir, 'llama.jsonl.gz'), zlib.gzipSync(rows.map((r) => JSON.stringify(r)).join('\n')));
    const s = openStore(':memory:');
    const r = await importLabels(s, path.join(dir, 'llama.jsonl.gz'));
    expect(r.imported).toBe(3);
    expect(r.sets).toEqual(
      expect.arrayContaining([
        { modelId: 'llama3.1-8b', saeId: '15-llamascope-res-32k', labels: 2 },
        { modelId: 'llama3.1-8b', saeId: '15-llamascope-res-131k', labels: 1 },
      ]),
    );
    expect(s.labels.best('llama3.1-8b', '15-llamascope-res-32k', [31002, 7])).toEqual(new Map([[31002, 'refusals to help'], [7, 'citations']]));
    expect(s.labels.best('llama3.1-8b', '15-llamascope-res-131k', [120000]).get(120000)).toBe('hedging language');
    s.close();
  });

  it("a Llama-3.1-8B Llama Scope SAE maps to Neuronpedia's ids by width and hook layer; others map to none", () => {
    expect(llamaScopeNeuronpediaIds({ encoding: 'saelens', dIn: 4096, dSae: 32768, hookLayer: 15 })).toEqual({ modelId: 'llama3.1-8b', saeId: '15-llamascope-res-32k' });
    expect(llamaScopeNeuronpediaIds({ encoding: 'authors', dIn: 4096, dSae: 131072, hookLayer: 15 })).toEqual({ modelId: 'llama3.1-8b', saeId: '15-llamascope-res-131k' });
    expect(llamaScopeNeuronpediaIds({ dIn: 4096, dSae: 32768, hookLayer: 15 })).toBeUndefined(); // not Llama Scope
    expect(llamaScopeNeuronpediaIds({ encoding: 'saelens', dIn: 32, dSae: 64, hookLayer: 2 })).toBeUndefined();
  });
});
