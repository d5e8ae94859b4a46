/**
 * Projection + standardisation + reward head as ONE ONNX model, so any ONNX Runtime can score a pooled
 * representation without SparseRM code:  z [N, hidden] → p = z · Dᵀ → x = (p − mean) / std
 * → relu(x W1ᵀ + b1) w2 + b2 → score [N].  `projection` [N, 2K] (raw p) is a second output for inspection.
 */
import { GraphBuilder } from '../onnx/graph-builder';
import type { HeadWeights } from './head';

export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** `directions` is [m × hiddenSize] (the selected decoder rows, or any other m directions for baselines). */
export function buildHeadModel(directions: Float32Array, hiddenSize: number, head: HeadWeights, metadata: Record<string, string> = {}): Uint8Array {
  const m = head.inDim;
  if (directions.length !== m * hiddenSize) throw new Error(`buildHeadModel: ${directions.length} direction values for ${m} × ${hiddenSize}`);
  const b = new GraphBuilder({ name: 'sparserm_head' });
  const z = b.input('z', 'float32', ['n', hiddenSize]);
  const p = b.op('MatMul', [z, b.initializer('directions_T', transpose(directions, m, hiddenSize), [hiddenSize, m])], {}, 'projection');
  const invStd = head.std.map((s) => 1 / s);
  const x = b.op('Mul', [b.op('Sub', [p, b.initializer('feature_mean', head.mean, [m])]), b.initializer('feature_inv_std', invStd, [m])]);
  const h = b.op('Relu', [b.op('Add', [b.op('MatMul', [x, b.initializer('W1_T', transpose(head.W1, head.hidden, m), [m, head.hidden])]), b.initializer('b1', head.b1, [head.hidden])])]);
  const s = b.op('Add', [b.op('MatMul', [h, b.initializer('w2', head.w2, [head.hidden, 1])]), b.initializer('b2', Float32Array.of(head.b2), [1])]);
  b.node('Squeeze', [s, b.constI64([1])], ['score']);
  b.output('score', 'float32', ['n']);
  b.output('projection', 'float32', ['n', m]);
  return b.toModel({ opset: 21, metadata });
}
