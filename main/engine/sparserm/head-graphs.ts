/**
 * The head's heavy arithmetic as small ONNX graphs run by ONNX Runtime (MLAS GEMMs are ~100× faster than
 * scalar TypeScript loops on the same cores). Weights are graph INPUTS, so one session per graph serves every
 * training step; Adam and the bookkeeping stay in TypeScript.
 *  - `pairGrad`: one minibatch of pairs → summed loss, #correct, and gradients of the mean loss.
 *  - `forward`: scores for standardised rows.
 *  - `matmul`: A [n × k] · B [k × m] (projections onto decoder directions, baselines).
 */
import { GraphBuilder } from '../onnx/graph-builder';
import { createSession, type OrtSession, type TensorValue } from '../runtime/ort';
import type { Loss } from './head';

const sessions = new Map<string, Promise<OrtSession>>();

function session(key: string, build: () => Uint8Array): Promise<OrtSession> {
  let s = sessions.get(key);
  if (!s) {
    s = createSession(build(), { ep: 'cpu', intraOpThreads: Number(process.env.SPARSERM_HEAD_THREADS ?? 1) });
    sessions.set(key, s);
    s.catch(() => sessions.delete(key));
  }
  return s;
}

const f32 = (data: Float32Array, dims: number[]): TensorValue => ({ type: 'float32', data, dims });

/** With `adam`, the graph also applies one Adam step and outputs the new parameters and moments. */
function buildPairGrad(loss: Loss, margin: number, adam = false): Uint8Array {
  const b = new GraphBuilder({ name: `head_pair_grad_${loss}${adam ? '_adam' : ''}` });
  const xw = b.input('xw', 'float32', ['b', 'm']);
  const xl = b.input('xl', 'float32', ['b', 'm']);
  const W1T = b.input('W1T', 'float32', ['m', 'h']);
  const b1 = b.input('b1', 'float32', ['h']);
  const w2 = b.input('w2', 'float32', ['h', 1]);
  const invB = b.input('inv_b', 'float32', [1]);
  const zero = b.constF32([0]);
  const side = (x: string) => {
    const pre = b.op('Add', [b.op('MatMul', [x, W1T]), b1]);
    const h = b.op('Relu', [pre]);
    return { h, mask: b.op('Cast', [b.op('Greater', [pre, zero])], { to: 1 }), s: b.op('MatMul', [h, w2]) };
  };
  const W = side(xw);
  const L = side(xl);
  const d = b.op('Sub', [W.s, L.s]); // [b, 1]
  let lossV: string;
  let g: string; // dLoss_i / dd_i
  if (loss === 'margin') {
    const v = b.op('Sub', [b.constF32([margin]), d]);
    lossV = b.op('Relu', [v]);
    g = b.op('Neg', [b.op('Cast', [b.op('Greater', [v, zero])], { to: 1 })]);
  } else {
    const negD = b.op('Neg', [d]);
    lossV = b.op('Softplus', [negD]);
    g = b.op('Neg', [b.op('Sigmoid', [negD])]);
  }
  g = b.op('Mul', [g, invB]);
  b.node('ReduceSum', [lossV], ['loss_sum'], { keepdims: 0 });
  b.node('ReduceSum', [b.op('Cast', [b.op('Greater', [d, zero])], { to: 1 })], ['correct'], { keepdims: 0 });
  // gw2 = (h_w − h_l)ᵀ g
  b.node('MatMul', [b.op('Transpose', [b.op('Sub', [W.h, L.h])]), g], ['g_w2']);
  // dH_w = (g w2ᵀ) ⊙ mask_w ; dH_l = −(g w2ᵀ) ⊙ mask_l
  const gw2T = b.op('MatMul', [g, b.op('Transpose', [w2])]); // [b, h]
  const dHw = b.op('Mul', [gw2T, W.mask]);
  const dHl = b.op('Neg', [b.op('Mul', [gw2T, L.mask])]);
  b.node('Add', [b.op('MatMul', [b.op('Transpose', [xw]), dHw]), b.op('MatMul', [b.op('Transpose', [xl]), dHl])], ['g_W1T']);
  b.node('ReduceSum', [b.op('Add', [dHw, dHl]), b.constI64([0])], ['g_b1'], { keepdims: 0 });
  b.output('loss_sum', 'float32', []);
  b.output('correct', 'float32', []);
  if (!adam) {
    b.output('g_W1T', 'float32', ['m', 'h']);
    b.output('g_b1', 'float32', ['h']);
    b.output('g_w2', 'float32', ['h', 1]);
    return b.toModel({ opset: 21 });
  }
  // Adam (Kingma & Ba, the "efficient" form): m' = β1 m + (1−β1) g; v' = β2 v + (1−β2) g²;
  // p' = p − lr_t m' / (√v' + ε), with lr_t = lr √(1−β2^t) / (1−β1^t) computed by the caller.
  const lrT = b.input('lr_t', 'float32', [1]);
  const beta1 = b.constF32([0.9]);
  const oneMinusB1 = b.constF32([0.1]);
  const beta2 = b.constF32([0.999]);
  const oneMinusB2 = b.constF32([0.001]);
  const eps = b.constF32([1e-8]);
  const shapes: Record<string, Array<string | number>> = { W1T: ['m', 'h'], b1: ['h'], w2: ['h', 1] };
  for (const [name, grad] of [['W1T', 'g_W1T'], ['b1', 'g_b1'], ['w2', 'g_w2']] as const) {
    const mIn = b.input(`m_${name}`, 'float32', shapes[name]);
    const vIn = b.input(`v_${name}`, 'float32', shapes[name]);
    const mNew = b.op('Add', [b.op('Mul', [mIn, beta1]), b.op('Mul', [grad, oneMinusB1])], {}, `new_m_${name}`);
    const vNew = b.op('Add', [b.op('Mul', [vIn, beta2]), b.op('Mul', [b.op('Mul', [grad, grad]), oneMinusB2])], {}, `new_v_${name}`);
    const upd = b.op('Div', [b.op('Mul', [mNew, lrT]), b.op('Add', [b.op('Sqrt', [vNew]), eps])]);
    b.node('Sub', [name, upd], [`new_${name}`]);
    for (const out of [`new_${name}`, `new_m_${name}`, `new_v_${name}`]) b.output(out, 'float32', shapes[name]);
  }
  return b.toModel({ opset: 21 });
}

