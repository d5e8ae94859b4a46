/**
 * GPU check (issue 13 item 5): on whatever GPU this machine has, tokens/s of the backbone and parity of its
 * resid_post against the CPU f32 reference — f16 graphs on the GPU, as the engine runs them there by default.
 *
 *   npx tsx bench/gpu-check.ts [--ep auto|cuda|webgpu|cpu] [--quick] [--out FILE.json]
 *   node gpu-check.mjs …           # the same, from the offline bundle (bench/gpu/make-bundle.sh)
 *
 * Two random-weight Gemma-2 checkpoints written to a temp dir (deleted after), weights scaled 1/√fan_in:
 *  - demo-kit shape: hidden 64, 6 blocks, 4/2 heads, head_dim 24, layer 3 (the demo kit's backbone shape);
 *  - Gemma-2-2B blocks: hidden 2304, intermediate 9216, 8/4 heads, head_dim 256, 2 blocks, layer 1.
 * Per setup: the CPU f32 graph is the reference; the checked run is the f16 graph on the chosen provider.
 * Parity = ‖y − y_ref‖ / ‖y_ref‖ over every token and dim (and the worst per-token value), NaN/Inf counted.
 * Without a GPU the provider falls back to CPU and the script says so ("no GPU adapter: CPU fallback"), then
 * still measures the f16 graph on CPU against f32 (weight rounding only: x86 ORT has no f16 GEMM).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openBackbone } from '../main/engine/backbone';
import { DEMO_MODEL_SHAPE, writeDemoCheckpoint, type DemoModelShape } from '../main/engine/demo/checkpoint-builder';
import { EP_REQUESTS, defaultPrecisionFor, ortInfo, probeGpus, selectExecutionProvider, type EpRequest } from '../main/engine/runtime/ort';

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const request = (arg('--ep') ?? 'auto') as EpRequest;
if (!(EP_REQUESTS as readonly string[]).includes(request)) throw new Error(`--ep: expected one of ${EP_REQUESTS.join(', ')}, got ${request}`);
const quick = process.argv.includes('--quick');
const outFile = arg('--out');
const log = (s: string) => process.stdout.write(`${s}\n`);

interface Setup {
  name: string;
  shape: DemoModelShape;
  layer: number;
  seqs: number;
  tokens: number;
}
const setups: Setup[] = [
  { name: 'demo-kit shape (hidden 64, L3)', shape: { ...DEMO_MODEL_SHAPE, vocabSize: 1024 }, layer: 3, seqs: 8, tokens: 128 },
  {
    name: 'Gemma-2-2B blocks (hidden 2304, L1)',
    shape: { vocabSize: 1024, hiddenSize: 2304, intermediateSize: 9216, numLayers: 2, numHeads: 8, numKvHeads: 4, headDim: 256, slidingWindow: 4096 },
    layer: 1,
    seqs: quick ? 2 : 4,
    tokens: quick ? 64 : 256,
  },
];

/** Deterministic token ids in [3, vocab) after BOS (2). */
function ids(n: number, vocab: number, seed: number): number[] {
  let s = seed * 2654435761 + 1;
  return [2, ...Array.from({ length: n - 1 }, () => 3 + ((s = (s * 1103515245 + 12345) % 2 ** 31) % (vocab - 3)))];
}

function parity(ref: Float32Array[], got: Float32Array[], H: number) {
  let d2 = 0;
  let r2 = 0;
  let worstToken = 0;
  let nonFinite = 0;
  ref.forEach((a, s) => {
    const b = got[s];
    for (let t = 0; t < a.length / H; t++) {
      let td = 0;
      let tr = 0;
      for (let k = t * H; k < (t + 1) * H; k++) {
        if (!Number.isFinite(b[k])) nonFinite++;
        td += (b[k] - a[k]) ** 2;
        tr += a[k] ** 2;
      }
      d2 += td;
      r2 += tr;
      worstToken = Math.max(worstToken, Math.sqrt(td / (tr || 1)));
    }
  });
  return { relError: Math.sqrt(d2 / r2), worstTokenRelError: worstToken, nonFinite };
}

const probe = await probeGpus(request, true);
const choice = selectExecutionProvider(request, probe);
const info = ortInfo();
const header = {
  date: new Date().toISOString(),
  host: os.hostname(),
  cpu: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`,
  node: process.version,
  onnxruntime: info.version,
  backends: info.backends.map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`).join(', '),
  request,
  ep: choice.ep,
  reason: choice.reason,
};
log(`# GPU check ${header.date} — ${header.cpu}, Node ${header.node}, ONNX Runtime ${header.onnxruntime} (${header.backends})`);
if (choice.ep === 'cpu') log(`no GPU adapter: CPU fallback (${choice.reason})`);
else log(`GPU: ${choice.ep} (${choice.reason})`);

const precision = defaultPrecisionFor(choice.ep === 'cpu' ? 'webgpu' : choice.ep); // the GPU default (f16), on CPU too
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sparserm-gpu-check-'));
const results: Array<Record<string, unknown>> = [];
try {
  for (const [i, s] of setups.entries()) {
    const dir = path.join(work, `ckpt-${i}`);
    writeDemoCheckpoint(dir, s.shape, 7 + i);
    const seqs = Array.from({ length: s.seqs }, (_, j) => ids(s.tokens, s.shape.vocabSize, j + 1));
    const nTok = s.seqs * s.tokens;
    const cacheDir = path.join(work, 'graphs');
    const time = async (b: Awaited<ReturnType<typeof openBackbone>>) => {
      await b.hidden(seqs.slice(0, 1)); // warm-up (kernel compilation, allocations)
      const runs = quick ? 1 : 3;
      let best = Infinity;
      let y: Float32Array[] = [];
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        y = await b.hidden(seqs);
        best = Math.min(best, (performance.now() - t0) / 1000);
      }
      return { y, tokensPerSecond: Math.round(nTok / best) };
    };
    const ref = await openBackbone({ checkpoint: dir, layer: s.layer, precision: 'f32', ep: 'cpu', cacheDir });
    const r = await time(ref);
    await ref.close();
    const dev = await openBackbone({ checkpoint: dir, layer: s.layer, precision, ep: request, cacheDir }); // its epReason tells the fallback
    const d = await time(dev);
    const p = parity(r.y, d.y, s.shape.hiddenSize);
    const row = {
      setup: s.name,
      tokens: nTok,
      cpuF32TokensPerSecond: r.tokensPerSecond,
      ep: dev.info.ep,
      epReason: dev.info.epReason,
      precision,
      tokensPerSecond: d.tokensPerSecond,
      speedupVsCpuF32: +(d.tokensPerSecond / r.tokensPerSecond).toFixed(2),
      ...p,
    };
    await dev.close();
    results.push(row);
    log(
      `${s.name}: ${nTok} tokens; CPU f32 ${row.cpuF32TokensPerSecond} tok/s; ${row.ep} ${precision} ${row.tokensPerSecond} tok/s (×${row.speedupVsCpuF32}); ` +
        `resid_post relative error ${p.relError.toExponential(2)} (worst token ${p.worstTokenRelError.toExponential(2)}), NaN/Inf ${p.nonFinite}`,
    );
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
const doc = { ...header, results };
console.log(JSON.stringify(doc));
if (outFile) fs.writeFileSync(outFile, JSON.stringify(doc, null, 2) + '\n');
