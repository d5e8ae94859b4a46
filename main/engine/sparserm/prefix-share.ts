/**
 * Prefix sharing for feature extraction (issue 13 item 3): responses that share a prompt (the two of a pair, all
 * candidates of a prompt) run that prompt once. Each distinct prefix goes through the truncated-depth KV-cache graph
 * (kv-graph.ts, depth L) and only the responses run on its keys/values; resid_post(L) of the response tokens is what
 * the unshared path computes (same blocks, same positions: tests hold it within 1e-4). The prefix run sets the
 * graph's query_from to its last token: of block L it needs only keys and values, not attention output or MLP.
 *
 * Batching, length-bucketed: prefixes are sorted by length and run right-padded in batches (the padded slots stay
 * masked for good: attention_mask 0, positions are cumsum(mask) − 1); the responses of one prefix batch then run in
 * batches of similar length, each row on a copy of its prefix's keys/values. Batches are bounded by padded tokens,
 * attention-score bytes and key/value bytes, so memory stays bounded whatever the input.
 */
import { loadCheckpoint, type Checkpoint } from '../backbone/checkpoint';
import { ensureKvGraph } from '../backbone/graph-cache';
import { KV_INPUT_EMBEDS, KV_INPUT_MASK, KV_INPUT_QUERY_FROM, KV_OUTPUT_RESID, kvInputName, kvOutputName } from '../backbone/kv-graph';
import type { Precision } from '../backbone/linear-weights';
import { assertMemoryFor } from '../backbone/memory';
import { noteBackboneRun } from '../backbone/session';
import { throwIfAborted } from '../errors';
import { createSession, type EpRequest, type OrtSession, type TensorValue } from '../runtime/ort';

export interface PrefixSharedOptions {
  checkpoint: string;
  layer: number;
  precision?: Precision;
  ep?: EpRequest;
  cacheDir?: string;
  worker?: boolean;
  intraOpThreads?: number;
  signal?: AbortSignal;
  /** Padded tokens per run (default 2048). */
  maxBatchTokens?: number;
  /** Bound on one run's attention scores and on the copied keys/values, each (default 256 MiB). */
  maxBytes?: number;
}

