/**
 * How much memory a truncated backbone session needs, and a refusal with a clear message (instead of an OOM kill)
 * when the machine does not have it. The estimate is the graph's weights (blocks 0..L; the embedding stays on disk,
 * rows are read per batch) × 1.25 for ONNX Runtime's own copies (pre-packed matmul weights) + 256 MiB of activations
 * and runtime. Skipped with SPARSERM_IGNORE_MEMORY_CHECK=1 (e.g. a CUDA machine whose host RAM only stages weights).
 */
import fs from 'node:fs';
import os from 'node:os';

import { InputError } from '../errors';
import type { ModelConfig } from './config';
import type { Precision } from './decoder-graph';

type Shape = Pick<ModelConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim'> & { arch: Pick<ModelConfig['arch'], 'sandwichNorms'> };

/** Parameters of blocks 0..layer (attention, MLP, norms). */
export function blockParameters(c: Shape, layer: number): number {
  const H = c.hiddenSize;
  const perBlock = 2 * H * c.numHeads * c.headDim + 2 * H * c.numKvHeads * c.headDim + 3 * H * c.intermediateSize + (c.arch.sandwichNorms ? 4 : 2) * H;
  return perBlock * (layer + 1);
}

/** Activations (a batch's attention scores are capped at 256 MiB by the session) and the runtime itself. */
const RUNTIME_BYTES = 256 * 2 ** 20;

export interface MemoryNeed {
  parameters: number;
  /** Bytes of the graph's weights at this precision. */
  weightBytes: number;
  /** Estimated peak bytes of an open session. */
  needBytes: number;
}

export function backboneMemoryNeed(c: Shape, layer: number, precision: Precision): MemoryNeed {
  const parameters = blockParameters(c, layer);
  const weightBytes = parameters * (precision === 'f16' ? 2 : 4);
  return { parameters, weightBytes, needBytes: Math.ceil(weightBytes * 1.25) + RUNTIME_BYTES };
}

/** Llama-3.1-8B(-Instruct) at the paper's layer 15: 16 blocks (config.json numbers). */
export const LLAMA31_8B_L15 = {
  label: 'Llama-3.1-8B-Instruct at layer 15 (16 blocks)',
  shape: { hiddenSize: 4096, intermediateSize: 14336, numHeads: 32, numKvHeads: 8, headDim: 128, arch: { sandwichNorms: false } },
  layer: 15,
} as const;

/** Total and available RAM: MemAvailable from /proc/meminfo (page cache counts as available), else os.freemem(). */
export function systemMemory(): { total: number; available: number } {
  let available = os.freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) available = Number(m[1]) * 1024;
  } catch {
    // not Linux: os.freemem() it is
  }
  return { total: os.totalmem(), available };
}

export const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;

/** One line for doctor / the Models screen: what f32 and f16 need for Llama-3.1-8B at layer 15 against this machine. */
export function llama8bMemoryLine(mem = systemMemory()): { ok: boolean; detail: string } {
  const f32 = backboneMemoryNeed(LLAMA31_8B_L15.shape, LLAMA31_8B_L15.layer, 'f32');
  const f16 = backboneMemoryNeed(LLAMA31_8B_L15.shape, LLAMA31_8B_L15.layer, 'f16');
  return {
    ok: mem.total >= f16.needBytes,
    detail: `${(f32.parameters / 1e9).toFixed(2)} B parameters: f32 needs ~${gb(f32.needBytes)}, f16 ~${gb(f16.needBytes)}; this machine has ${gb(mem.total)} (${gb(mem.available)} available)`,
  };
}

/**
 * Refuses to open a backbone session that would not fit: InputError naming the checkpoint, the need and what the
 * machine has, and what to try instead.
 */
export function assertMemoryFor(c: ModelConfig, layer: number, precision: Precision, checkpoint: string, mem = systemMemory()): void {
  if (process.env.SPARSERM_IGNORE_MEMORY_CHECK === '1') return;
  const need = backboneMemoryNeed(c, layer, precision);
  if (need.needBytes <= mem.available) return;
  const cheaper = precision === 'f32' ? backboneMemoryNeed(c, layer, 'f16').needBytes : undefined;
  throw new InputError({
    file: checkpoint,
    field: 'layer',
    expected:
      `memory for blocks 0..${layer} (${(need.parameters / 1e9).toFixed(2)} B parameters, ${precision}): ~${gb(need.needBytes)}` +
      `${cheaper !== undefined && cheaper <= mem.available ? `; precision f16 needs ~${gb(cheaper)}, which fits` : '; try an earlier layer or a machine with more RAM'}` +
      ' (SPARSERM_IGNORE_MEMORY_CHECK=1 skips this check)',
    got: `${gb(mem.available)} available of ${gb(mem.total)}`,
  });
}
