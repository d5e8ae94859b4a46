import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { InputError } from '../../../main/engine/errors';
import { readPairsJsonl } from '../../../main/engine/sparserm/pairs-file';
import { readRewardModel, writeRewardModel } from '../../../main/engine/sparserm/model-folder';
import { fitSparseRm } from '../../../main/engine/sparserm/fit';
import { ATTRIBUTION_DESCRIPTION, MANIFEST_FORMAT, type RewardModelManifest } from '../../../main/engine/sparserm/manifest';
import { tempDir } from '../../helpers/paths';
import { plantedData } from './synthetic';

describe('pairs JSONL', () => {
  it('names the file, the line and the field of a bad row', () => {
    const dir = tempDir();
    const f = path.join(dir, 'p.jsonl');
    fs.writeFileSync(f, '{"prompt":"a","chosen":"b","rejected":"c"}\n\n{"prompt":"a","chosen":"b"}\n');
    expect(() => readPairsJsonl(f)).toThrow(InputError);
    expect(() => readPairsJsonl(f)).toThrow(/p\.jsonl, line 3, field "rejected"/);
    fs.writeFileSync(f, '{"prompt":"a","chosen":"b","rejected":"c"}\n{oops\n');
    expect(() => readPairsJsonl(f)).toThrow(/line 2.*one JSON object per line/);
    fs.writeFileSync(f, '{"prompt":"a","chosen":"b","rejected":"c","id":7,"source":"x"}\n');
    expect(readPairsJsonl(f)).toEqual([{ prompt: 'a', chosen: 'b', rejected: 'c', id: '7', source: 'x' }]);
  });
});

describe('reward-model folder', () => {
  async function makeModel(dir: string) {
    const d = plantedData({ pairs: 120 });
    const fit = await fitSparseRm(d.table, d.pairs, d.sae, { k: 4, hidden: 16, maxEpochs: 3 });
    const manifest: RewardModelManifest = {
      format: MANIFEST_FORMAT, version: 1, id: 'test', created: new Date().toISOString(),
      backbone: { checkpoint: '/x', contentHash: 'abc', layer: 1, hiddenSize: d.sae.dIn },
      sae: { id: 's', hash: 'h', path: '/s', format: 'npz', dSae: d.sae.dSae },
      pooling: 'mean', maxTokens: 1024, k: 4, selected: fit.selected,
      head: { onnx: 'head.onnx', weights: 'head.npz', input: 'z', output: 'score', inDim: 8, hidden: 16, activation: 'relu', trainableParams: 8 * 16 + 33, standardization: 'per-feature mean/std of the training responses, inside head.onnx and head.npz' },
      training: { loss: 'margin', margin: 1, optimizer: 'adam', lr: 1e-3, batchSize: 64, maxEpochs: 3, patience: 5, epochsRun: fit.epochsRun, bestEpoch: fit.bestEpoch, seed: 0, splitBy: 'prompt', valFraction: 0.1, testFraction: 0.1, pairs: { train: 96, val: 12, test: 12 }, dataHash: 'd', seconds: 1 },
      metrics: { train: { n: 1, accuracy: 1, auc: 1 }, val: { n: 1, accuracy: 1, auc: 1 }, test: { n: 0, accuracy: null, auc: null } },
      attribution: { method: 'gradient-x-input-fixed-relu-pattern', description: ATTRIBUTION_DESCRIPTION },
      tokenActivations: 'on-demand',
    };
    await writeRewardModel(dir, { manifest, head: fit.head, directions: fit.directions, curve: fit.curve });
    return fit;
  }

  it('round-trips exactly and refuses to overwrite a non-empty folder', async () => {
    const dir = path.join(tempDir(), 'model');
    const fit = await makeModel(dir);
    const back = await readRewardModel(dir);
    expect(Array.from(back.head.W1)).toEqual(Array.from(fit.head.W1));
    expect(Array.from(back.directions)).toEqual(Array.from(fit.directions));
    await expect(makeModel(dir)).rejects.toThrow(/refusing to overwrite/);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(['model']); // no temp folder left behind
  });

  it('rejects a tampered manifest or head with errors naming the file and field/tensor', async () => {
    const dir = path.join(tempDir(), 'model');
    await makeModel(dir);
    const mf = path.join(dir, 'manifest.json');
    const good = fs.readFileSync(mf, 'utf8');
    fs.writeFileSync(mf, good.replace('"pooling": "mean"', '"pooling": "max"'));
    await expect(readRewardModel(dir)).rejects.toThrow(/manifest\.json, field "pooling"/);
    fs.writeFileSync(mf, good.replace('"inDim": 8', '"inDim": 9'));
    await expect(readRewardModel(dir)).rejects.toThrow(/field "selected"|tensor/);
    await expect(readRewardModel(tempDir())).rejects.toThrow(/manifest\.json/);
  });
});
