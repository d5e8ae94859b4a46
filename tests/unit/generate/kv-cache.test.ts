/**
 * KV-cache graphs in the graph cache (ensureKvGraph): reused on the second open, one folder per variant (depth,
 * logits, capture layer) and precision, a truncated graph keyed by the same content hash as the resid_post graph
 * of that layer, and pruning keeps current KV graphs while removing ones of an older format.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ensureBackboneGraph, ensureKvGraph, loadCheckpoint, pruneGraphCache } from '../../../main/engine/backbone';
import { tempDir } from '../../helpers/paths';
import { gemma2Config, writeRandomCheckpoint } from '../backbone/random-checkpoint';

const work = tempDir('sparserm-kv-cache-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('ensureKvGraph', () => {
  it('reuses, separates variants, shares the truncated hash, survives pruning', async () => {
    const dir = writeRandomCheckpoint(path.join(work, 'ckpt'), gemma2Config({ num_hidden_layers: 3 }), { seed: 3 });
    const cacheDir = path.join(work, 'graphs');
    const ckpt = await loadCheckpoint(dir);
    try {
      const a = await ensureKvGraph(ckpt, { depth: 'full', precision: 'f32', cacheDir });
      expect(a.reused).toBe(false);
      expect(a.manifest.variant).toBe('kvfull-last');
      const again = await ensureKvGraph(ckpt, { depth: 'full', precision: 'f32', cacheDir });
      expect(again).toMatchObject({ reused: true, dir: a.dir });
      const cap = await ensureKvGraph(ckpt, { depth: 'full', captureLayer: 1, precision: 'f32', cacheDir });
      expect(cap.dir).not.toBe(a.dir);
      const all = await ensureKvGraph(ckpt, { depth: 'full', logits: 'all', precision: 'f32', cacheDir });
      expect(new Set([a.dir, cap.dir, all.dir]).size).toBe(3);
      expect(a.manifest.checkpointHash).toBe(await ckpt.contentHash());
      const trunc = await ensureKvGraph(ckpt, { depth: 1, precision: 'f32', cacheDir });
      const resid = await ensureBackboneGraph(ckpt, { layer: 1, cacheDir });
      expect(trunc.manifest.checkpointHash).toBe(resid.manifest.checkpointHash);
      expect(trunc.dir).not.toBe(resid.dir);
      // A KV graph of an older format is pruned; current ones (and the resid graph) are kept.
      const old = path.join(cacheDir, path.basename(trunc.dir).replace(/-[0-9a-f]{8}$/, '-00000000'));
      fs.cpSync(trunc.dir, old, { recursive: true });
      const m = JSON.parse(fs.readFileSync(path.join(old, 'manifest.json'), 'utf8'));
      fs.writeFileSync(path.join(old, 'manifest.json'), JSON.stringify({ ...m, format: 'decoder-kv-v0' }));
      const pruned = pruneGraphCache({ cacheDir });
      expect(pruned.removed.map((r) => r.name)).toEqual([path.basename(old)]);
      expect(pruned.kept).toBe(5);
    } finally {
      ckpt.close();
    }
  });
});
