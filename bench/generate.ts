/**
 * Generation (issue 12): prefill and decode tokens/s of this engine's KV-cache decoder (decoder.ts, ONNX Runtime
 * CPU, f32) against PyTorch float32 greedy decoding with a KV cache (bench/generate_torch.py) on the same cores
 * and thread count, side by side in one run, as a ratio. Also checks both produce the same greedy tokens.
 *
 *   npx tsx bench/generate.ts                 # 1 thread each (THREADS=2 for two)
 *   PYTHON=/usr/bin/python3 npx tsx bench/generate.ts
 *
 * Prefill = one run over the prompts (a batch of equal-length prompts, no padding) up to the first token's logits;
 * decode = the remaining N − 1 single-token steps, each feeding the cache. Engine timing: t(maxNewTokens = 1) is
 * the prefill, t(N) − t(1) the decode (best of 3 after a warm-up). PyTorch times the same two phases directly.
 * Shapes: the demo kit (Gemma-2, hidden 64, 6 blocks, vocab 1024) and two random blocks with Gemma-2-2B's exact
 * shapes (hidden 2304, 8/4 heads, head_dim 256, ffn 9216, window 4096) but a 1,000-token vocabulary, so the LM head
 * (256k × 2304 on the real model) is left out of the decode cost.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureDemoKit } from '../main/engine/demo/kit';
import { openDecoder } from '../main/engine/generate/decoder';
import { gemma2Config, GEMMA2_2B_BLOCK_SHAPES, randomIds, writeRandomCheckpoint } from '../tests/unit/backbone/random-checkpoint';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.THREADS ?? 1);

function findPython(): string | null {
  for (const py of [process.env.PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p)) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

interface Case {
  name: string;
  checkpoint: string;
  batch: number;
  promptTokens: number;
  newTokens: number;
  vocab: number;
}

interface TorchResult {
  torch: string;
  blas: string[] | string;
  prefillSeconds: number;
  prefillTokensPerSecond: number;
  decodeSteps: number;
  decodeSeconds: number;
  decodeTokensPerSecond: number | null;
  tokens: number[][];
}

async function engine(c: Case, prompts: number[][], cacheDir: string) {
  const dec = await openDecoder({ checkpoint: c.checkpoint, ep: 'cpu', cacheDir, intraOpThreads: threads });
  try {
    const greedy = { temperature: 0, topP: 1, topK: 0, seed: 0 };
    await dec.generateIds(prompts.map((p) => p.slice(0, 8)), { ...greedy, maxNewTokens: 2 }); // warm-up
    const time = async (maxNewTokens: number) => {
      const t0 = performance.now();
      const out = await dec.generateIds(prompts, { ...greedy, maxNewTokens });
      return { s: (performance.now() - t0) / 1000, out };
    };
    let pre = Infinity;
    let full = Infinity;
    let tokens: number[][] = [];
    let steps = 0;
    for (let r = 0; r < 3; r++) {
      pre = Math.min(pre, (await time(1)).s);
      const f = await time(c.newTokens);
      if (f.s < full) {
        full = f.s;
        tokens = f.out.map((o) => o.tokens);
        // Runs after the prefill: a row cut at N tokens needed N − 1; a stopped row also ran the step that chose its stop token.
        steps = Math.max(...f.out.map((o) => (o.finishReason === 'stop' ? o.tokens.length : o.tokens.length - 1)));
      }
    }
    return { stopIds: dec.info.stopIds, prefillSeconds: pre, decodeSeconds: full - pre, decodeSteps: steps, tokens };
  } finally {
    await dec.close();
  }
}

function torchRun(py: string, c: Case, promptsFile: string, stopIds: number[]): TorchResult {
  const r = spawnSync(
    py,
    [path.join(benchDir, 'generate_torch.py'), '--checkpoint', c.checkpoint, '--prompts', promptsFile, '--new-tokens', String(c.newTokens), '--threads', String(threads), '--stop', stopIds.join(',')],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) }, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`generate_torch.py failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-generate-'));
try {
  const py = findPython();
  const cpu = `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`;
  console.log(`# ${new Date().toISOString()} — ${cpu}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, node ${process.version}, ${threads} thread(s) each`);
  if (!py) {
    console.log('PyTorch not found (set PYTHON to a python3 with torch; Debian: apt install python3-torch libopenblas0-pthread): engine numbers only');
  }
  const kit = await ensureDemoKit();
  const cfg2b = gemma2Config({ ...GEMMA2_2B_BLOCK_SHAPES, num_hidden_layers: 2 });
  const dir2b = writeRandomCheckpoint(path.join(work, 'ckpt-2b'), cfg2b, { dtype: 'BF16', seed: 3 });
  const cases: Case[] = [
    { name: 'demo kit (hidden 64, 6 blocks)', checkpoint: kit.checkpoint, batch: 4, promptTokens: 64, newTokens: 32, vocab: 1024 },
    { name: '2B-shaped, 2 blocks, batch 1', checkpoint: dir2b, batch: 1, promptTokens: 128, newTokens: 16, vocab: 1000 },
    { name: '2B-shaped, 2 blocks, batch 4', checkpoint: dir2b, batch: 4, promptTokens: 128, newTokens: 16, vocab: 1000 },
  ];
  const rows: string[] = [];
  for (const c of cases) {
    // Ids 3.. avoid the pad/eos/bos ids; the same prompts go to both sides.
    const prompts = Array.from({ length: c.batch }, (_, i) => [2, ...randomIds(c.promptTokens - 1, c.vocab - 3, 100 + i).map((id) => id + 3)]);
    const promptsFile = path.join(work, 'prompts.json');
    fs.writeFileSync(promptsFile, JSON.stringify(prompts));
    const e = await engine(c, prompts, path.join(work, 'graphs'));
    const ePre = (c.batch * c.promptTokens) / e.prefillSeconds;
    const eDec = e.decodeSteps > 0 ? (c.batch * e.decodeSteps) / e.decodeSeconds : NaN;
    const t = py ? torchRun(py, c, promptsFile, e.stopIds) : null;
    const same = t ? JSON.stringify(t.tokens) === JSON.stringify(e.tokens) : null;
    const ratio = (a: number, b: number | null | undefined) => (b ? (a / b).toFixed(2) : '—');
    const line = {
      case: c.name,
      batch: c.batch,
      promptTokens: c.promptTokens,
      newTokens: c.newTokens,
      engine: { prefillTokPerS: Math.round(ePre), decodeTokPerS: Math.round(eDec), decodeSteps: e.decodeSteps },
      torch: t ? { prefillTokPerS: Math.round(t.prefillTokensPerSecond), decodeTokPerS: t.decodeTokensPerSecond ? Math.round(t.decodeTokensPerSecond) : null, decodeSteps: t.decodeSteps, version: t.torch, blas: t.blas } : null,
      ratioEngineOverTorch: { prefill: ratio(ePre, t?.prefillTokensPerSecond), decode: ratio(eDec, t?.decodeTokensPerSecond) },
      sameGreedyTokens: same,
    };
    console.log(JSON.stringify(line));
    rows.push(`| ${c.name} | ${c.batch} × ${c.promptTokens} → ${c.newTokens} | ${line.engine.prefillTokPerS} / ${line.torch?.prefillTokPerS ?? '—'} (${line.ratioEngineOverTorch.prefill}) | ${line.engine.decodeTokPerS} / ${line.torch?.decodeTokPerS ?? '—'} (${line.ratioEngineOverTorch.decode}) | ${same ?? '—'} |`);
    if (same === false) console.error(`WARNING: ${c.name}: engine and PyTorch greedy tokens differ`);
  }
  console.log('\n| case | batch × prompt → new | prefill tok/s engine / torch (ratio) | decode tok/s engine / torch (ratio) | same greedy tokens |\n|---|---|---|---|---|');
  for (const r of rows) console.log(r);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
