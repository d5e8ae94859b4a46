import fs from 'node:fs';
import path from 'node:path';

import { openBackbone } from '../backbone';
import { loadTokenizer } from '../backbone/tokenizer';
import { throwIfAborted } from '../errors';
import { dataHome } from '../paths';
import { readDemoPairs } from './demo-data';
import { ensureDemoKit, type DemoKit, type DemoProgress } from './kit';

/**
 * The main job on the demo kit, in one call (the CLI's `sparserm demo` and the desktop app's first-run
 * "demo kit in one click" both call this): ensure the kit → tokenize the TruthfulQA pairs with the chat template →
 * run the backbone → write the result file.
 */

export interface RunDemoOptions {
  onProgress?: (p: DemoProgress) => void;
  signal?: AbortSignal;
  /** Where the kit lives (default models/demo). */
  kitDir?: string;
  /** Where results go (default <data home>/demo). */
  outDir?: string;
  /** Use only the first N pairs (quick runs); default all. */
  limit?: number;
  env?: NodeJS.ProcessEnv;
}

export interface DemoResult {
  kit: DemoKit;
  /** The file the demo produced (what the CLI prints last). */
  outputFile: string;
  /** Short human summary lines. */
  summary: string[];
  pairs: number;
  ep: string;
  epReason: string;
}

export async function runDemo(opts: RunDemoOptions = {}): Promise<DemoResult> {
  const { signal, onProgress } = opts;
  const kit = await ensureDemoKit({ dir: opts.kitDir, onProgress, signal });
  throwIfAborted(signal);

  const pairs = readDemoPairs(kit.dataset).slice(0, opts.limit ?? Infinity);
  const tokenizer = await loadTokenizer(kit.checkpoint);
  const encoded = pairs.map((p) => ({ pair: p, chosen: tokenizer.encodeChat(p.prompt, p.chosen), rejected: tokenizer.encodeChat(p.prompt, p.rejected) }));
  onProgress?.({ phase: 'tokenize', done: pairs.length, total: pairs.length });

  const session = await openBackbone({ checkpoint: kit.checkpoint, layer: kit.layer, ep: 'auto' });
  const seqs = encoded.flatMap((e) => [e.chosen.ids, e.rejected.ids]);
  const hidden = await session.hidden(seqs, {
    signal,
    onProgress: (done, total) => onProgress?.({ phase: 'backbone', done, total }),
  });
  const H = session.info.hiddenSize;
  const pooled = (h: Float32Array, start: number, end: number) => {
    const z = new Float64Array(H);
    for (let t = start; t < end; t++) for (let k = 0; k < H; k++) z[k] += h[t * H + k] / (end - start);
    return Math.hypot(...z);
  };
  const rows = encoded.map((e, i) => ({
    id: e.pair.id,
    chosen: { tokens: e.chosen.ids.length, span: [e.chosen.poolStart, e.chosen.poolEnd], meanNorm: pooled(hidden[2 * i], e.chosen.poolStart, e.chosen.poolEnd) },
    rejected: { tokens: e.rejected.ids.length, span: [e.rejected.poolStart, e.rejected.poolEnd], meanNorm: pooled(hidden[2 * i + 1], e.rejected.poolStart, e.rejected.poolEnd) },
  }));

  const outDir = path.resolve(opts.outDir ?? path.join(dataHome(opts.env), 'demo'));
  fs.mkdirSync(outDir, { recursive: true });
  const outputFile = path.join(outDir, 'demo-truthfulqa.hidden.json');
  const doc = { label: kit.label, checkpoint: kit.checkpoint, layer: kit.layer, ep: session.info.ep, pairs: rows };
  writeAtomic(outputFile, JSON.stringify(doc, null, 1) + '\n');
  const tokens = seqs.reduce((n, s) => n + s.length, 0);
  return {
    kit,
    outputFile,
    pairs: pairs.length,
    ep: session.info.ep,
    epReason: session.info.epReason,
    summary: [
      `${kit.label}: ${kit.checkpoint}`,
      `${pairs.length} TruthfulQA pairs, ${seqs.length} responses, ${tokens} tokens through resid_post(${kit.layer}) on ${session.info.ep} (${session.info.epReason})`,
      `result: ${outputFile}`,
    ],
  };
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
