/**
 * Backbone (issue 2), target (a): time per 1k tokens of the graph truncated after block L vs the full-depth graph
 * (L = N−1) of the same checkpoint. The ratio should approach (L+1)/N.
 *
 *   npx tsx bench/backbone-truncation.ts [--quick]
 *
 * Random-weight Gemma-2 checkpoints generated in a temp dir (deleted after): a demo-sized one (the demo kit's
 * shape: hidden 64, 6 blocks, L = 3) and a larger one (hidden 512, 8 blocks, L = 1). Runs on CPU, 1k tokens per
 * measurement (8 sequences × 128 tokens in one batch), 1 warm-up, then N alternating runs; one ORT thread.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openBackbone } from '../main/engine/backbone';
import { gemma2Config, randomIds, writeRandomCheckpoint } from '../tests/unit/backbone/random-checkpoint';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 7;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-trunc-'));

interface Setup {
  name: string;
  cfg: ReturnType<typeof gemma2Config>;
  layer: number;
}

const setups: Setup[] = [
  {
    name: 'demo-sized (hidden 64, 6 blocks, 4/2 heads, head_dim 24)',
    cfg: gemma2Config({ hidden_size: 64, intermediate_size: 256, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 24, query_pre_attn_scalar: 24, sliding_window: 16, vocab_size: 1000 }),
    layer: 3,
  },
  {
    name: 'larger (hidden 512, 8 blocks, 8/4 heads, head_dim 64, intermediate 2048)',
    cfg: gemma2Config({ hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 64, vocab_size: 1000 }),
    layer: 1,
  },
];

/**
 * The machine is shared (2 cores, other jobs): runs of the two graphs alternate so both see the same load, ORT uses
 * one intra-op thread (spinning thread pools degrade badly under contention), and we report the minimum (least
 * disturbed) and the median.
 */
async function compare(dir: string, layers: number[], seqs: number[][]): Promise<Array<{ min: number; median: number }>> {
  const sessions = [];
  for (const layer of layers) sessions.push(await openBackbone({ checkpoint: dir, layer, ep: 'cpu', cacheDir: path.join(work, 'graphs'), intraOpThreads: 1 }));
  const tokens = seqs.reduce((a, q) => a + q.length, 0);
  const times: number[][] = layers.map(() => []);
  for (const s of sessions) await s.hidden(seqs, { maxBatchTokens: tokens }); // warm-up
  for (let r = 0; r < RUNS; r++) {
    for (const [i, s] of sessions.entries()) {
      const t0 = performance.now();
      await s.hidden(seqs, { maxBatchTokens: tokens });
      times[i].push(((performance.now() - t0) * 1000) / tokens);
    }
  }
  for (const s of sessions) await s.close();
  return times.map((t) => {
    t.sort((a, b) => a - b);
    return { min: t[0], median: t[Math.floor(t.length / 2)] };
  });
}

try {
  console.log(`# ${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}`);
  for (const [i, s] of setups.entries()) {
    const dir = writeRandomCheckpoint(path.join(work, `ckpt-${i}`), s.cfg, { dtype: 'BF16', seed: 1 + i });
    const seqs = Array.from({ length: 8 }, (_, k) => randomIds(128, s.cfg.vocab_size, 10 * i + k));
    const N = s.cfg.num_hidden_layers;
    const [t, f] = await compare(dir, [s.layer, N - 1], seqs);
    console.log(
      `${s.name}: L=${s.layer}: ${t.min.toFixed(1)} ms/1k tokens (median ${t.median.toFixed(1)}); full depth L=${N - 1}: ` +
        `${f.min.toFixed(1)} ms/1k tokens (median ${f.median.toFixed(1)}); ratio ${(t.min / f.min).toFixed(3)} ` +
        `(medians ${(t.median / f.median).toFixed(3)}), ideal (L+1)/N = ${((s.layer + 1) / N).toFixed(3)}`,
    );
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
