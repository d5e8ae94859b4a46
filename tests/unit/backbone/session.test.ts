import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  backboneRunCounter,
  ensureBackboneGraph,
  graphDirName,
  loadCheckpoint,
  pruneGraphCache,
  openBackbone,
  planBatches,
} from '../../../main/engine/backbone';
import { CancelledError, InputError } from '../../../main/engine/errors';
import { tempDir } from '../../helpers/paths';
import { gemma2Config, randomIds, writeRandomCheckpoint } from './random-checkpoint';

const work = tempDir('sparserm-session-');
process.env.SPARSERM_CACHE = path.join(work, 'cache');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const cfg = gemma2Config({ num_hidden_layers: 3 });
const ckptDir = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { seed: 3 });

describe('planBatches', () => {
  it('sorts longest first, bounds padded tokens and attention bytes, covers every index once', () => {
    const lengths = [5, 100, 3, 50, 50, 7, 1];
    const batches = planBatches(lengths, { maxBatchTokens: 160, maxAttentionBytes: 1 << 30, numHeads: 2 });
    expect(batches.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(batches[0]).toEqual([1]); // 100 alone: a second row would make 200 padded tokens
    for (const b of batches) {
      const width = Math.max(...b.map((i) => lengths[i]));
      expect(b.length === 1 || b.length * width <= 160).toBe(true);
    }
    // The attention bound splits what the token bound would allow: 2 rows × 2 heads × 50² × 4 B = 40 kB > 30 kB.
    const tight = planBatches([50, 50], { maxBatchTokens: 1e9, maxAttentionBytes: 30_000, numHeads: 2 });
    expect(tight).toEqual([[0], [1]]);
    // A sequence over every bound still runs (alone).
    expect(planBatches([10_000], { maxBatchTokens: 10, maxAttentionBytes: 10, numHeads: 8 })).toEqual([[0]]);
  });
});

describe('graph cache', () => {
  it('builds once, then reuses across "restarts" (new checkpoint objects, new sessions)', async () => {
    const cacheDir = path.join(work, 'graphs-a');
    const events: string[] = [];
    const a = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir, onProgress: (e) => events.push(e.phase) });
    expect(a.info.graphReused).toBe(false);
    expect(events).toContain('build');
    expect(a.info.graphPath.startsWith(cacheDir)).toBe(true);
    expect(fs.readdirSync(path.dirname(a.info.graphPath)).sort()).toEqual(['manifest.json', 'model.onnx', 'model.onnx.data']);
    const ya = await a.hidden([[2, 5, 9]]);
    await a.close();
    const b = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir });
    expect(b.info.graphReused).toBe(true);
    expect(b.info.graphPath).toBe(a.info.graphPath);
    expect(b.info.checkpointHash).toBe(a.info.checkpointHash);
    expect(Array.from((await b.hidden([[2, 5, 9]]))[0])).toEqual(Array.from(ya[0]));
    await b.close();
    const m = JSON.parse(fs.readFileSync(path.join(path.dirname(a.info.graphPath), 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ layer: 1, precision: 'f32', hiddenSize: 32, numLayers: 3, checkpointHash: a.info.checkpointHash });
  });

  it('concurrent builders of the same graph both succeed and leave one complete graph, no temp folders', async () => {
    const cacheDir = path.join(work, 'graphs-b');
    const [c1, c2] = [await loadCheckpoint(ckptDir), await loadCheckpoint(ckptDir)];
    const [g1, g2] = await Promise.all([
      ensureBackboneGraph(c1, { layer: 2, cacheDir }),
      ensureBackboneGraph(c2, { layer: 2, cacheDir }),
    ]);
    expect(g1.graphPath).toBe(g2.graphPath);
    // The build lock makes the second builder wait and reuse: exactly one of them built.
    expect([g1.reused, g2.reused].sort()).toEqual([false, true]);
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(g1.dir)]);
    const s = await openBackbone({ checkpoint: ckptDir, layer: 2, ep: 'cpu', cacheDir });
    expect(s.info.graphReused).toBe(true);
    expect((await s.hidden([[2, 3]]))[0].length).toBe(64);
    await s.close();
    c1.close();
    c2.close();
  });

  it('takes over the lock of a builder that died (no heartbeat), and waits for a live one', async () => {
    const cacheDir = path.join(work, 'graphs-lock');
    const c = await loadCheckpoint(ckptDir);
    const hash = await c.contentHash(0);
    const name = graphDirName(hash, 0, 'f32');
    fs.mkdirSync(path.join(cacheDir, `.lock-${name}`), { recursive: true });
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(path.join(cacheDir, `.lock-${name}`), old, old); // a crashed builder's lock
    const g = await ensureBackboneGraph(c, { layer: 0, cacheDir });
    expect(g.reused).toBe(false);
    expect(fs.readdirSync(cacheDir)).toEqual([name]);

    // A live lock: we wait, and cancelling the wait leaves the lock alone.
    const live = path.join(cacheDir, `.lock-${graphDirName(hash, 0, 'f16')}`);
    fs.mkdirSync(live);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 300);
    await expect(ensureBackboneGraph(c, { layer: 0, precision: 'f16', cacheDir, signal: ctl.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(fs.existsSync(live)).toBe(true);
    fs.rmSync(live, { recursive: true });
    c.close();
  });

  it('a half-written graph folder (no valid manifest) is rebuilt, and cancellation leaves nothing behind', async () => {
    const cacheDir = path.join(work, 'graphs-c');
    const c = await loadCheckpoint(ckptDir);
    const g = await ensureBackboneGraph(c, { layer: 0, cacheDir });
    fs.truncateSync(path.join(g.dir, 'model.onnx.data'), 10); // corrupt: sizes no longer match the manifest
    const again = await ensureBackboneGraph(c, { layer: 0, cacheDir });
    expect(again.reused).toBe(false);
    expect(fs.statSync(path.join(again.dir, 'model.onnx.data')).size).toBe(again.manifest.files['model.onnx.data']);

    const ctl = new AbortController();
    const p = ensureBackboneGraph(c, {
      layer: 2,
      cacheDir,
      signal: ctl.signal,
      onProgress: (e) => e.phase === 'build' && e.done === 3 && ctl.abort(),
    });
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(g.dir)]);
    c.close();
  });
});

