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
 * Graph outputs:
 *   present.{i}.key / present.{i}.value  f32 [B, nKV, P + T, hd]  (past ++ new: feed back as the next past)
 *   logits          f32 [B, T or 1, V]   full depth only; 'last' = only the last new position (left-padded batches)
 *   resid_post      f32 [B, T, H]        truncated depth: output of block L
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
import type { Checkpoint, LayerTensorKey } from './checkpoint';
import { GRAPH_INPUT, GRAPH_OUTPUT, ropeInvFreq, type BuiltGraph } from './decoder-graph';
import { readHeadSpec } from './lm-head';
import { emitLinear, type Precision } from './linear-weights';

/** Bump when this graph's math or interface changes: part of the graph cache key. */
export const KV_GRAPH_FORMAT = 'decoder-kv-v1';
export const KV_INPUT_EMBEDS = GRAPH_INPUT;
export const KV_INPUT_MASK = 'attention_mask';
export const KV_OUTPUT_LOGITS = 'logits';
export const KV_OUTPUT_RESID = GRAPH_OUTPUT;
export const KV_OUTPUT_CAPTURE = 'resid_capture';
const OPSET = 21;
const FLOAT = 1;
const BOOL = 9;
const MASKED = -3.4028234663852886e38;

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
  if (spec.depth !== 'full') return `kvL${spec.depth}`;
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
  const nH = c.numHeads;
  const nKV = c.numKvHeads;
  const hd = c.headDim;
  const groups = nH / nKV;

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
  const masked = b.constF32([MASKED], [], 'masked');
  const normEps = b.constF32([c.rmsNormEps], [], 'rms_eps');
  const lastAxis = b.constI64([-1]);
  const scoreScale = b.constF32([Math.pow(c.queryScale, -0.5)], [], 'score_scale');
  const softcap = c.attnSoftcap !== null ? b.constF32([c.attnSoftcap], [], 'softcap') : undefined;
  const halfSplit = b.constI64([hd / 2, hd / 2]);
  const shapeBTHd = (heads: number) => b.constI64([0, 0, heads, hd]);
  const perm0213 = [0, 2, 1, 3];

  // ---- weights ----
  const weightName = (key: LayerTensorKey, i: number) => ckpt.layerTensor(key, i).name;
  const normInit = async (name: string): Promise<string> => {
    const w = ckpt.readF32(name, [H]);
    if (arch.normStyle === 'one_plus_weight') for (let k = 0; k < w.length; k++) w[k] = Math.fround(1 + w[k]);
    const init = b.initializer(`${name}.scale`, w, [H]);
    await tick();
    return init;
  };
  const linear = async (x: string, key: LayerTensorKey, i: number): Promise<string> => {
    const y = emitLinear(b, ckpt, weightName(key, i), x, precision);
    await tick();
    return y;
  };
  const rmsNorm = (x: string, scale: string): string => {
    const ms = b.op('ReduceMean', [b.op('Mul', [x, x]), lastAxis], { keepdims: 1 });
    const inv = b.op('Reciprocal', [b.op('Sqrt', [b.op('Add', [ms, normEps])])]);
    return b.op('Mul', [b.op('Mul', [x, inv]), scale]);
  };
  const rope = (x: string): string => {
    const [x1, x2] = b.node('Split', [x, halfSplit], 2, { axis: -1 });
    const rotated = b.op('Concat', [b.op('Neg', [x2]), x1], { axis: -1 });
    return b.op('Add', [b.op('Mul', [x, cos]), b.op('Mul', [rotated, sin])]);
  };
  const heads = async (xn: string, key: LayerTensorKey, i: number, n: number) =>
    b.op('Transpose', [b.op('Reshape', [await linear(xn, key, i), shapeBTHd(n)])], { perm: perm0213 }); // [B,n,T,hd]

  let x = x0;
  if (arch.embeddingScale === 'sqrt_hidden') x = b.op('Mul', [x0, b.constF32([Math.fround(Math.sqrt(H))], [], 'embed_scale')]);

  for (let i = 0; i <= last; i++) {
    const xn = rmsNorm(x, await normInit(weightName('inputNorm', i)));
    const q = await heads(xn, 'q', i, nH);
    const kNew = rope(await heads(xn, 'k', i, nKV));
    const vNew = await heads(xn, 'v', i, nKV);
    for (const kind of ['key', 'value'] as const) b.input(kvInputName(i, kind), 'float32', ['batch', nKV, 'past', hd]);
    const k = b.op('Concat', [kvInputName(i, 'key'), kNew], { axis: 2 }, kvOutputName(i, 'key')); // [B,nKV,S,hd]
    const v = b.op('Concat', [kvInputName(i, 'value'), vNew], { axis: 2 }, kvOutputName(i, 'value'));
    // GQA without repeating keys: query head h = kv·groups + r reads kv head h // groups.
    const qg = b.op('Reshape', [rope(q), b.constI64([0, nKV, groups, -1, hd])]); // [B,nKV,g,T,hd]
    const kT = b.op('Unsqueeze', [b.op('Transpose', [k], { perm: [0, 1, 3, 2] }), b.constI64([2])]); // [B,nKV,1,hd,S]
    let s = b.op('Mul', [b.op('MatMul', [qg, kT]), scoreScale]); // [B,nKV,g,T,S]
    if (softcap) s = b.op('Mul', [b.op('Tanh', [b.op('Div', [s, softcap])]), softcap]);
    const mask = sliding && isSlidingLayer(arch, i) ? sliding : causal;
    const p = b.op('Softmax', [b.op('Where', [mask, s, masked])], { axis: -1 });
    const o = b.op('MatMul', [p, b.op('Unsqueeze', [v, b.constI64([2])])]); // [B,nKV,g,T,hd]
    const merged = b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [o, b.constI64([0, nH, -1, hd])])], { perm: perm0213 }), b.constI64([0, 0, nH * hd])]);
    let attn = await linear(merged, 'o', i);
    let h: string;
    let mlpIn: string;
    if (arch.sandwichNorms) {
      attn = rmsNorm(attn, await normInit(weightName('postAttnNorm', i)));
      h = b.op('Add', [x, attn]);
      mlpIn = rmsNorm(h, await normInit(weightName('preFfnNorm', i)));
    } else {
      h = b.op('Add', [x, attn]);
      mlpIn = rmsNorm(h, await normInit(weightName('postAttnNorm', i)));
    }
    const gate = await linear(mlpIn, 'gate', i);
    const up = await linear(mlpIn, 'up', i);
    const act = arch.activation === 'gelu_tanh' ? b.op('Gelu', [gate], { approximate: 'tanh' }) : b.op('Mul', [gate, b.op('Sigmoid', [gate])]);
    let mlp = await linear(b.op('Mul', [act, up]), 'down', i);
    if (arch.sandwichNorms) mlp = rmsNorm(mlp, await normInit(weightName('postFfnNorm', i)));
    const name = !full && i === last ? KV_OUTPUT_RESID : full && i === opts.captureLayer ? KV_OUTPUT_CAPTURE : `resid_post_${i}`;
    x = b.op('Add', [h, mlp], {}, name);
  }
  for (let i = 0; i <= last; i++) for (const kind of ['key', 'value'] as const) b.output(kvOutputName(i, kind), 'float32', ['batch', nKV, 'total', hd]);

  if (head) {
    if (opts.captureLayer !== undefined) b.output(KV_OUTPUT_CAPTURE, 'float32', ['batch', 'seq', H]);
    // Logits of the last position only: with left padding it is every row's last real token.
    const xl = (opts.logits ?? 'last') === 'last' ? b.op('Slice', [x, b.constI64([-1]), b.constI64([2 ** 53]), b.constI64([1])]) : x;
    const normed = rmsNorm(xl, await normInit(head.finalNorm));
    let logits = emitLinear(b, ckpt, head.lmHead, normed, precision);
    await tick();
    if (head.finalSoftcap !== null) {
      const cap = b.constF32([head.finalSoftcap], [], 'final_softcap');
      logits = b.op('Mul', [b.op('Tanh', [b.op('Div', [logits, cap])]), cap]);
    }
    b.op('Identity', [logits], {}, KV_OUTPUT_LOGITS);
    b.output(KV_OUTPUT_LOGITS, 'float32', ['batch', (opts.logits ?? 'last') === 'last' ? 1 : 'seq', c.vocabSize]);
  } else {
    b.output(KV_OUTPUT_RESID, 'float32', ['batch', 'seq', H]);
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
