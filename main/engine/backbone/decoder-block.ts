/**
 * The decoder block, emitted once for both graphs (decoder-graph.ts: truncated resid_post; kv-graph.ts: KV cache):
 * RMSNorm (family norm style), q/k/v projections, RoPE, GQA attention with the optional score softcap and a mask,
 * o projection, sandwich or plain norms, gated MLP. What differs between the graphs — positions/RoPE tables, masks,
 * where keys and values come from — is passed in. Everything family-specific comes from ArchitectureSpec / config.
 */
import type { GraphBuilder } from '../onnx/graph-builder';
import type { Checkpoint, LayerTensorKey } from './checkpoint';
import { emitLinear, type Precision } from './linear-weights';

/** What transformers' eager path adds to masked scores (torch.finfo(float32).min). */
export const MASKED = -3.4028234663852886e38;

export interface BlockEmitter {
  /** Norm weight initializer (1 + w for zero-centred styles), counted as one tensor. */
  normInit(name: string): Promise<string>;
  rmsNorm(x: string, scale: string): string;
  /** Rotates the last axis (halves) of x by the given cos/sin tables (broadcastable to x). */
  rope(x: string, cos: string, sin: string): string;
  /**
   * Block i on residual x. `keysValues` gets this block's new keys (after RoPE) and values [B,nKV,T,hd] and returns
   * the keys/values to attend over (e.g. past ++ new); `mask` is a bool tensor broadcastable to [B,nKV,g,T,S].
   * Returns the block's output, named `outName`.
   */
  block(
    i: number,
    x: string,
    opts: {
      cos: string;
      sin: string;
      mask: string;
      outName: string;
      keysValues?: (k: string, v: string) => { k: string; v: string };
      /**
       * An i64 [1] tensor q: keys and values come from every new token, but queries, attention output and MLP only
       * from new tokens q.. (the output has T − q rows). A prefix run that needs only this block's keys/values
       * passes T − 1 and skips almost all of the block's work.
       */
      queryFrom?: string;
    },
  ): Promise<string>;
}

/** `tick` runs after each weight tensor is written (progress, event-loop breathing). */
export function blockEmitter(b: GraphBuilder, ckpt: Checkpoint, precision: Precision, tick: () => Promise<void>): BlockEmitter {
  const c = ckpt.config;
  const arch = c.arch;
  const H = c.hiddenSize;
  const nH = c.numHeads;
  const nKV = c.numKvHeads;
  const hd = c.headDim;
  const groups = nH / nKV;
  const masked = b.constF32([MASKED], [], 'masked');
  const normEps = b.constF32([c.rmsNormEps], [], 'rms_eps');
  const lastAxis = b.constI64([-1]);
  const scoreScale = b.constF32([Math.pow(c.queryScale, -0.5)], [], 'score_scale');
  const softcap = c.attnSoftcap !== null ? b.constF32([c.attnSoftcap], [], 'softcap') : undefined;
  const halfSplit = b.constI64([hd / 2, hd / 2]);
  const perm0213 = [0, 2, 1, 3];
  const weightName = (key: LayerTensorKey, i: number) => ckpt.layerTensor(key, i).name;

  const normInit = async (name: string): Promise<string> => {
    const w = ckpt.readF32(name, [H]);
    if (arch.normStyle === 'one_plus_weight') for (let k = 0; k < w.length; k++) w[k] = Math.fround(1 + w[k]);
    const init = b.initializer(`${name}.scale`, w, [H]);
    await tick();
    return init;
  };
  /** x·Wᵀ for a stored [out, in] weight, at the graph's precision (linear-weights.ts). */
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
  const rope = (x: string, cos: string, sin: string): string => {
    const [x1, x2] = b.node('Split', [x, halfSplit], 2, { axis: -1 });
    const rotated = b.op('Concat', [b.op('Neg', [x2]), x1], { axis: -1 });
    return b.op('Add', [b.op('Mul', [x, cos]), b.op('Mul', [rotated, sin])]);
  };
  const heads = async (xn: string, key: LayerTensorKey, i: number, n: number) =>
    b.op('Transpose', [b.op('Reshape', [await linear(xn, key, i), b.constI64([0, 0, n, hd])])], { perm: perm0213 }); // [B,n,T,hd]

  return {
    normInit,
    rmsNorm,
    rope,
    async block(i, x, o) {
      const fromQuery = (t: string, axis: number) => (o.queryFrom ? b.op('Slice', [t, o.queryFrom, b.constI64([2 ** 53]), b.constI64([axis])]) : t);
      const xn = rmsNorm(x, await normInit(weightName('inputNorm', i)));
      const q = await heads(fromQuery(xn, 1), 'q', i, nH);
      const kNew = rope(await heads(xn, 'k', i, nKV), o.cos, o.sin);
      const vNew = await heads(xn, 'v', i, nKV);
      const { k, v } = o.keysValues ? o.keysValues(kNew, vNew) : { k: kNew, v: vNew };
      // GQA without materialising repeated keys: query head h = kv·groups + r uses kv head h // groups.
      const qg = b.op('Reshape', [rope(q, fromQuery(o.cos, 2), fromQuery(o.sin, 2)), b.constI64([0, nKV, groups, -1, hd])]); // [B,nKV,g,T,hd]
      const kT = b.op('Unsqueeze', [b.op('Transpose', [k], { perm: [0, 1, 3, 2] }), b.constI64([2])]); // [B,nKV,1,hd,S]
      let s = b.op('Mul', [b.op('MatMul', [qg, kT]), scoreScale]); // [B,nKV,g,T,S]
      if (softcap) s = b.op('Mul', [b.op('Tanh', [b.op('Div', [s, softcap])]), softcap]); // before the mask
      const p = b.op('Softmax', [b.op('Where', [fromQuery(o.mask, 3), s, masked])], { axis: -1 });
      const att = b.op('MatMul', [p, b.op('Unsqueeze', [v, b.constI64([2])])]); // [B,nKV,g,T,hd]
      const merged = b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [att, b.constI64([0, nH, -1, hd])])], { perm: perm0213 }), b.constI64([0, 0, nH * hd])]);
      let attn = await linear(merged, 'o', i);
      let h: string;
      let mlpIn: string;
      const xq = fromQuery(x, 1);
      if (arch.sandwichNorms) {
        attn = rmsNorm(attn, await normInit(weightName('postAttnNorm', i)));
        h = b.op('Add', [xq, attn]);
        mlpIn = rmsNorm(h, await normInit(weightName('preFfnNorm', i)));
      } else {
        h = b.op('Add', [xq, attn]);
        mlpIn = rmsNorm(h, await normInit(weightName('postAttnNorm', i)));
      }
      const gate = await linear(mlpIn, 'gate', i);
      const up = await linear(mlpIn, 'up', i);
      const act = arch.activation === 'gelu_tanh' ? b.op('Gelu', [gate], { approximate: 'tanh' }) : b.op('Mul', [gate, b.op('Sigmoid', [gate])]);
      let mlp = await linear(b.op('Mul', [act, up]), 'down', i);
      if (arch.sandwichNorms) mlp = rmsNorm(mlp, await normInit(weightName('postFfnNorm', i)));
      return b.op('Add', [h, mlp], {}, o.outName);
    },
  };
}
