import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';

import { f32ToF16 } from '../../../main/engine/formats/safetensors';
import { attr, GraphBuilder, saveModel } from '../../../main/engine/onnx/graph-builder';
import { createSession } from '../../../main/engine/runtime/ort';
import { tempDir } from '../../helpers/paths';

const { onnx } = onnxProto;

function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

describe('GraphBuilder → ONNX Runtime', () => {
  it('builds a graph with symbolic dims, external data, int64 constants and attributes that ORT runs correctly', async () => {
    const dir = tempDir();
    const [din, dout] = [64, 48];
    const w = rand(din * dout, 1); // 12 KB → external
    const bias = rand(dout, 2); // 192 B → inline
    const b = new GraphBuilder({ name: 'mlp', externalData: { dir } });
    const x = b.input('x', 'float32', ['batch', 'seq', din]);
    const wt = b.initializer('w', w, [din, dout]);
    const bt = b.initializer('b', bias, [dout]);
    const h = b.op('Add', [b.op('MatMul', [x, wt]), bt]);
    const g = b.op('Gelu', [h], { approximate: 'tanh' });
    // Reshape [batch, seq, 48] → [batch, seq, 6, 8] with an int64 shape constant (0 = copy dim): catches the
    // "BigInt becomes 0" protobufjs pitfall, which would make this shape [0,0,0,0].
    const r = b.op('Reshape', [g, b.constI64([0, 0, 6, 8])]);
    const sm = b.op('Softmax', [r], { axis: -1 });
    b.node('ReduceSum', [sm, b.constI64([-1])], ['y'], { keepdims: 0 });
    b.output('y', 'float32', ['batch', 'seq', 6]);
    b.node('Identity', [g], ['hidden']);
    b.output('hidden', 'float32', ['batch', 'seq', dout]);
    const bytes = b.toModel({ opset: 21, metadata: { purpose: 'test' } });
    saveModel(path.join(dir, 'model.onnx'), bytes);

    // The big weight lives in the data file, the small one inline; the model itself stays small.
    const decoded = onnx.ModelProto.decode(bytes);
    const inits = decoded.graph!.initializer!;
    const wInit = inits.find((t) => t.name === 'w')!;
    expect(wInit.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
    expect(wInit.externalData!.find((e) => e.key === 'location')!.value).toBe('model.onnx.data');
    expect(inits.find((t) => t.name === 'b')!.rawData!.length).toBe(dout * 4);
    expect(fs.statSync(path.join(dir, 'model.onnx.data')).size).toBeGreaterThanOrEqual(din * dout * 4);
    expect(bytes.length).toBeLessThan(4096);

    const session = await createSession(path.join(dir, 'model.onnx'), { ep: 'cpu' });
    for (const [batch, seq] of [[1, 3], [2, 5]]) {
      const xs = rand(batch * seq * din, 7 + seq);
      const out = await session.run({ x: { type: 'float32', data: xs, dims: [batch, seq, din] } });
      expect(out.hidden.dims).toEqual([batch, seq, dout]);
      expect(out.y.dims).toEqual([batch, seq, 6]);
      let maxErr = 0;
      for (let row = 0; row < batch * seq; row++) {
        for (let o = 0; o < dout; o++) {
          let acc = bias[o];
          for (let i = 0; i < din; i++) acc += xs[row * din + i] * w[i * dout + o];
          maxErr = Math.max(maxErr, Math.abs(geluTanh(acc) - (out.hidden.data as Float32Array)[row * dout + o]));
        }
      }
      expect(maxErr).toBeLessThan(1e-5);
      for (const v of out.y.data as Float32Array) expect(v).toBeCloseTo(1, 5); // softmax rows sum to 1
    }
    await session.close();
    fs.rmSync(dir, { recursive: true });
  });

  it('late external data via toModel({externalDataDir}), float16 weights with Cast, explicit float attrs', async () => {
    const dir = tempDir();
    const n = 600;
    const w = rand(n, 3);
    const w16 = Uint16Array.from(w, (v) => f32ToF16(v));
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [n]);
    const wf = b.op('Cast', [b.initializer('w16', w16, [n], { type: 'float16' })], { to: 1 });
    b.node('Mul', [x, wf], ['prod']);
    b.node('LeakyRelu', ['prod'], ['y'], { alpha: attr.float(2) }); // 2 would be INT without attr.float
    b.output('y', 'float32', [n]);
    const bytes = b.toModel({ opset: 21, externalDataDir: dir });
    saveModel(path.join(dir, 'm.onnx'), bytes);
    const s = await createSession(path.join(dir, 'm.onnx'), { ep: 'cpu' });
    const ones = new Float32Array(n).fill(1);
    const y = (await s.run({ x: { type: 'float32', data: ones, dims: [n] } })).y.data as Float32Array;
    for (let i = 0; i < n; i++) {
      const expected = w[i] >= 0 ? w[i] : 2 * w[i];
      expect(Math.abs(y[i] - expected)).toBeLessThan(Math.abs(expected) * 1e-3 + 1e-4);
    }
    await s.close();
    fs.rmSync(dir, { recursive: true });
  });

  it('rejects misuse early: undefined inputs, duplicate names, unproduced outputs, unsupported opset', () => {
    const b = new GraphBuilder();
    b.input('x', 'float32', [2]);
    expect(() => b.op('Relu', ['nope'])).toThrow(/not defined/);
    expect(() => b.input('x', 'float32', [2])).toThrow(/twice/);
    b.output('ghost', 'float32', [2]);
    expect(() => b.toModel({ opset: 21 })).toThrow(/never produced/);
    const c = new GraphBuilder();
    expect(() => c.toModel({ opset: 27 })).toThrow(/opset 27/);
    expect(() => new GraphBuilder({ externalData: { dir: tempDir(), file: '../x.data' } })).toThrow(/inside the model folder/);
    expect(() => c.initializer('w', new Float32Array(3), [2, 2])).toThrow(/needs 16/);
  });
});
