/**
 * ONNX decoder graph with a KV cache: prefill and incremental decoding, for generation (full depth + LM head) and for
 * prefix sharing (truncated at block L, resid_post out). One builder, parameterised by data (KvGraphSpec); every
 * family difference comes from ArchitectureSpec / config.json / lm-head.ts, projections go through emitLinear.
 *
 * Exported API (stable; generate/decoder.ts, prefix sharing and the OpenAI endpoint build on it):
 *   buildKvGraph(ckpt, { depth, logits?, captureLayer?, precision, dir }) → { modelPath, dataPath, nodeCount }
 *   kvInputName(i, 'key' | 'value') / kvOutputName(i, kind) — per block i in 0..lastBlock(spec)
 * Graph inputs:
 *   inputs_embeds   f32 [B, T, H]        raw embedding rows of the T new tokens (the graph applies the embedding scale)
 *   attention_mask  i64 [B, P + T]       1 = real token, 0 = padding, over past + new positions
 *   past.{i}.key    f32 [B, nKV, P, hd]  keys after RoPE of the P past positions (P may be 0); past.{i}.value alike
 *   query_from      i64 [1]              truncated depth only: block L computes queries, attention output and MLP for
 *                                        new tokens query_from.. (0 = all); its keys/values still cover every token
 * Graph outputs:
 *   present.{i}.key / present.{i}.value  f32 [B, nKV, P + T, hd]  (past ++ new: feed back as the next past)
 *   logits          f32 [B, T or 1, V]   full depth only; 'last' = only the last new position (left-padded batches)
 *   resid_post      f32 [B, T − query_from, H]  truncated depth: output of block L
 *   resid_capture   f32 [B, T, H]        full depth with captureLayer: output of that block (score while generating)
 * Positions are cumsum(attention_mask) − 1 (transformers' convention), so left padding, right padding and padding
 * in the middle of a cache (a row that stopped) all give each real token its true position. Key j is visible to
 * new token i iff it is real, j ≤ P + i (causal by index) and, on sliding layers, pos(i) − window < pos(j): the
 * window applies over absolute positions, past included. Masked scores get finfo(f32).min after the softcap, as in
 * transformers' eager path; a query with no visible key (a pad row) gets a uniform softmax, never NaN.
 */
import path from 'node:path';

import { GraphBuilder, saveModel } from '../onnx/graph-builder';
import { isSlidingLayer } from './architecture';
import type { Checkpoint } from './checkpoint';
import { blockEmitter } from './decoder-block';
import { GRAPH_INPUT, GRAPH_OUTPUT, ropeInvFreq, type BuiltGraph } from './decoder-graph';
import { readHeadSpec } from './lm-head';
import { emitLinear, type Precision } from './linear-weights';

/** Bump when this graph's math or interface changes: part of the graph cache key. */
export const KV_GRAPH_FORMAT = 'decoder-kv-v1';
export const KV_INPUT_EMBEDS = GRAPH_INPUT;
export const KV_INPUT_MASK = 'attention_mask';
export const KV_INPUT_QUERY_FROM = 'query_from';
export const KV_OUTPUT_LOGITS = 'logits';
export const KV_OUTPUT_RESID = GRAPH_OUTPUT;
export const KV_OUTPUT_CAPTURE = 'resid_capture';
const OPSET = 21;
const FLOAT = 1;
const BOOL = 9;

export interface KvGraphSpec {
  /** 'full': all blocks + final norm + LM head (+ final softcap). A block index L: blocks 0..L, output resid_post. */
  depth: 'full' | number;
  /** Full depth: logits of every new position or only of the last one (default 'last'). */
  logits?: 'last' | 'all';
  /** Full depth: also output resid_post of this block as `resid_capture`. */
  captureLayer?: number;
  precision: Precision;
}

export interface BuildKvGraphOptions extends KvGraphSpec {
  dir: string;
  onProgress?: (doneTensors: number, totalTensors: number) => void;
  metadata?: Record<string, string>;
}

export const kvInputName = (i: number, kind: 'key' | 'value') => `past.${i}.${kind}`;
export const kvOutputName = (i: number, kind: 'key' | 'value') => `present.${i}.${kind}`;