describe('pruneGraphCache', () => {
  it('removes half-written, older-format, orphaned and idle graphs and crashed-build leftovers; keeps live ones', async () => {
    const cacheDir = path.join(work, 'graphs-prune');
    const other = writeRandomCheckpoint(path.join(work, 'ckpt-gone'), cfg, { seed: 99 });
    const [c, o] = [await loadCheckpoint(ckptDir), await loadCheckpoint(other)];
    const keep = await ensureBackboneGraph(c, { layer: 0, cacheDir });
    const idle = await ensureBackboneGraph(c, { layer: 1, cacheDir });
    const orphan = await ensureBackboneGraph(o, { layer: 0, cacheDir });
    o.close();
    fs.rmSync(other, { recursive: true });
    const old = new Date(Date.now() - 10 * 86_400_000);
    fs.utimesSync(path.join(idle.dir, 'manifest.json'), old, old);
    fs.mkdirSync(path.join(cacheDir, 'deadbeef-L0-f32-00000000')); // older format, no manifest
    fs.mkdirSync(path.join(cacheDir, '.tmp-crashed'));
    fs.utimesSync(path.join(cacheDir, '.tmp-crashed'), old, old);
    fs.mkdirSync(path.join(cacheDir, '.lock-live')); // a build in progress: fresh lock

    const dry = pruneGraphCache({ cacheDir, unusedForDays: 7, dryRun: true });
    expect(dry.removed.map((r) => r.name).sort()).toEqual(['.tmp-crashed', 'deadbeef-L0-f32-00000000', path.basename(idle.dir), path.basename(orphan.dir)].sort());
    expect(fs.readdirSync(cacheDir)).toHaveLength(6); // dry run removes nothing
    const r = pruneGraphCache({ cacheDir, unusedForDays: 7 });
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(r.removed.find((x) => x.name === path.basename(orphan.dir))!.reason).toMatch(/no longer exists/);
    expect(fs.readdirSync(cacheDir).sort()).toEqual(['.lock-live', path.basename(keep.dir)].sort());
    // Reuse refreshes the idle clock.
    fs.utimesSync(path.join(keep.dir, 'manifest.json'), old, old);
    await ensureBackboneGraph(c, { layer: 0, cacheDir });
    expect(pruneGraphCache({ cacheDir, unusedForDays: 7 }).removed).toEqual([]);
    expect(pruneGraphCache({ cacheDir, all: true }).removed.map((x) => x.name)).toEqual([path.basename(keep.dir)]);
    c.close();
  });
});

