/**
 * ONNX graph of a decoder truncated after block L: input `inputs_embeds` (raw embedding rows, [batch, seq, hidden],
 * f32), output `resid_post` = output of block L ([batch, seq, hidden], f32) — transformers' hidden_states[L + 1].
 * Everything architecture-specific comes from the ArchitectureSpec record and config.json (see gemma2.md).
 *
 * Design choices:
 * - The embedding gather happens outside the graph (the caller reads only the needed rows from the
 *   safetensors): a 256k-vocab embedding would add 2.4–3.7 GB to the session for a lookup. The graph still applies
 *   the embedding scale, so its input matches transformers' `inputs_embeds`.
 * - Batches are RIGHT-padded. Positions are 0..T-1 for every row and the mask is causal, so a real token only
 *   attends to keys at or before it, which are all real: padding cannot change any real position's output (pad
 *   rows compute garbage that the caller drops). No attention-mask input is needed.
 * - Norms, RoPE, scores, softcap, softmax and the residual stream are f32. Precision 'f16' stores the linear
 *   weights as float16 and runs those matmuls in f16 (inputs cast down, outputs cast back up to f32), which is what
 *   a CUDA session wants; it is checked against the f32 graph by tests.
 * - Weights stream tensor by tensor into the external data file: peak memory is one tensor (plus its transpose),
 *   never the checkpoint.
 */
import path from 'node:path';

import { GraphBuilder, saveModel } from '../onnx/graph-builder';
import { isSlidingLayer } from './architecture';
import type { Checkpoint } from './checkpoint';
import type { Llama3RopeScaling } from './config';
import { blockEmitter } from './decoder-block';
import type { Precision } from './linear-weights';

export type { Precision } from './linear-weights';
export { transpose2d } from './linear-weights';

/** Bump when the graph's math or interface changes: it is part of the graph cache key. */
export const GRAPH_FORMAT = 'decoder-resid-post-v1';
export const GRAPH_INPUT = 'inputs_embeds';
export const GRAPH_OUTPUT = 'resid_post';
const OPSET = 21; // Gelu(approximate="tanh") needs ≥ 20; ReduceMean takes axes as input from 18.
const FLOAT = 1;

export interface BuildDecoderGraphOptions {
  layer: number;
  precision: Precision;
  /** Folder to write model.onnx + model.onnx.data into (created). */
  dir: string;
  /** Called after each weight tensor is written. */
  onProgress?: (doneTensors: number, totalTensors: number) => void;
  /** Stored in the model metadata. */
  metadata?: Record<string, string>;
}

export interface BuiltGraph {
  modelPath: string;
  dataPath: string;
  nodeCount: number;
}

/**
 * inv_freq[i] = theta^(−2i/hd), rounded like torch computes it in float32; with `llama3` rope_scaling, rescaled as
 * transformers' _compute_llama3_parameters does (each step rounded to f32, as its f32 tensors are).
 */
export function ropeInvFreq(theta: number, headDim: number, scaling: Llama3RopeScaling | null = null): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const expo = Math.fround((2 * i) / headDim);
    out[i] = Math.fround(1 / Math.fround(Math.pow(theta, expo)));
  }
  if (!scaling) return out;
  const f = Math.fround;
  const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: oldCtx } = scaling;
  const lowWavelen = oldCtx / lo;
  const highWavelen = oldCtx / hi;
  for (let i = 0; i < half; i++) {
    const inv = out[i];
    const wavelen = f((2 * Math.PI) / inv);
    if (wavelen > lowWavelen) out[i] = f(inv / factor);
    else if (wavelen >= highWavelen) {
      const smooth = f((f(oldCtx / wavelen) - lo) / (hi - lo));
      out[i] = f(f(f((1 - smooth) * inv) / factor) + f(smooth * inv));
    }
  }
  return out;
}

