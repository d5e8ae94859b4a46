/**
 * Backbone (issue 2): the 16-bit-weight graph (precision 'f16', meant for CUDA) against the f32 graph, per block:
 * max |f16 − f32| and max |x| over every token and dim, and a NaN/Inf check.
 *
 *   npx tsx bench/backbone-precision.ts
 *
 * On CPU, ONNX Runtime has no fp16 GEMM on x86 and inserts casts, so this measures the weight rounding only; on a
 * CUDA machine (`--ep cuda`) the matmuls themselves run in fp16.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openBackbone } from '../main/engine/backbone';
import { gemma2Config, randomIds, writeRandomCheckpoint } from '../tests/unit/backbone/random-checkpoint';

const ep = process.argv.includes('--ep') ? (process.argv[process.argv.indexOf('--ep') + 1] as 'cpu' | 'cuda' | 'auto') : 'cpu';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-bench-prec-'));
try {
  const cfg = gemma2Config({ hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 32, vocab_size: 1000 });
  const dir = writeRandomCheckpoint(path.join(work, 'ckpt'), cfg, { dtype: 'F32', seed: 9 });
  const seqs = Array.from({ length: 4 }, (_, i) => randomIds(96, cfg.vocab_size, i));
  console.log(`# ${new Date().toISOString()} — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}; F32 checkpoint hidden 256, 6 blocks; 4 × 96 tokens; ep ${ep}`);
  for (let layer = 0; layer < cfg.num_hidden_layers; layer++) {
    const a = await openBackbone({ checkpoint: dir, layer, ep, precision: 'f32', cacheDir: path.join(work, 'graphs') });
    const b = await openBackbone({ checkpoint: dir, layer, ep, precision: 'f16', cacheDir: path.join(work, 'graphs') });
    const [ya, yb] = [await a.hidden(seqs), await b.hidden(seqs)];
    let diff = 0;
    let max = 0;
    let bad = 0;
    ya.forEach((row, i) =>
      row.forEach((v, k) => {
        if (!Number.isFinite(yb[i][k])) bad++;
        diff = Math.max(diff, Math.abs(v - yb[i][k]));
        max = Math.max(max, Math.abs(v));
      }),
    );
    console.log(`block ${layer}: max |f16 − f32| ${diff.toExponential(2)}, max |x| ${max.toFixed(2)}, relative ${(diff / max).toExponential(2)}, NaN/Inf ${bad} (ep ${b.info.ep})`);
    await a.close();
    await b.close();
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