function buildForward(): Uint8Array {
  const b = new GraphBuilder({ name: 'head_forward' });
  const x = b.input('x', 'float32', ['n', 'm']);
  const W1T = b.input('W1T', 'float32', ['m', 'h']);
  const b1 = b.input('b1', 'float32', ['h']);
  const w2 = b.input('w2', 'float32', ['h', 1]);
  const b2 = b.input('b2', 'float32', [1]);
  const s = b.op('Add', [b.op('MatMul', [b.op('Relu', [b.op('Add', [b.op('MatMul', [x, W1T]), b1])]), w2]), b2]);
  b.node('Squeeze', [s, b.constI64([1])], ['score']);
  b.output('score', 'float32', ['n']);
  return b.toModel({ opset: 21 });
}

/** Exact per-feature contributions x ⊙ (W1ᵀ (a ⊙ w2)) with a = [x W1ᵀ + b1 > 0], for many rows at once. */
function buildContributions(): Uint8Array {
  const b = new GraphBuilder({ name: 'head_contributions' });
  const x = b.input('x', 'float32', ['n', 'm']);
  const W1T = b.input('W1T', 'float32', ['m', 'h']);
  const b1 = b.input('b1', 'float32', ['h']);
  const w2row = b.input('w2row', 'float32', [1, 'h']);
  const W1 = b.input('W1', 'float32', ['h', 'm']);
  const pre = b.op('Add', [b.op('MatMul', [x, W1T]), b1]);
  const active = b.op('Cast', [b.op('Greater', [pre, b.constF32([0])])], { to: 1 });
  const g = b.op('MatMul', [b.op('Mul', [active, w2row]), W1]);
  b.node('Mul', [x, g], ['c']);
  b.output('c', 'float32', ['n', 'm']);
  return b.toModel({ opset: 21 });
}

/** Contributions [n × m] for standardised rows x (see head.ts `decompose`, which this matches row by row). */
export async function contributionsBatch(p: HeadParamsT, W1: Float32Array, x: Float32Array, n: number): Promise<Float32Array> {
  if (n === 0) return new Float32Array(0);
  const s = await session('contrib', buildContributions);
  const out = new Float32Array(n * p.m);
  const chunk = 4096;
  for (let r = 0; r < n; r += chunk) {
    const k = Math.min(chunk, n - r);
    const res = await s.run({
      x: f32(x.subarray(r * p.m, (r + k) * p.m), [k, p.m]),
      W1T: f32(p.W1T, [p.m, p.h]),
      b1: f32(p.b1, [p.h]),
      w2row: f32(p.w2, [1, p.h]),
      W1: f32(W1, [p.h, p.m]),
    });
    out.set(res.c.data as Float32Array, r * p.m);
  }
  return out;
}

function buildMatmul(): Uint8Array {
  const b = new GraphBuilder({ name: 'matmul' });
  const a = b.input('a', 'float32', ['n', 'k']);
  const c = b.input('b', 'float32', ['k', 'm']);
  b.node('MatMul', [a, c], ['y']);
  b.output('y', 'float32', ['n', 'm']);
  return b.toModel({ opset: 21 });
}

export interface HeadParamsT {
  m: number;
  h: number;
  /** [m × h] (transposed W1: the layout MatMul wants). */
  W1T: Float32Array;
  b1: Float32Array;
  /** [h]. */
  w2: Float32Array;
  b2: number;
}