export async function buildDecoderGraph(ckpt: Checkpoint, opts: BuildDecoderGraphOptions): Promise<BuiltGraph> {
  ckpt.validateThrough(opts.layer);
  const b = new GraphBuilder({ name: `${ckpt.config.arch.id}_resid_post_L${opts.layer}`, externalData: { dir: opts.dir, file: 'model.onnx.data' } });
  try {
    return await buildInto(b, ckpt, opts);
  } catch (err) {
    b.abort();
    throw err;
  }
}

async function buildInto(b: GraphBuilder, ckpt: Checkpoint, opts: BuildDecoderGraphOptions): Promise<BuiltGraph> {
  const c = ckpt.config;
  const arch = c.arch;
  const { layer, precision } = opts;
  const H = c.hiddenSize;

  const totalTensors = ckpt.tensorsThrough(layer).length - 1;
  let doneTensors = 0;
  const tick = async () => {
    opts.onProgress?.(++doneTensors, totalTensors);
    // Let the event loop breathe between tensors (progress, cancellation, UI).
    await new Promise<void>((r) => setImmediate(r));
  };

  // ---- positions, RoPE tables, masks ----
  const x0 = b.input(GRAPH_INPUT, 'float32', ['batch', 'seq', H]);
  const shape = b.op('Shape', [x0]);
  const seqLen = b.op('Gather', [shape, b.constI64([1], [])], { axis: 0 }); // scalar T
  const posI = b.op('Range', [b.constI64([0], []), seqLen, b.constI64([1], [])], {}, 'positions'); // [T]
  const posF = b.op('Cast', [posI], { to: FLOAT });
  const freqs = b.op('Mul', [b.op('Unsqueeze', [posF, b.constI64([1])]), b.initializer('rope_inv_freq', ropeInvFreq(c.ropeTheta, c.headDim, c.ropeScaling), [c.headDim / 2])]);
  const emb = b.op('Concat', [freqs, freqs], { axis: -1 }); // [T, hd]
  const cos = b.op('Cos', [emb], {}, 'rope_cos');
  const sin = b.op('Sin', [emb], {}, 'rope_sin');
  const qi = b.op('Unsqueeze', [posI, b.constI64([1])]); // [T, 1]
  const kj = b.op('Unsqueeze', [posI, b.constI64([0])]); // [1, T]
  const causal = b.op('LessOrEqual', [kj, qi], {}, 'mask_causal'); // j ≤ i
  let sliding: string | undefined;
  const needsSliding = c.slidingWindow !== null && Array.from({ length: layer + 1 }, (_, i) => isSlidingLayer(arch, i)).some(Boolean);
  if (needsSliding) {
    // key j allowed iff i − window < j ≤ i
    const lower = b.op('Sub', [qi, b.constI64([c.slidingWindow!], [])]);
    sliding = b.op('And', [causal, b.op('Greater', [kj, lower])], {}, 'mask_sliding');
  }
  const blocks = blockEmitter(b, ckpt, precision, tick);

  // ---- embedding scale ----
  let x = x0;
  if (arch.embeddingScale === 'sqrt_hidden') {
    // transformers multiplies by a tensor of sqrt(hidden) in the compute dtype: f32 here.
    x = b.op('Mul', [x0, b.constF32([Math.fround(Math.sqrt(H))], [], 'embed_scale')]);
  }
  for (let i = 0; i <= layer; i++) {
    const mask = sliding && isSlidingLayer(arch, i) ? sliding : causal;
    x = await blocks.block(i, x, { cos, sin, mask, outName: i === layer ? GRAPH_OUTPUT : `resid_post_${i}` });
  }
  b.output(GRAPH_OUTPUT, 'float32', ['batch', 'seq', H]);

  const modelPath = path.join(opts.dir, 'model.onnx');
  const bytes = b.toModel({
    opset: OPSET,
    docString: `resid_post of block ${layer} (${arch.id}, ${precision})`,
    metadata: { format: GRAPH_FORMAT, layer: String(layer), precision, architecture: arch.id, ...opts.metadata },
  });
  saveModel(modelPath, bytes);
  return { modelPath, dataPath: b.externalDataPath!, nodeCount: b.nodeCount };
}
