/**
 * Quantized backbone (issue 13): tokens/s of f32 / int8 / int4 graphs at Gemma-2-2B block shapes (hidden 2304,
 * 8/4 heads, head_dim 256, ffn 9216; random bf16 weights, 2 blocks, vocab 1000) against PyTorch float32 eager
 * (bench/backbone-quantized.py) on the same threads, one timed run each after a warm-up, and the relative error of
 * resid_post vs the f32 graph. MatMulNBits accuracy_level 0 (dequantize → f32 GEMM) and 4 (int8 activations,
 * int8 dot products) are both measured: each variant runs in a child process with SPARSERM_QUANT_ACCURACY_LEVEL.
 *
 *   npx tsx bench/backbone-quantized.ts            (BENCH_THREADS=2 BENCH_SEQS=4 BENCH_LEN=256 BENCH_BLOCKS=2 BENCH_INIT=test|hf)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { openBackbone, type Precision } from '../main/engine/backbone';
import { gemma2Config, GEMMA2_2B_BLOCK_SHAPES, randomIds, writeRandomCheckpoint } from '../tests/unit/backbone/random-checkpoint';
import { relativeError } from '../main/engine/sparserm/precision-check';

const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const SEQS = Number(process.env.BENCH_SEQS ?? 4);
const LEN = Number(process.env.BENCH_LEN ?? 256);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 2);
/** Weight distribution (random-checkpoint.ts RandomCheckpointOptions.init): 'test' (uniform, peaked attention) or 'hf'. */
const INIT = (process.env.BENCH_INIT ?? 'test') as 'test' | 'hf';
const self = fileURLToPath(import.meta.url);

interface ChildResult {
  precision: Precision;
  level: string;
  buildSeconds: number;
  seconds: number;
  tokensPerSecond: number;
  graphBytes: number;
}

/** Child: open (build) one precision, time one run of all sequences, write resid_post to `out`. */
async function child(dir: string, precision: Precision, idsFile: string, out: string): Promise<void> {
  const seqs = JSON.parse(fs.readFileSync(idsFile, 'utf8')) as number[][];
  const t0 = performance.now();
  const s = await openBackbone({ checkpoint: dir, layer: BLOCKS - 1, precision, ep: 'cpu', cacheDir: path.join(path.dirname(dir), 'graphs'), intraOpThreads: THREADS });
  const buildSeconds = (performance.now() - t0) / 1000;
  try {
    await s.hidden([seqs[0].slice(0, 16)]); // warm-up (ORT pre-packs weights on the first run)
    const t1 = performance.now();
    const y = await s.hidden(seqs, { maxBatchTokens: SEQS * LEN });
    const seconds = (performance.now() - t1) / 1000;
    const flat = new Float32Array(y.reduce((a, r) => a + r.length, 0));
    let o = 0;
    for (const r of y) {
      flat.set(r, o);
      o += r.length;
    }
    fs.writeFileSync(out, flat);
    const graphBytes = fs.readdirSync(path.dirname(s.info.graphPath)).reduce((a, f) => a + fs.statSync(path.join(path.dirname(s.info.graphPath), f)).size, 0);
    const r: ChildResult = { precision, level: process.env.SPARSERM_QUANT_ACCURACY_LEVEL ?? '-', buildSeconds, seconds, tokensPerSecond: (SEQS * LEN) / seconds, graphBytes };
    console.log(JSON.stringify(r));
  } finally {
    await s.close();
  }
}

/** ‖a − b‖ / ‖b‖ (b the f32 reference): the precision check's measure. */
const relErr = (a: Float32Array, b: Float32Array): number => relativeError(b, a);

const lastJson = (text: string) => JSON.parse(text.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-quant-'));
  try {
    const cfg = gemma2Config({ ...GEMMA2_2B_BLOCK_SHAPES, num_hidden_layers: BLOCKS });
    const dir = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { dtype: 'BF16', seed: 3, init: INIT });
    const ids = Array.from({ length: SEQS }, (_, i) => randomIds(LEN, cfg.vocab_size, 10 + i));
    const idsFile = path.join(work, 'ids.json');
    fs.writeFileSync(idsFile, JSON.stringify(ids));
    console.log(
      `# ${new Date().toISOString()}: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, node ${process.version}; ` +
        `Gemma-2-2B block shapes, ${BLOCKS} blocks, ${SEQS} × ${LEN} tokens, ${THREADS} thread(s), one timed run each`,
    );

    const py = spawnSync('python3', [path.join(path.dirname(self), 'backbone-quantized.py'), '--checkpoint', dir, '--ids', idsFile, '--layer', String(BLOCKS - 1), '--threads', String(THREADS), '--out', path.join(work, 'torch.f32')], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(THREADS), OPENBLAS_NUM_THREADS: String(THREADS) },
    });
    const torch = py.status === 0 ? (lastJson(py.stdout) as { tokensPerSecond: number; blas: string[]; torch: string }) : undefined;
    if (!torch) console.log(`PyTorch peer failed (${py.status}): ${py.stderr.slice(-500)}`);

    // BENCH_VARIANTS="int8:4,int4:1" picks a subset (f32 always runs first: the reference of the error column).
    const variants: Array<{ precision: Precision; level?: number }> = [
      { precision: 'f32' },
      ...(process.env.BENCH_VARIANTS ?? 'int8:4,int8:1,int8:0,int4:4,int4:1,int4:0').split(',').map((v) => ({ precision: v.split(':')[0] as Precision, level: Number(v.split(':')[1]) })),
    ];
    const results: Array<ChildResult & { relErr: number }> = [];
    let f32Out: Float32Array | undefined;
    for (const v of variants) {
      const out = path.join(work, `${v.precision}-${v.level ?? ''}.f32`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', dir, v.precision, idsFile, out], {
        encoding: 'utf8',
        env: { ...process.env, ...(v.level !== undefined ? { SPARSERM_QUANT_ACCURACY_LEVEL: String(v.level) } : {}), SPARSERM_IGNORE_MEMORY_CHECK: '1' },
      });
      if (r.status !== 0) throw new Error(`${v.precision} child failed: ${r.stderr.slice(-1000)}`);
      const res = lastJson(r.stdout) as ChildResult;
      const y = new Float32Array(fs.readFileSync(out).buffer.slice(0));
      if (!f32Out) f32Out = y;
      results.push({ ...res, relErr: relErr(y, f32Out) });
    }
    if (torch) {
      const t = new Float32Array(fs.readFileSync(path.join(work, 'torch.f32')).buffer.slice(0));
      console.log(`PyTorch ${torch.torch} float32 eager (${torch.blas.join(', ') || 'BLAS unknown'}): ${torch.tokensPerSecond.toFixed(1)} tokens/s; its resid_post vs the engine's f32: relative error ${relErr(t, f32Out!).toExponential(1)}`);
    }
    console.log('| precision | accuracy_level | graph MB | build s | tokens/s | × PyTorch f32 | rel. error vs f32 |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of results) {
      console.log(
        `| ${r.precision} | ${r.level} | ${(r.graphBytes / 1e6).toFixed(0)} | ${r.buildSeconds.toFixed(1)} | ${r.tokensPerSecond.toFixed(1)} | ${torch ? (r.tokensPerSecond / torch.tokensPerSecond).toFixed(2) : '-'} | ${r.precision === 'f32' ? '-' : (r.relErr * 100).toFixed(3) + ' %'} |`,
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4] as Precision, process.argv[5], process.argv[6]);
else await main();