/** Index of the last block the graph runs. */
export function lastBlock(ckpt: Checkpoint, spec: Pick<KvGraphSpec, 'depth'>): number {
  return spec.depth === 'full' ? ckpt.config.numLayers - 1 : spec.depth;
}

/** A short, file-name-safe id of the spec (part of the cache folder name). */
export function kvVariant(spec: KvGraphSpec): string {
  if (spec.depth !== 'full') return `kvL${spec.depth}q`; // q: takes query_from (graphs before it lack the input)
  return `kvfull-${spec.logits ?? 'last'}${spec.captureLayer !== undefined ? `-c${spec.captureLayer}` : ''}`;
}

export async function buildKvGraph(ckpt: Checkpoint, opts: BuildKvGraphOptions): Promise<BuiltGraph> {
  const last = lastBlock(ckpt, opts);
  ckpt.validateThrough(last);
  if (opts.captureLayer !== undefined && (opts.depth !== 'full' || !Number.isInteger(opts.captureLayer) || opts.captureLayer < 0 || opts.captureLayer > last)) {
    throw new Error(`captureLayer ${opts.captureLayer} needs depth 'full' and a block index 0..${last}`);
  }
  const b = new GraphBuilder({ name: `${ckpt.config.arch.id}_${kvVariant(opts)}`, externalData: { dir: opts.dir, file: 'model.onnx.data' } });
  try {
    return await buildInto(b, ckpt, opts, last);
  } catch (err) {
    b.abort();
    throw err;
  }
}

