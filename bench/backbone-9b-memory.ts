/**
 * Gemma-2-9B-it at layer 31 (issue 13): peak RSS of building and of running the int4 / int8 graphs, measured in
 * child processes (VmHWM from /proc/self/status), on a random checkpoint with Gemma-2-9B's exact shapes (hidden
 * 3584, 16/8 heads, head_dim 256, ffn 14336, vocab 256000; config says 42 blocks, only blocks 0..31 + the
 * embedding are written, as bf16, streamed: ~14.7 GB on disk). f32 (~32 GB) is not run: the estimate and the up-front
 * refusal on this machine are reported instead. Everything written is deleted at the end.
 * BENCH_9B_LAYERS=3,7 measures shallower truncations instead (only blocks up to the deepest are written) and
 * extrapolates peak RSS linearly to layer 31: building streams tensor by tensor (its peak does not grow with depth),
 * running holds the graph's weights (linear in blocks). Used when the machine is too loaded for the full run.
 *
 *   npx tsx bench/backbone-9b-memory.ts   (BENCH_9B_PRECISIONS=int4,int8  BENCH_9B_LAYERS=31  BENCH_9B_DIR=/tmp)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { assertMemoryFor, backboneMemoryNeed, ensureBackboneGraph, GEMMA2_9B_L31, loadCheckpoint, openBackbone, parseModelConfig, systemMemory, type Precision } from '../main/engine/backbone';
import { f32ToBf16 } from '../main/engine/formats/safetensors';
import { gemma2Config, randomIds, rng, shapeOf } from '../tests/unit/backbone/random-checkpoint';

const self = fileURLToPath(import.meta.url);
const LAYER = GEMMA2_9B_L31.layer;
const LAYERS = (process.env.BENCH_9B_LAYERS ?? String(LAYER)).split(',').map(Number);
const WRITTEN = Math.max(...LAYERS);
const cfg = gemma2Config({
  hidden_size: 3584,
  intermediate_size: 14336,
  num_hidden_layers: 42,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 256,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  vocab_size: 256000,
});
const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;

function tensorNames(): string[] {
  const names = ['model.embed_tokens.weight'];
  for (let l = 0; l <= WRITTEN; l++) {
    const p = `model.layers.${l}.`;
    names.push(
      ...['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((n) => `${p}${n}.weight`),
      ...['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'].map((n) => `${p}${n}.weight`),
    );
  }
  return names;
}

/**
 * Streams a bf16 safetensors file: header from the shapes, then each tensor as slices of a 4 Mi-value random pool
 * (uniform ±0.03) at random offsets — random-looking weights at disk speed, one pool of memory.
 */