describe('BackboneSession.hidden', () => {
  it('returns results in input order, reports progress, counts real runs, and batches by length', async () => {
    const s = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir: path.join(work, 'graphs-a') });
    expect(s.info).toMatchObject({ layer: 1, hiddenSize: 32, numLayers: 3, ep: 'cpu', epReason: 'CPU requested', architecture: 'gemma2' });
    const seqs = [randomIds(3, 300, 1), randomIds(30, 300, 2), randomIds(1, 300, 3), randomIds(12, 300, 4)];
    const singles: Float32Array[] = [];
    for (const q of seqs) singles.push((await s.hidden([q]))[0]);
    const before = backboneRunCounter();
    const progress: Array<[number, number]> = [];
    const out = await s.hidden(seqs, { maxBatchTokens: 40, onProgress: (d, t) => progress.push([d, t]) });
    const runs = backboneRunCounter() - before;
    expect(runs).toBe(planBatches(seqs.map((q) => q.length), { maxBatchTokens: 40, maxAttentionBytes: 1 << 28, numHeads: 2 }).length);
    expect(runs).toBeGreaterThan(1);
    expect(runs).toBeLessThan(seqs.length);
    expect(progress.at(-1)).toEqual([4, 4]);
    out.forEach((o, i) => expect(Array.from(o)).toEqual(Array.from(singles[i])));
    await s.close();
  });

  it('worker mode returns the same numbers as in-process runs', async () => {
    const cacheDir = path.join(work, 'graphs-a');
    const seqs = [randomIds(9, 300, 7), randomIds(4, 300, 8)];
    const a = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir });
    const b = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir, worker: true });
    const before = backboneRunCounter();
    const [ya, yb] = [await a.hidden(seqs), await b.hidden(seqs)];
    expect(backboneRunCounter() - before).toBe(2);
    ya.forEach((row, i) => expect(Array.from(yb[i])).toEqual(Array.from(row)));
    await a.close();
    await b.close();
  });

  it('cancels between batches and rejects bad ids and bad layers with InputError', async () => {
    const s = await openBackbone({ checkpoint: ckptDir, layer: 1, ep: 'cpu', cacheDir: path.join(work, 'graphs-a') });
    const ctl = new AbortController();
    const seqs = Array.from({ length: 6 }, (_, i) => randomIds(10, 300, i));
    const before = backboneRunCounter();
    await expect(
      s.hidden(seqs, { maxBatchTokens: 10, signal: ctl.signal, onProgress: (d) => d === 2 && ctl.abort() }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(backboneRunCounter() - before).toBe(2);
    await expect(s.hidden([[2, 300]])).rejects.toThrow(/0\.\.299/);
    await expect(s.hidden([[]])).rejects.toBeInstanceOf(InputError);
    await s.close();
    await expect(openBackbone({ checkpoint: ckptDir, layer: 3, ep: 'cpu' })).rejects.toThrow(/block index 0\.\.2/);
  });
});
