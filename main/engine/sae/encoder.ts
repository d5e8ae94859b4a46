/**
 * JumpReLU SAE encoder as an ONNX graph run by ONNX Runtime (the design puts the SAE in ORT so the same
 * execution provider that runs the backbone runs the SAE):
 *   x [N, d_in] → (x − b_dec if the SAE says so) · W_enc + b_enc = pre → f = Where(pre > θ, pre, 0) → [N, d_sae]
 * The graph is cached on disk per SAE hash under cacheDirs.graphs(); weights go to external data so a 3.8 GB
 * Gemma Scope SAE never has to fit in one protobuf.
 */
import fs from 'node:fs';
import path from 'node:path';

import { GraphBuilder, saveModel } from '../onnx/graph-builder';
import { cacheDirs } from '../paths';
import { createSession, type EpRequest, type OrtSession } from '../runtime/ort';
import type { Sae } from './load';

export const SAE_GRAPH_VERSION = 1;

/** Writes (once) the JumpReLU model for this SAE and returns its path. */
export function ensureSaeGraph(sae: Sae, graphsDir = cacheDirs.graphs()): string {
  const dir = path.join(graphsDir, `sae-jumprelu-v${SAE_GRAPH_VERSION}-${sae.hash.slice(0, 32)}`);
  const model = path.join(dir, 'model.onnx');
  if (fs.existsSync(model)) return model;
  fs.mkdirSync(graphsDir, { recursive: true });
  // Build in a private folder and rename it into place: readers never see a half-written model + data pair.
  const tmp = `${dir}.${process.pid}.${Date.now()}.tmp`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    const b = new GraphBuilder({ name: 'sae_jumprelu', externalData: { dir: tmp, file: 'model.onnx.data' } });
    let x = b.input('x', 'float32', ['n', sae.dIn]);
    if (sae.applyBDecToInput) x = b.op('Sub', [x, b.initializer('b_dec', sae.b_dec, [sae.dIn])]);
    const wEnc = b.initializer('W_enc', sae.W_enc, [sae.dIn, sae.dSae]);
    const pre = b.op('Add', [b.op('MatMul', [x, wEnc]), b.initializer('b_enc', sae.b_enc, [sae.dSae])]);
    const fires = b.op('Greater', [pre, b.initializer('threshold', sae.threshold, [sae.dSae])]);
    b.node('Where', [fires, pre, b.constF32([0])], ['f']);
    b.output('f', 'float32', ['n', sae.dSae]);
    saveModel(path.join(tmp, 'model.onnx'), b.toModel({ opset: 21, metadata: { sae_id: sae.id, sae_hash: sae.hash } }));
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      // Another process won the race: its model is identical (same hash).
      if (!fs.existsSync(model)) throw err;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return model;
}

export class SaeEncoder {
  private constructor(
    readonly sae: Sae,
    private readonly session: OrtSession,
  ) {}

  /** `worker`: run in ORT's worker thread so a server's event loop stays free (see runtime/ort.ts). */
  static async open(sae: Sae, opts: { ep?: EpRequest; graphsDir?: string; worker?: boolean } = {}): Promise<SaeEncoder> {
    const model = ensureSaeGraph(sae, opts.graphsDir);
    return new SaeEncoder(sae, await createSession(model, { ep: opts.ep, worker: opts.worker }));
  }

  get ep(): string {
    return this.session.ep;
  }

  /** Dense activations [rows × dSae] for `x` [rows × dIn], in chunks so memory stays bounded for wide SAEs. */
  async encode(x: Float32Array, rows: number, opts: { signal?: AbortSignal; chunkRows?: number } = {}): Promise<Float32Array> {
    const { dIn, dSae } = this.sae;
    if (x.length !== rows * dIn) throw new Error(`SaeEncoder.encode: ${x.length} values for ${rows} × ${dIn}`);
    const out = new Float32Array(rows * dSae);
    const chunk = opts.chunkRows ?? Math.max(1, Math.floor((64 << 20) / (4 * dSae)));
    for (let r = 0; r < rows; r += chunk) {
      const n = Math.min(chunk, rows - r);
      const res = await this.session.run({ x: { type: 'float32', data: x.subarray(r * dIn, (r + n) * dIn), dims: [n, dIn] } }, { signal: opts.signal });
      out.set(res.f.data as Float32Array, r * dSae);
    }
    return out;
  }

  /** Active latents per row as [index, value] pairs sorted by value (largest first), optionally the top N only. */
  async encodeSparse(x: Float32Array, rows: number, opts: { top?: number; signal?: AbortSignal } = {}): Promise<Array<Array<[number, number]>>> {
    const dense = await this.encode(x, rows, { signal: opts.signal });
    return sparsifyRows(dense, rows, this.sae.dSae, opts.top);
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

/** [index, value] of the non-zero entries of each row, largest value first (ties: lower index first). */
export function sparsifyRows(dense: Float32Array, rows: number, width: number, top?: number): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  for (let r = 0; r < rows; r++) {
    const row: Array<[number, number]> = [];
    const base = r * width;
    for (let j = 0; j < width; j++) if (dense[base + j] !== 0) row.push([j, dense[base + j]]);
    row.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    out.push(top !== undefined ? row.slice(0, top) : row);
  }
  return out;
}
