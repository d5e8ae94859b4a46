/**
 * BackboneSession: token ids → resid_post(L) per token, through the cached ONNX graph on ONNX Runtime.
 *
 * Batching: sequences are sorted by length (longest first) and grouped greedily so that a batch holds at most
 * `maxBatchTokens` padded tokens and its attention scores stay under `maxAttentionBytes`; batches are right-padded
 * (see decoder-graph.ts: padding cannot change a real position), and results come back in the caller's order.
 */
import { CancelledError, InputError, throwIfAborted } from '../errors';
import { createSession, type Ep, type EpRequest, type OrtSession } from '../runtime/ort';
import { loadCheckpoint, type Checkpoint } from './checkpoint';
import { GRAPH_INPUT, GRAPH_OUTPUT, type Precision } from './decoder-graph';
import { ensureBackboneGraph } from './graph-cache';
import { assertMemoryFor } from './memory';
import { parsePrecision } from './linear-weights';

export interface OpenBackboneOptions {
  /** Checkpoint folder (config.json + safetensors). */
  checkpoint: string;
  /** Block whose output (resid_post) is returned, 0-based. */
  layer: number;
  precision?: Precision;
  ep?: EpRequest;
  /** Graph cache folder (default cacheDirs.graphs()). */
  cacheDir?: string;
  /** ORT threads per op (default: every core the OS gives this process, runtime/ort.ts). */
  intraOpThreads?: number;
  /**
   * Run ONNX Runtime in a worker thread so forward passes don't block this thread's event loop (Electron main,
   * `serve`). Same numbers; feeds are copied once more. Default false.
   */
  worker?: boolean;
  /** Hashing and graph building progress (first open of a checkpoint/layer only). */
  onProgress?: (event: { phase: 'hash' | 'build'; done: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface BackboneInfo {
  checkpointDir: string;
  /** Content hash of what resid_post(layer) depends on (content-hash.ts). */
  checkpointHash: string;
  architecture: string;
  layer: number;
  hiddenSize: number;
  numLayers: number;
  vocabSize: number;
  bosTokenId?: number;
  precision: Precision;
  ep: Ep;
  epReason: string;
  graphPath: string;
  /** False when this open built the graph. */
  graphReused: boolean;
}

export interface HiddenOptions {
  /** Sequences done so far / total, after each batch. */
  onProgress?: (doneSequences: number, totalSequences: number) => void;
  signal?: AbortSignal;
  /** Padded tokens per batch (default 2048). */
  maxBatchTokens?: number;
  /** Bound on one batch's attention-score tensor (default 256 MiB). */
  maxAttentionBytes?: number;
}

export interface BackboneSession {
  readonly info: BackboneInfo;
  /** Per sequence a Float32Array [T × hiddenSize], row-major, BOS included (whatever ids were given). */
  hidden(seqs: number[][], opts?: HiddenOptions): Promise<Float32Array[]>;
  close(): Promise<void>;
}

let runCount = 0;
/** Real backbone forward runs (ORT batches) since process start; tests use it to prove caches are hit. */
export function backboneRunCounter(): number {
  return runCount;
}
/** Counts a backbone forward run made outside this module (the prefix-shared KV path, sparserm/prefix-share.ts). */
export function noteBackboneRun(): void {
  runCount++;
}

/** Groups sequence indices into batches (longest first). Pure; exported for tests. */
export function planBatches(lengths: readonly number[], opts: { maxBatchTokens: number; maxAttentionBytes: number; numHeads: number }): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches: number[][] = [];
  let cur: number[] = [];
  let width = 0;
  for (const i of order) {
    if (cur.length > 0) {
      const n = cur.length + 1;
      const fits = n * width <= opts.maxBatchTokens && n * opts.numHeads * width * width * 4 <= opts.maxAttentionBytes;
      if (!fits) {
        batches.push(cur);
        cur = [];
      }
    }
    if (cur.length === 0) width = lengths[i];
    cur.push(i);
  }
  if (cur.length) batches.push(cur);
  return batches;
}

export async function openBackbone(opts: OpenBackboneOptions): Promise<BackboneSession> {
  const ckpt = await loadCheckpoint(opts.checkpoint);
  let session: OrtSession | undefined;
  try {
    const c = ckpt.config;
    if (!Number.isInteger(opts.layer) || opts.layer < 0 || opts.layer >= c.numLayers) {
      throw new InputError({ file: ckpt.dir, field: 'layer', expected: `a block index 0..${c.numLayers - 1} (num_hidden_layers = ${c.numLayers})`, got: String(opts.layer) });
    }
    const precision = parsePrecision(opts.precision);
    // Before hashing and building (minutes for an 8B checkpoint): refuse clearly rather than be OOM-killed later.
    assertMemoryFor(c, opts.layer, precision, ckpt.dir);
    const graph = await ensureBackboneGraph(ckpt, { layer: opts.layer, precision, cacheDir: opts.cacheDir, onProgress: opts.onProgress, signal: opts.signal });
    throwIfAborted(opts.signal);
    session = await createSession(graph.graphPath, { ep: opts.ep ?? 'auto', intraOpThreads: opts.intraOpThreads, worker: opts.worker });
    const info: BackboneInfo = {
      checkpointDir: ckpt.dir,
      checkpointHash: graph.manifest.checkpointHash,
      architecture: c.arch.id,
      layer: opts.layer,
      hiddenSize: c.hiddenSize,
      numLayers: c.numLayers,
      vocabSize: c.vocabSize,
      bosTokenId: c.bosTokenId,
      precision,
      ep: session.ep,
      epReason: session.epReason,
      graphPath: graph.graphPath,
      graphReused: graph.reused,
    };
    return makeSession(ckpt, session, info);
  } catch (err) {
    await session?.close();
    ckpt.close();
    throw err;
  }
}

function makeSession(ckpt: Checkpoint, ort: OrtSession, info: BackboneInfo): BackboneSession {
  const H = info.hiddenSize;
  let closed = false;
  return {
    info,
    async hidden(seqs, opts = {}) {
      if (closed) throw new Error('backbone session is closed');
      seqs.forEach((s, i) => {
        if (!Array.isArray(s) || s.length === 0) throw new InputError({ field: `seqs[${i}]`, expected: 'a non-empty list of token ids', got: Array.isArray(s) ? 'an empty list' : typeof s });
        for (const id of s) {
          if (!Number.isInteger(id) || id < 0 || id >= info.vocabSize) {
            throw new InputError({ field: `seqs[${i}]`, expected: `token ids in 0..${info.vocabSize - 1} (vocab_size)`, got: String(id) });
          }
        }
      });
      const batches = planBatches(
        seqs.map((s) => s.length),
        { maxBatchTokens: opts.maxBatchTokens ?? 2048, maxAttentionBytes: opts.maxAttentionBytes ?? 256 * 1024 * 1024, numHeads: ckpt.config.numHeads },
      );
      const out: Float32Array[] = new Array(seqs.length);
      let done = 0;
      for (const batch of batches) {
        throwIfAborted(opts.signal);
        const T = Math.max(...batch.map((i) => seqs[i].length));
        const feed = new Float32Array(batch.length * T * H); // pad rows stay zero
        batch.forEach((si, row) => feed.set(ckpt.embeddingRows(seqs[si]), row * T * H));
        runCount++;
        const res = await ort.run({ [GRAPH_INPUT]: { type: 'float32', data: feed, dims: [batch.length, T, H] } }, { signal: opts.signal });
        const y = res[GRAPH_OUTPUT].data as Float32Array;
        batch.forEach((si, row) => {
          out[si] = y.slice(row * T * H, (row * T + seqs[si].length) * H);
          // 16-bit matmuls can overflow on Gemma's large activations: never hand on Inf/NaN as features.
          if (info.precision === 'f16' && !out[si].every(Number.isFinite)) {
            throw new Error(
              `the f16 graph produced NaN/Inf in resid_post of block ${info.layer} (sequence ${si}): activations overflow float16 on this input; use precision f32`,
            );
          }
        });
        done += batch.length;
        opts.onProgress?.(done, seqs.length);
      }
      if (opts.signal?.aborted) throw new CancelledError();
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await ort.close();
      ckpt.close();
    },
  };
}
