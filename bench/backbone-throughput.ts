/**
 * Backbone (issue 2): CPU throughput of real Gemma-2-2B block shapes (hidden 2304, 8/4 heads, head_dim 256,
 * ffn 9216, query_pre_attn_scalar 256, window 4096) — random weights, 2 blocks, small vocab — to estimate what
 * resid_post(L) costs on a real checkpoint: time(L) ≈ (L+1) × time per block.
 *
 *   npx tsx bench/backbone-throughput.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openBackbone } from '../main/engine/backbone';
import { gemma2Config, GEMMA2_2B_BLOCK_SHAPES, randomIds, writeRandomCheckpoint } from '../tests/unit/backbone/random-checkpoint';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-tput-'));
try {
  const cfg = gemma2Config({ ...GEMMA2_2B_BLOCK_SHAPES, num_hidden_layers: 2 });
  const dir = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { dtype: 'BF16', seed: 3 });
  console.log(`# ${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`);
  for (const threads of [1, 2]) {
    const s = await openBackbone({ checkpoint: dir, layer: 1, ep: 'cpu', cacheDir: path.join(work, 'graphs'), intraOpThreads: threads });
    for (const len of [128, 512]) {
      const seqs = Array.from({ length: 1024 / len }, (_, i) => randomIds(len, cfg.vocab_size, i));
      await s.hidden(seqs.slice(0, 1)); // warm-up
      const times: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        await s.hidden(seqs, { maxBatchTokens: 1024 });
        times.push(performance.now() - t0);
      }
      const best = Math.min(...times) / 2; // per block
      console.log(
        `2B-shaped block, ${threads} thread(s), ${1024 / len} × ${len} tokens: ${(best / 1000).toFixed(2)} s per block per 1k tokens ` +
          `→ Gemma-2-2B at L=12 (13 blocks) ≈ ${((13 * best) / 1000).toFixed(0)} s per 1k tokens on this CPU`,
      );
    }
    await s.close();
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