function writeCheckpoint(dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  const names = tensorNames();
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const n of names) {
    const shape = shapeOf(cfg, n);
    const bytes = shape.reduce((a, d) => a * d, 1) * 2;
    header[n] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const r = rng(9);
  const POOL = 1 << 22;
  const pool = Uint16Array.from({ length: POOL }, () => f32ToBf16(r() * 0.03));
  const norm = Uint16Array.from({ length: cfg.hidden_size }, () => f32ToBf16(r() * 0.3));
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(json));
    for (const n of names) {
      const count = shapeOf(cfg, n).reduce((a, d) => a * d, 1);
      if (count === cfg.hidden_size) {
        fs.writeSync(fd, norm);
        continue;
      }
      for (let done = 0; done < count; ) {
        const start = Math.floor(((r() + 1) / 2) * (POOL / 2));
        const take = Math.min(count - done, POOL - start);
        fs.writeSync(fd, pool, start * 2, take * 2);
        done += take;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return offset;
}

function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Child: 'build' (graph only) or 'run' (open the cached graph, one forward of 2 × 64 tokens). Prints JSON. */
async function child(mode: 'build' | 'run', dir: string, precision: Precision, cacheDir: string, layer: number): Promise<void> {
  const t0 = performance.now();
  if (mode === 'build') {
    const ckpt = await loadCheckpoint(dir);
    try {
      const g = await ensureBackboneGraph(ckpt, { layer, precision, cacheDir });
      const bytes = Object.values(g.manifest.files).reduce((a, b) => a + b, 0);
      console.log(JSON.stringify({ mode, precision, layer, seconds: (performance.now() - t0) / 1000, peakRss: peakRss(), graphBytes: bytes }));
    } finally {
      ckpt.close();
    }
    return;
  }
  const s = await openBackbone({ checkpoint: dir, layer, precision, ep: 'cpu', cacheDir });
  try {
    const opened = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const y = await s.hidden([randomIds(64, cfg.vocab_size, 1), randomIds(64, cfg.vocab_size, 2)]);
    const finite = y.every((a) => a.every(Number.isFinite));
    console.log(JSON.stringify({ mode, precision, layer, openSeconds: opened, runSeconds: (performance.now() - t1) / 1000, tokens: 128, finite, reused: s.info.graphReused, peakRss: peakRss() }));
  } finally {
    await s.close();
  }
}

async function main(): Promise<void> {
  const base = process.env.BENCH_9B_DIR ?? os.tmpdir();
  const precisions = (process.env.BENCH_9B_PRECISIONS ?? 'int4,int8').split(',') as Precision[];
  const c = parseModelConfig(cfg, 'config.json');
  const mem = systemMemory();
  console.log(`# ${new Date().toISOString()}: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${gb(mem.total)} RAM (${gb(mem.available)} available), load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, node ${process.version}`);
  for (const p of ['f32', 'f16', 'int8', 'int4'] as Precision[]) {
    const need = backboneMemoryNeed(c, LAYER, p);
    let verdict = 'fits';
    try {
      assertMemoryFor(c, LAYER, p, 'gemma-2-9b-it', mem);
    } catch (err) {
      verdict = `refused up front: ${(err as Error).message}`;
    }
    console.log(`estimate ${p}: weights ${gb(need.weightBytes)}, need ~${gb(need.needBytes)} — ${verdict}`);
  }
  const free = fs.statfsSync(base);
  const freeBytes = free.bavail * free.bsize;
  const needDisk = 15e9 + precisions.reduce((a, p) => a + backboneMemoryNeed(c, LAYER, p).weightBytes, 0) + 2e9;
  if (freeBytes < needDisk) {
    console.log(`not run: ${gb(freeBytes)} free under ${base}, the checkpoint and graphs need ~${gb(needDisk)}`);
    return;
  }
  const work = fs.mkdtempSync(path.join(base, 'sparserm-bench-9b-'));
  try {
    const t0 = performance.now();
    const bytes = writeCheckpoint(path.join(work, 'ckpt'));
    console.log(`wrote ${gb(bytes)} of bf16 weights (embedding + blocks 0..${WRITTEN}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const env = { ...process.env, SPARSERM_CACHE: path.join(work, 'cache') };
    for (const p of precisions) {
      const peaks: Record<string, Array<[number, number]>> = { build: [], run: [] };
      for (const layer of LAYERS) {
        for (const mode of ['build', 'run'] as const) {
          const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', mode, path.join(work, 'ckpt'), p, path.join(work, 'graphs'), String(layer)], { encoding: 'utf8', env, maxBuffer: 1 << 26 });
          if (r.status !== 0) {
            console.log(`${p} L${layer} ${mode}: FAILED (exit ${r.status ?? r.signal}): ${r.stderr.slice(-800)}`);
            continue;
          }
          const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | boolean | string>;
          peaks[mode].push([layer, res.peakRss as number]);
          console.log(`${p} L${layer} ${mode}: peak RSS ${gb(res.peakRss as number)} — ${JSON.stringify(res)}`);
        }
        fs.rmSync(path.join(work, 'graphs'), { recursive: true, force: true }); // disk: one graph at a time
      }
      for (const mode of ['build', 'run'] as const) {
        const pts = peaks[mode];
        if (pts.length < 2 || pts.some(([l]) => l === LAYER)) continue;
        // Linear in the number of blocks through the two deepest points.
        const [[l0, r0], [l1, r1]] = pts.slice(-2);
        const at31 = r1 + ((r1 - r0) / (l1 - l0)) * (LAYER - l1);
        console.log(`${p} ${mode}: extrapolated peak RSS at layer ${LAYER}: ${gb(at31)} (${gb((r1 - r0) / (l1 - l0))} per block from L${l0}/L${l1})`);
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3] as 'build' | 'run', process.argv[4], process.argv[5] as Precision, process.argv[6], Number(process.argv[7]));
else await main();
