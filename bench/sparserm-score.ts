/**
 * Scoring 100,000 cached responses (target < 2 s on 2 cores) through the real path of `scorePairs`: text → feature
 * key index, z read from the append-only cache, head.onnx in ONNX Runtime, margins and σ.
 * Setup (not timed): a reward model trained on the demo kit, then 50,000 synthetic pairs whose features are written
 * into the cache in its own format (running the tiny backbone on 100k texts would only time the backbone).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { loadCheckpoint } from '../main/engine/backbone';
import { ensureDemoKit } from '../main/engine/demo/kit';
import { AppendStore, f32Bytes } from '../main/engine/sparserm/feature-store';
import { LENGTH_POLICY_VERSION } from '../main/engine/sparserm/length-policy';
import { readPairsJsonl } from '../main/engine/sparserm/pairs-file';
import { PROMPT_ENCODING_VERSION } from '../main/engine/sparserm/prompt-encoding';
import { scorePairs, trainRewardModel } from '../main/engine/sparserm/service';
import { mulberry32, gaussian } from '../main/engine/sparserm/rng';
import { machine } from './lib/machine';

const N_PAIRS = Number(process.env.PAIRS ?? 50_000);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'srm-bench-score-'));
const cacheRoot = path.join(work, 'features');
const kit = await ensureDemoKit();
const trainPairs = readPairsJsonl(kit.dataset).slice(0, 200);
const { modelDir, manifest } = await trainRewardModel({ checkpoint: kit.checkpoint, layer: kit.layer, sae: kit.sae, pairs: trainPairs, k: 128, outDir: path.join(work, 'model'), cacheRoot, ep: 'cpu' });

// Write synthetic cached features exactly where extractFeatures looks for them.
const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
const ckpt = await loadCheckpoint(kit.checkpoint);
const backboneHash = await ckpt.contentHash(kit.layer);
const H = ckpt.config.hiddenSize;
ckpt.close();
const nsDir = path.join(cacheRoot, sha(JSON.stringify({ v: 1, backbone: backboneHash, layer: kit.layer, pooling: 'mean' })).slice(0, 32));
const tokH = crypto.createHash('sha256');
for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
  const p = path.join(kit.checkpoint, f);
  tokH.update(`${f}:`);
  if (fs.existsSync(p)) tokH.update(fs.readFileSync(p));
  tokH.update(';');
}
// The text index is per max-token setting, length-policy and prompt-encoding version (features.ts).
const textStore = AppendStore.open(path.join(nsDir, `text-${tokH.digest('hex').slice(0, 32)}-max${manifest.maxTokens}-lp${LENGTH_POLICY_VERSION}-enc${PROMPT_ENCODING_VERSION}`));
const zStore = AppendStore.open(path.join(nsDir, 'z'));
const normal = gaussian(mulberry32(1));
const pairs = Array.from({ length: N_PAIRS }, (_, i) => ({ prompt: `synthetic prompt ${i}`, chosen: `good answer ${i}`, rejected: `bad answer ${i}` }));
for (let b = 0; b < N_PAIRS; b += 5000) {
  const text: Array<[string, string]> = [];
  const z: Array<[string, Uint8Array]> = [];
  for (const p of pairs.slice(b, b + 5000))
    for (const r of [p.chosen, p.rejected]) {
      const fk = sha(`fake:${p.prompt}:${r}`);
      text.push([sha(`${p.prompt.length}:${p.prompt}\u0000${r}`), fk]);
      z.push([fk, f32Bytes(Float32Array.from({ length: H }, normal))]);
    }
  textStore.putInline(text);
  zStore.putMany(z);
}
textStore.close();
zStore.close();

const t0 = performance.now();
const scores = await scorePairs({ modelDir, pairs, cacheRoot, ep: 'cpu' });
const s = (performance.now() - t0) / 1000;
fs.rmSync(work, { recursive: true, force: true });
console.log(
  JSON.stringify({
    bench: 'sparserm-score',
    responses: 2 * N_PAIRS,
    hiddenSize: H,
    directions: manifest.selected.length,
    seconds: +s.toFixed(3),
    responsesPerSecond: Math.round((2 * N_PAIRS) / s),
    checked: scores.length === N_PAIRS && scores.every((x) => Number.isFinite(x.margin)),
    ...machine(),
  }),
);