export interface PrefixSharedBackbone {
  /**
   * Per sequence a Float32Array [T × hidden] of resid_post(L); only rows from[i]..T−1 are computed (the rows of the
   * shared prefix stay zero: callers pool response rows only). ids[0..from[i]) is the prefix shared by every
   * sequence that has the same one.
   */
  hiddenFrom(seqs: number[][], from: number[], opts?: { signal?: AbortSignal }): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** Chunks items (sorted longest first) so that rows × width ≤ tokens and the cost function stays ≤ bytes. */
function chunks<T>(items: T[], len: (t: T) => number, fits: (rows: number, width: number) => boolean): T[][] {
  const sorted = [...items].sort((a, b) => len(b) - len(a));
  const out: T[][] = [];
  let cur: T[] = [];
  for (const it of sorted) {
    if (cur.length && !fits(cur.length + 1, len(cur[0]))) {
      out.push(cur);
      cur = [];
    }
    cur.push(it);
  }
  if (cur.length) out.push(cur);
  return out;
}

export async function openPrefixShared(opts: PrefixSharedOptions): Promise<PrefixSharedBackbone> {
  const ckpt = await loadCheckpoint(opts.checkpoint);
  let ort: OrtSession | undefined;
  try {
    const precision = opts.precision ?? 'f32';
    assertMemoryFor(ckpt.config, opts.layer, precision, ckpt.dir);
    const graph = await ensureKvGraph(ckpt, { depth: opts.layer, precision, cacheDir: opts.cacheDir, signal: opts.signal });
    ort = await createSession(graph.graphPath, { ep: opts.ep ?? 'auto', worker: opts.worker, intraOpThreads: opts.intraOpThreads });
    return makeShared(ckpt, ort, opts);
  } catch (err) {
    await ort?.close();
    ckpt.close();
    throw err;
  }
}

interface Group {
  prefix: number[];
  members: number[];
  /** Row of this group in its prefix batch's present tensors. */
  row?: number;
}

function makeShared(ckpt: Checkpoint, ort: OrtSession, opts: PrefixSharedOptions): PrefixSharedBackbone {
  const c = ckpt.config;
  const H = c.hiddenSize;
  const L = opts.layer;
  const kvRow = c.numKvHeads * c.headDim; // floats per position per block and kind
  const maxTokens = opts.maxBatchTokens ?? 2048;
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;

  const presentNames = Array.from({ length: L + 1 }, (_, i) => [kvOutputName(i, 'key'), kvOutputName(i, 'value')]).flat();
  /** One run; `outputs`: only these come back (the prefix run needs the keys/values, a response run resid_post). */
  async function run(embeds: Float32Array, B: number, T: number, mask: BigInt64Array, S: number, past: (i: number, kind: 'key' | 'value') => TensorValue, outputs: string[], signal?: AbortSignal) {
    // The prefix run wants only keys/values: block L then computes its queries, attention output and MLP for one
    // token instead of the whole prompt (ORT runs every node whatever outputs are asked for).
    const queryFrom = outputs.includes(KV_OUTPUT_RESID) ? 0 : T - 1;
    const feeds: Record<string, TensorValue> = {
      [KV_INPUT_EMBEDS]: { type: 'float32', data: embeds, dims: [B, T, H] },
      [KV_INPUT_MASK]: { type: 'int64', data: mask, dims: [B, S] },
      [KV_INPUT_QUERY_FROM]: { type: 'int64', data: BigInt64Array.of(BigInt(queryFrom)), dims: [1] },
    };
    for (let i = 0; i <= L; i++) for (const kind of ['key', 'value'] as const) feeds[kvInputName(i, kind)] = past(i, kind);
    noteBackboneRun();
    return ort.run(feeds, { signal, outputs });
  }

  const embedRows = (rows: number[][], T: number): Float32Array => {
    const out = new Float32Array(rows.length * T * H); // padding stays zero (masked)
    rows.forEach((ids, r) => ids.length && out.set(ckpt.embeddingRows(ids), r * T * H));
    return out;
  };

  return {
    async hiddenFrom(seqs, from, o = {}) {
      const signal = o.signal ?? opts.signal;
      seqs.forEach((s, i) => {
        if (s.length < 2) throw new Error(`prefix sharing: sequence ${i} has ${s.length} token(s); a prefix and a response need 2`);
      });
      const groups = new Map<string, Group>();
      const start = seqs.map((s, i) => Math.min(Math.max(from[i], 1), s.length - 1)); // ≥ 1 prefix token, ≥ 1 response token
      seqs.forEach((s, i) => {
        const key = s.slice(0, start[i]).join(',');
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { prefix: s.slice(0, start[i]), members: [] }));
        g.members.push(i);
      });
      const out = seqs.map((s) => new Float32Array(s.length * H));
      const attn = (rows: number, q: number, k: number) => rows * c.numHeads * q * k * 4;
      const prefixBatches = chunks([...groups.values()], (g) => g.prefix.length, (rows, w) => rows * w <= maxTokens && attn(rows, w, w) <= maxBytes);
      for (const pb of prefixBatches) {
        throwIfAborted(signal);
        const P = pb[0].prefix.length;
        const Bp = pb.length;
        const pmask = new BigInt64Array(Bp * P);
        pb.forEach((g, r) => {
          g.row = r;
          for (let t = 0; t < g.prefix.length; t++) pmask[r * P + t] = 1n;
        });
        const empty = (): TensorValue => ({ type: 'float32', data: new Float32Array(0), dims: [Bp, c.numKvHeads, 0, c.headDim] });
        const pre = await run(embedRows(pb.map((g) => g.prefix), P), Bp, P, pmask, P, empty, presentNames, signal);
        const rows = pb.flatMap((g) => g.members.map((m) => ({ m, g, len: seqs[m].length - start[m] })));
        const kvBytes = (n: number) => n * (L + 1) * 2 * kvRow * P * 4;
        const batches = chunks(rows, (r) => r.len, (n, w) => n * w <= maxTokens && attn(n, w, P + w) <= maxBytes && kvBytes(n) <= maxBytes);
        for (const sb of batches) {
          throwIfAborted(signal);
          const B = sb.length;
          const T = sb[0].len;
          const S = P + T;
          const mask = new BigInt64Array(B * S);
          sb.forEach((r, b) => {
            mask.set(pmask.subarray(r.g.row! * P, (r.g.row! + 1) * P), b * S);
            for (let t = 0; t < r.len; t++) mask[b * S + P + t] = 1n;
          });
          const past = (i: number, kind: 'key' | 'value'): TensorValue => {
            const src = pre[kvOutputName(i, kind)].data as Float32Array; // [Bp, nKV, P, hd]: one row = nKV·P·hd floats
            const per = c.numKvHeads * P * c.headDim;
            const data = new Float32Array(B * per);
            sb.forEach((r, b) => data.set(src.subarray(r.g.row! * per, (r.g.row! + 1) * per), b * per));
            return { type: 'float32', data, dims: [B, c.numKvHeads, P, c.headDim] };
          };
          const res = await run(embedRows(sb.map((r) => seqs[r.m].slice(start[r.m])), T), B, T, mask, S, past, [KV_OUTPUT_RESID], signal);
          const y = res[KV_OUTPUT_RESID].data as Float32Array;
          sb.forEach((r, b) => {
            const rowsOut = y.subarray(b * T * H, (b * T + r.len) * H);
            // 16-bit matmuls can overflow on Gemma's large activations: never hand on Inf/NaN as features.
            if (opts.precision === 'f16' && !rowsOut.every(Number.isFinite)) {
              throw new Error(`the f16 graph produced NaN/Inf in resid_post of block ${L} (sequence ${r.m}): activations overflow float16 on this input; use precision f32`);
            }
            out[r.m].set(rowsOut, start[r.m] * H);
          });
        }
      }
      return out;
    },
    async close() {
      await ort.close();
      ckpt.close();
    },
  };
}
