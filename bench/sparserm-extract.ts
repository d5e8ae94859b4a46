/**
 * Feature extraction throughput on the demo kit: TruthfulQA demo pairs → chat template → backbone resid_post(L)
 * → pooled z → SAE latents, into an empty feature cache (so every token really goes through the backbone).
 * Then the same call again, fully cached. Prints one JSON line.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';

import { ensureDemoKit } from '../main/engine/demo/kit';
import { loadSae } from '../main/engine/sae';
import { extractFeatures } from '../main/engine/sparserm/features';
import { readPairsJsonl } from '../main/engine/sparserm/pairs-file';
import { machine } from './lib/machine';

const limit = Number(process.env.PAIRS ?? 400);
const kit = await ensureDemoKit();
const sae = await loadSae(kit.sae);
const pairs = readPairsJsonl(kit.dataset).slice(0, limit);
const responses = pairs.flatMap((p) => [{ prompt: p.prompt, response: p.chosen }, { prompt: p.prompt, response: p.rejected }]);
const cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'srm-bench-features-'));
const opts = { checkpoint: kit.checkpoint, layer: kit.layer, sae, pooling: 'mean' as const, cacheRoot, ep: 'cpu' as const };

// Warm-up: graph build / session creation are one-off costs, not throughput.
await extractFeatures(responses.slice(0, 2), { ...opts, cacheRoot: fs.mkdtempSync(path.join(os.tmpdir(), 'srm-bench-warm-')) });

let t0 = performance.now();
const cold = await extractFeatures(responses, opts);
const coldS = (performance.now() - t0) / 1000;
t0 = performance.now();
const warm = await extractFeatures(responses, opts);
const warmS = (performance.now() - t0) / 1000;
fs.rmSync(cacheRoot, { recursive: true, force: true });
console.log(
  JSON.stringify({
    bench: 'sparserm-extract',
    kit: kit.label,
    responses: responses.length,
    tokens: cold.tokensComputed,
    coldSeconds: +coldS.toFixed(3),
    tokensPerSecond: Math.round(cold.tokensComputed / coldS),
    cachedSeconds: +warmS.toFixed(3),
    cachedResponsesComputed: warm.responsesComputed,
    ...machine(),
  }),
);
