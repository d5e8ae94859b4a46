/**
 * Backbone (issue 2), target (b): peak RSS while building the truncated graph from a checkpoint over 1 GB.
 * Memory must not scale with the whole checkpoint: weights stream tensor by tensor into the external data file.
 *
 *   npx tsx bench/backbone-build-memory.ts
 *
 * Generates a random BF16 Gemma-2 checkpoint of ~1.2 GB (hidden 1024, 36 blocks, sharded one block per file) in a
 * temp dir, builds the graph for a small L and a large L in fresh child processes (each reports its own peak RSS,
 * VmHWM), runs one forward pass to prove the graph works, and deletes everything.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ensureBackboneGraph, loadCheckpoint, openBackbone } from '../main/engine/backbone';
import { writeSafetensors, type TensorToWrite } from '../main/engine/formats/safetensors';
import { gemma2Config, shapeOf } from '../tests/unit/backbone/random-checkpoint';

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 1e6;
}

const cfg = gemma2Config({
  hidden_size: 1024,
  intermediate_size: 4096,
  num_hidden_layers: 36,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 128,
  query_pre_attn_scalar: 128,
  sliding_window: 256,
  vocab_size: 32000,
});

/** Writes one shard per block (plus one for the embedding) so generation itself needs little memory. */
function generate(dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  let seed = 12345;
  const fill = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      a[i] = (seed / 2 ** 32 - 0.5) * scale;
    }
    return a;
  };
  const weightMap: Record<string, string> = {};
  const shard = (file: string, names: string[]) => {
    const t: Record<string, TensorToWrite> = {};
    for (const n of names) {
      const shape = shapeOf(cfg, n);
      const count = shape.reduce((a, d) => a * d, 1);
      t[n] = { dtype: 'BF16', shape, data: fill(count, shape.length === 1 ? 0.5 : 2 * Math.sqrt(3 / shape[1])) };
      weightMap[n] = file;
    }
    writeSafetensors(path.join(dir, file), t);
  };
  shard('model-embed.safetensors', ['model.embed_tokens.weight', 'model.norm.weight']);
  const per = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'];
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    shard(`model-layer-${String(l).padStart(3, '0')}.safetensors`, per.map((p) => `model.layers.${l}.${p}.weight`));
  }
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}

async function child(dir: string, layer: number, cacheDir: string): Promise<void> {
  const baseline = peakRssMb();
  const ckpt = await loadCheckpoint(dir);
  const t0 = performance.now();
  const hash = await ckpt.contentHash(layer);
  const tHash = performance.now() - t0;
  const g = await ensureBackboneGraph(ckpt, { layer, checkpointHash: hash, cacheDir });
  const tBuild = performance.now() - t0 - tHash;
  const buildPeak = peakRssMb();
  ckpt.close();
  const graphBytes = Object.values(g.manifest.files).reduce((a, b) => a + b, 0);
  const s = await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir });
  const [h] = await s.hidden([[2, 100, 200, 300]]);
  await s.close();
  const finite = h.every(Number.isFinite);
  process.stdout.write(JSON.stringify({ layer, baseline, buildPeak, sessionPeak: peakRssMb(), tHash, tBuild, graphBytes, finite }) + '\n');
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-mem-'));
  try {
    const dir = path.join(work, 'ckpt');
    const t0 = performance.now();
    const size = generate(dir);
    console.log(`# ${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`);
    console.log(`checkpoint: ${(size / 1e9).toFixed(2)} GB BF16, ${cfg.num_hidden_layers} blocks of ${((size / cfg.num_hidden_layers) / 1e6).toFixed(0)} MB, generated in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    for (const layer of [1, 17]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', process.argv[1], '--child', dir, String(layer), path.join(work, 'graphs')], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      if (r.status !== 0) throw new Error(r.stderr);
      const m = JSON.parse(r.stdout.trim().split('\n').pop()!);
      console.log(
        `L=${layer}: graph ${(m.graphBytes / 1e6).toFixed(0)} MB (f32), hash ${(m.tHash / 1000).toFixed(1)} s, build ${(m.tBuild / 1000).toFixed(1)} s, ` +
          `peak RSS while building ${m.buildPeak.toFixed(0)} MB (process baseline ${m.baseline.toFixed(0)} MB), ` +
          `after opening the session ${m.sessionPeak.toFixed(0)} MB; forward pass finite: ${m.finite}`,
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const i = process.argv.indexOf('--child');
if (i > 0) await child(process.argv[i + 1], Number(process.argv[i + 2]), process.argv[i + 3]);
else await main();