export async function pairGrad(
  loss: Loss,
  margin: number,
  p: HeadParamsT,
  xw: Float32Array,
  xl: Float32Array,
  n: number,
): Promise<{ lossSum: number; correct: number; gW1T: Float32Array; gb1: Float32Array; gw2: Float32Array }> {
  const s = await session(`grad:${loss}:${margin}`, () => buildPairGrad(loss, margin));
  const r = await s.run({
    xw: f32(xw, [n, p.m]),
    xl: f32(xl, [n, p.m]),
    W1T: f32(p.W1T, [p.m, p.h]),
    b1: f32(p.b1, [p.h]),
    w2: f32(p.w2, [p.h, 1]),
    inv_b: f32(Float32Array.of(1 / n), [1]),
  });
  return {
    lossSum: (r.loss_sum.data as Float32Array)[0],
    correct: (r.correct.data as Float32Array)[0],
    gW1T: r.g_W1T.data as Float32Array,
    gb1: r.g_b1.data as Float32Array,
    gw2: r.g_w2.data as Float32Array,
  };
}

export interface AdamState {
  step: number;
  m: { W1T: Float32Array; b1: Float32Array; w2: Float32Array };
  v: { W1T: Float32Array; b1: Float32Array; w2: Float32Array };
}

export function newAdamState(p: HeadParamsT): AdamState {
  const zeros = () => ({ W1T: new Float32Array(p.W1T.length), b1: new Float32Array(p.b1.length), w2: new Float32Array(p.w2.length) });
  return { step: 0, m: zeros(), v: zeros() };
}

/** One fused minibatch step (gradients + Adam) in ONNX Runtime; updates `p` and `state` in place. */
export async function trainStep(
  loss: Loss,
  margin: number,
  lr: number,
  p: HeadParamsT,
  state: AdamState,
  xw: Float32Array,
  xl: Float32Array,
  n: number,
): Promise<{ lossSum: number; correct: number }> {
  const s = await session(`step:${loss}:${margin}`, () => buildPairGrad(loss, margin, true));
  state.step++;
  const lrT = (lr * Math.sqrt(1 - 0.999 ** state.step)) / (1 - 0.9 ** state.step);
  const dims = { W1T: [p.m, p.h], b1: [p.h], w2: [p.h, 1] };
  const feeds: Record<string, TensorValue> = {
    xw: f32(xw, [n, p.m]),
    xl: f32(xl, [n, p.m]),
    W1T: f32(p.W1T, dims.W1T),
    b1: f32(p.b1, dims.b1),
    w2: f32(p.w2, dims.w2),
    inv_b: f32(Float32Array.of(1 / n), [1]),
    lr_t: f32(Float32Array.of(lrT), [1]),
  };
  for (const k of ['W1T', 'b1', 'w2'] as const) {
    feeds[`m_${k}`] = f32(state.m[k], dims[k]);
    feeds[`v_${k}`] = f32(state.v[k], dims[k]);
  }
  const r = await s.run(feeds);
  for (const k of ['W1T', 'b1', 'w2'] as const) {
    p[k].set(r[`new_${k}`].data as Float32Array);
    state.m[k] = r[`new_m_${k}`].data as Float32Array;
    state.v[k] = r[`new_v_${k}`].data as Float32Array;
  }
  return { lossSum: (r.loss_sum.data as Float32Array)[0], correct: (r.correct.data as Float32Array)[0] };
}

/** Scores of standardised rows x [n × m], in chunks. */
export async function forwardScores(p: HeadParamsT, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await session('forward', buildForward);
  const out = new Float32Array(n);
  const chunk = 16384;
  for (let r = 0; r < n; r += chunk) {
    const k = Math.min(chunk, n - r);
    const res = await s.run({
      x: f32(x.subarray(r * p.m, (r + k) * p.m), [k, p.m]),
      W1T: f32(p.W1T, [p.m, p.h]),
      b1: f32(p.b1, [p.h]),
      w2: f32(p.w2, [p.h, 1]),
      b2: f32(Float32Array.of(p.b2), [1]),
    });
    out.set(res.score.data as Float32Array, r);
  }
  return out;
}

/** A [n × k] · B [k × m] → [n × m], chunked over rows. */
export async function matmul(a: Float32Array, n: number, k: number, bMat: Float32Array, m: number): Promise<Float32Array> {
  if (n === 0) return new Float32Array(0);
  const s = await session('matmul', buildMatmul);
  const out = new Float32Array(n * m);
  const chunk = Math.max(1, Math.floor((32 << 20) / (4 * Math.max(k, m))));
  for (let r = 0; r < n; r += chunk) {
    const rows = Math.min(chunk, n - r);
    const res = await s.run({ a: f32(a.subarray(r * k, (r + rows) * k), [rows, k]), b: f32(bMat, [k, m]) });
    out.set(res.y.data as Float32Array, r * m);
  }
  return out;
}
