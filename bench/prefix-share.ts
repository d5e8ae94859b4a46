/**
 * Prefix sharing (issue 13 item 3): pairs whose prompt is 10× as long as each response, resid_post(L) of the
 * responses with the prompt run once per pair (prefix-share.ts, KV-cache graph) vs every response with its whole
 * prompt (openBackbone). Target: shared ≤ 0.6× the unshared time. A random Gemma-2-shaped checkpoint (demo builder,
 * a mid-sized shape so the matmuls dominate), written to a temp folder; graphs are built and sessions warmed before
 * timing; the two paths alternate over ROUNDS and the median is reported. Prints one JSON line.
 * Env: PAIRS (default 32), PROMPT (tokens, default 400), RESPONSE (tokens, default 40), ROUNDS (default 3).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openBackbone } from '../main/engine/backbone';
import { writeDemoCheckpoint, type DemoModelShape } from '../main/engine/demo/checkpoint-builder';
import { mulberry32 } from '../main/engine/sparserm/rng';
import { openPrefixShared } from '../main/engine/sparserm/prefix-share';
import { machine } from './lib/machine';

const PAIRS = Number(process.env.PAIRS ?? 32);
const PROMPT = Number(process.env.PROMPT ?? 400);
const RESPONSE = Number(process.env.RESPONSE ?? 40);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LAYER = 5;
const shape: DemoModelShape = { vocabSize: 4096, hiddenSize: 512, intermediateSize: 2048, numLayers: 6, numHeads: 8, numKvHeads: 4, headDim: 64, slidingWindow: 4096 };

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'srm-bench-prefix-'));
try {
  const ckpt = path.join(work, 'ckpt');
  writeDemoCheckpoint(ckpt, shape, 1);
  const rand = mulberry32(7);
  const ids = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rand() * (shape.vocabSize - 3)));
  const seqs: number[][] = [];
  const from: number[] = [];
  for (let p = 0; p < PAIRS; p++) {
    const prompt = [2, ...ids(PROMPT - 1)];
    for (let r = 0; r < 2; r++) {
      seqs.push([...prompt, ...ids(RESPONSE)]);
      from.push(PROMPT);
    }
  }
  const cacheDir = path.join(work, 'graphs');
  const shared = await openPrefixShared({ checkpoint: ckpt, layer: LAYER, cacheDir, ep: 'cpu' });
  const plain = await openBackbone({ checkpoint: ckpt, layer: LAYER, cacheDir, ep: 'cpu' });
  await shared.hiddenFrom(seqs.slice(0, 2), from.slice(0, 2));
  await plain.hidden(seqs.slice(0, 2));
  const times = { shared: [] as number[], unshared: [] as number[] };
  // CPU seconds of this process too: under load (shared machine) wall time is noisy, the work done is not.
  const cpu = { shared: [] as number[], unshared: [] as number[] };
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let maxErr = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = performance.now();
    let c0 = cpuNow();
    const a = await shared.hiddenFrom(seqs, from);
    times.shared.push((performance.now() - t0) / 1000);
    cpu.shared.push(cpuNow() - c0);
    t0 = performance.now();
    c0 = cpuNow();
    const b = await plain.hidden(seqs);
    times.unshared.push((performance.now() - t0) / 1000);
    cpu.unshared.push(cpuNow() - c0);
    if (round === 0) {
      for (let i = 0; i < seqs.length; i++) for (let k = PROMPT * shape.hiddenSize; k < b[i].length; k++) maxErr = Math.max(maxErr, Math.abs(a[i][k] - b[i][k]));
    }
  }
  await shared.close();
  await plain.close();
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const s = median(times.shared);
  const u = median(times.unshared);
  console.log(
    JSON.stringify({
      bench: 'prefix-share',
      shape: { ...shape, layer: LAYER },
      pairs: PAIRS,
      promptTokens: PROMPT,
      responseTokens: RESPONSE,
      sharedSeconds: +s.toFixed(3),
      unsharedSeconds: +u.toFixed(3),
      ratio: +(s / u).toFixed(3),
      sharedCpuSeconds: +median(cpu.shared).toFixed(3),
      unsharedCpuSeconds: +median(cpu.unshared).toFixed(3),
      cpuRatio: +(median(cpu.shared) / median(cpu.unshared)).toFixed(3),
      target: '≤ 0.6',
      maxAbsDiff: maxErr,
      rounds: ROUNDS,
      ...machine(),
    }),
  );
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
