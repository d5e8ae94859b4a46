import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { openSafetensors } from '../../../main/engine/formats/safetensors';
import { repoRoot, tempDir } from '../../helpers/paths';
import { gemma2Config, randomIds, writeRandomCheckpoint } from './random-checkpoint';
import { referenceResidPost } from './reference-forward';

const work = tempDir('sparserm-cli-bb-');
const env = { ...process.env, SPARSERM_HOME: path.join(work, 'home'), SPARSERM_CACHE: path.join(work, 'cache') };
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), ...args], { cwd: repoRoot, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// An unseen config: sharded BF16, head_dim ≠ hidden/heads, query_pre_attn_scalar ≠ head_dim, window < length.
const cfg = gemma2Config({ hidden_size: 40, intermediate_size: 72, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 12, query_pre_attn_scalar: 16, sliding_window: 3 });
const ckpt = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { dtype: 'BF16', shards: 2, seed: 42 });

describe('sparserm hidden (end to end, spawned)', () => {
  it('prints resid_post of block L for every token (BOS included) matching the reference forward', () => {
    const ids = randomIds(9, cfg.vocab_size, 5);
    const files = fs.readdirSync(ckpt).filter((f) => f.endsWith('.safetensors')).map((f) => openSafetensors(path.join(ckpt, f)));
    const read = (n: string) => files.find((s) => s.entries.has(n))!.readF32(n);
    for (const layer of [1, 2]) {
      const r = cli('hidden', '--checkpoint', ckpt, '--layer', String(layer), '--ids', ids.join(','), '--ep', 'cpu', '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { layer: number; ids: number[]; hidden: number[][] };
      expect(out.layer).toBe(layer);
      expect(out.ids).toEqual(ids);
      expect(out.hidden).toHaveLength(ids.length);
      const ref = referenceResidPost(cfg, read, ids, layer)[layer];
      let err = 0;
      let scale = 0;
      out.hidden.forEach((row, t) => {
        expect(row).toHaveLength(cfg.hidden_size);
        row.forEach((v, d) => {
          err = Math.max(err, Math.abs(v - ref[t][d]));
          scale = Math.max(scale, Math.abs(ref[t][d]));
        });
      });
      expect(err).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
    }
    files.forEach((f) => f.close());
  });

  it('model build builds then reuses; doctor reports ORT and caches', () => {
    const a = cli('model', 'build', '--checkpoint', ckpt, '--layer', '3', '--json');
    expect(a.code, a.stderr).toBe(0);
    const ja = JSON.parse(a.stdout);
    expect(ja).toMatchObject({ reused: false, layer: 3, precision: 'f32', architecture: 'gemma2' });
    expect(fs.existsSync(ja.graphPath)).toBe(true);
    expect(ja.graphPath.startsWith(env.SPARSERM_CACHE)).toBe(true);
    const b = cli('model', 'build', '--checkpoint', ckpt, '--layer', '3', '--json');
    expect(JSON.parse(b.stdout)).toMatchObject({ reused: true, graphPath: ja.graphPath, checkpointHash: ja.checkpointHash });

    const d = cli('doctor', '--json');
    expect(d.code, d.stderr).toBe(0);
    const doc = JSON.parse(d.stdout);
    expect(doc.onnxruntime.version).toMatch(/^1\.30/);
    expect(doc.executionProvider.available).toContain('cpu');
    expect(['cpu', 'cuda']).toContain(doc.executionProvider.live.ep);
    expect(doc.executionProvider.live.ok).toBe(true);
    expect(doc.caches.graphs.path).toBe(path.join(env.SPARSERM_CACHE, 'graphs'));
    expect(doc.caches.graphs.entries).toBe(3); // L1 and L2 from the hidden test, L3 here
    expect(doc.caches.graphs.items.map((g: { layer: number }) => g.layer).sort()).toEqual([1, 2, 3]);
    expect(doc.caches.graphs.items[0]).toMatchObject({ architecture: 'gemma2', precision: 'f32', checkpointDir: path.resolve(ckpt) });
  });

  it('two processes building the same graph at once both succeed and leave one complete graph', async () => {
    const cacheEnv = { ...env, SPARSERM_CACHE: path.join(work, 'cache-race') };
    const run = () =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [path.join(repoRoot, 'bin', 'sparserm.mjs'), 'model', 'build', '--checkpoint', ckpt, '--layer', '2', '--json'], { cwd: repoRoot, env: cacheEnv });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const [ja, jb] = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    expect(ja.graphPath).toBe(jb.graphPath);
    expect([ja.reused, jb.reused].sort()).toEqual([false, true]); // one built, the other waited on its lock
    const graphs = path.join(cacheEnv.SPARSERM_CACHE, 'graphs');
    expect(fs.readdirSync(graphs)).toEqual([path.basename(path.dirname(ja.graphPath))]); // no temp folders left
    const h = cli('hidden', '--checkpoint', ckpt, '--layer', '2', '--ids', '2,7', '--ep', 'cpu', '--json');
    expect(JSON.parse(h.stdout).hidden).toHaveLength(2);
  });

  it('bad input: stderr "error: …", exit 2, nothing on stdout', () => {
    const cases: Array<[string[], RegExp]> = [
      [['hidden', '--checkpoint', ckpt, '--layer', '4', '--ids', '2,3'], /block index 0\.\.3/],
      [['hidden', '--checkpoint', ckpt, '--layer', '1', '--ids', '2,abc'], /--ids/],
      [['hidden', '--checkpoint', ckpt, '--layer', '1', '--ids', `2,${cfg.vocab_size}`], /vocab_size/],
      [['hidden', '--checkpoint', ckpt, '--layer', '1'], /exactly one of --ids or --text/],
      [['hidden', '--checkpoint', ckpt, '--layer', '1', '--text', 'hello'], /tokenizer\.json/],
      [['hidden', '--checkpoint', path.join(work, 'missing'), '--layer', '0', '--ids', '2'], /checkpoint folder/],
      [['model', 'build', '--checkpoint', ckpt, '--layer', '1', '--precision', 'int3'], /--precision.*f32 \| f16 \| int8 \| int4/],
    ];
    for (const [args, msg] of cases) {
      const r = cli(...args, '--json');
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: /m);
      expect(r.stderr).toMatch(msg);
      expect(r.stdout).toBe('');
    }
  });

  it('--help documents the options', () => {
    const r = cli('hidden', '--help');
    expect(r.code).toBe(0);
    for (const o of ['--checkpoint', '--layer', '--ids', '--text', '--precision', '--ep', '--json']) expect(r.stdout).toContain(o);
  });
});