async function buildInto(b: GraphBuilder, ckpt: Checkpoint, opts: BuildKvGraphOptions, last: number): Promise<BuiltGraph> {
  const c = ckpt.config;
  const arch = c.arch;
  const { precision } = opts;
  const full = opts.depth === 'full';
  const head = full ? readHeadSpec(ckpt) : undefined;
  const H = c.hiddenSize;
  const nKV = c.numKvHeads;
  const hd = c.headDim;

  const totalTensors = ckpt.tensorsThrough(last).length - 1 + (head ? 2 : 0);
  let doneTensors = 0;
  const tick = async () => {
    opts.onProgress?.(++doneTensors, totalTensors);
    await new Promise<void>((r) => setImmediate(r));
  };

  // ---- inputs, positions, RoPE tables, masks ----
  const x0 = b.input(KV_INPUT_EMBEDS, 'float32', ['batch', 'seq', H]);
  const am = b.input(KV_INPUT_MASK, 'int64', ['batch', 'total']);
  const zero = b.constI64([0], []);
  const one = b.constI64([1], []);
  const T = b.op('Gather', [b.op('Shape', [x0]), one], { axis: 0 }); // scalar
  const S = b.op('Gather', [b.op('Shape', [am]), one], { axis: 0 });
  const P = b.op('Sub', [S, T]);
  const posK = b.op('Sub', [b.op('CumSum', [am, one]), one], {}, 'positions'); // [B,S]
  const posQ = b.op('Slice', [posK, b.op('Unsqueeze', [P, zero]), b.op('Unsqueeze', [S, zero]), b.constI64([1])]); // [B,T]
  const invFreq = b.initializer('rope_inv_freq', ropeInvFreq(c.ropeTheta, hd, c.ropeScaling), [hd / 2]);
  const freqs = b.op('Mul', [b.op('Unsqueeze', [b.op('Cast', [posQ], { to: FLOAT }), b.constI64([2])]), invFreq]); // [B,T,hd/2]
  const emb = b.op('Concat', [freqs, freqs], { axis: -1 });
  const cos = b.op('Unsqueeze', [b.op('Cos', [emb]), one], {}, 'rope_cos'); // [B,1,T,hd]
  const sin = b.op('Unsqueeze', [b.op('Sin', [emb]), one], {}, 'rope_sin');
  const idxQ = b.op('Unsqueeze', [b.op('Range', [P, S, one]), one]); // [T,1]
  const idxK = b.op('Unsqueeze', [b.op('Range', [zero, S, one]), zero]); // [1,S]
  const real = b.op('Unsqueeze', [b.op('Cast', [am], { to: BOOL }), one]); // [B,1,S]
  const visible = b.op('And', [b.op('LessOrEqual', [idxK, idxQ]), real]); // [B,T,S]
  const maskAxes = b.constI64([1, 2]);
  const causal = b.op('Unsqueeze', [visible, maskAxes], {}, 'mask_causal'); // [B,1,1,T,S]
  let sliding: string | undefined;
  if (c.slidingWindow !== null && Array.from({ length: last + 1 }, (_, i) => isSlidingLayer(arch, i)).some(Boolean)) {
    const lower = b.op('Sub', [b.op('Unsqueeze', [posQ, b.constI64([2])]), b.constI64([c.slidingWindow], [])]); // [B,T,1]
    const inWindow = b.op('Greater', [b.op('Unsqueeze', [posK, one]), lower]); // [B,T,S]
    sliding = b.op('Unsqueeze', [b.op('And', [visible, inWindow]), maskAxes], {}, 'mask_sliding');
  }
  const blocks = blockEmitter(b, ckpt, precision, tick);
  // A prefix run needs only block L's keys/values: query_from lets it skip the rest of block L (prefix-share.ts).
  const queryFrom = full ? undefined : b.input(KV_INPUT_QUERY_FROM, 'int64', [1]);

  let x = x0;
  if (arch.embeddingScale === 'sqrt_hidden') x = b.op('Mul', [x0, b.constF32([Math.fround(Math.sqrt(H))], [], 'embed_scale')]);

  for (let i = 0; i <= last; i++) {
    const outName = !full && i === last ? KV_OUTPUT_RESID : full && i === opts.captureLayer ? KV_OUTPUT_CAPTURE : `resid_post_${i}`;
    x = await blocks.block(i, x, {
      cos,
      sin,
      mask: sliding && isSlidingLayer(arch, i) ? sliding : causal,
      outName,
      queryFrom: i === last ? queryFrom : undefined,
      keysValues: (kNew, vNew) => {
        for (const kind of ['key', 'value'] as const) b.input(kvInputName(i, kind), 'float32', ['batch', nKV, 'past', hd]);
        return {
          k: b.op('Concat', [kvInputName(i, 'key'), kNew], { axis: 2 }, kvOutputName(i, 'key')), // [B,nKV,S,hd]
          v: b.op('Concat', [kvInputName(i, 'value'), vNew], { axis: 2 }, kvOutputName(i, 'value')),
        };
      },
    });
  }
  for (let i = 0; i <= last; i++) for (const kind of ['key', 'value'] as const) b.output(kvOutputName(i, kind), 'float32', ['batch', nKV, 'total', hd]);

  if (head) {
    if (opts.captureLayer !== undefined) b.output(KV_OUTPUT_CAPTURE, 'float32', ['batch', 'seq', H]);
    // Logits of the last position only: with left padding it is every row's last real token.
    const xl = (opts.logits ?? 'last') === 'last' ? b.op('Slice', [x, b.constI64([-1]), b.constI64([2 ** 53]), b.constI64([1])]) : x;
    const normed = blocks.rmsNorm(xl, await blocks.normInit(head.finalNorm));
    let logits = emitLinear(b, ckpt, head.lmHead, normed, precision);
    await tick();
    if (head.finalSoftcap !== null) {
      const cap = b.constF32([head.finalSoftcap], [], 'final_softcap');
      logits = b.op('Mul', [b.op('Tanh', [b.op('Div', [logits, cap])]), cap]);
    }
    b.op('Identity', [logits], {}, KV_OUTPUT_LOGITS);
    b.output(KV_OUTPUT_LOGITS, 'float32', ['batch', (opts.logits ?? 'last') === 'last' ? 1 : 'seq', c.vocabSize]);
  } else {
    b.output(KV_OUTPUT_RESID, 'float32', ['batch', 'rows', H]);
  }

  const modelPath = path.join(opts.dir, 'model.onnx');
  const bytes = b.toModel({
    opset: OPSET,
    docString: `KV-cache decoder ${kvVariant(opts)} (${arch.id}, ${precision})`,
    metadata: { format: KV_GRAPH_FORMAT, variant: kvVariant(opts), precision, architecture: arch.id, ...opts.metadata },
  });
  saveModel(modelPath, bytes);
  return { modelPath, dataPath: b.externalDataPath!, nodeCount: b.nodeCount };
}
