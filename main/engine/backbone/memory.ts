/**
 * How much memory a truncated backbone session needs, and a refusal with a clear message (instead of an OOM kill)
 * when the machine does not have it. The estimate is the graph's weights (blocks 0..L; the embedding stays on disk,
 * rows are read per batch) × RUNTIME_OVERHEAD (ONNX Runtime's pre-packed copies; 1.25, int4 1.45) + 256 MiB of activations
 * and runtime. Skipped with SPARSERM_IGNORE_MEMORY_CHECK=1 (e.g. a CUDA machine whose host RAM only stages weights).
 */
import fs from 'node:fs';
import os from 'node:os';

import { InputError } from '../errors';
import type { ModelConfig } from './config';
import { PRECISIONS, QUANT_BLOCK, type Precision } from './linear-weights';
import { quantizedBytes } from './quantize';

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

/**
 * Bytes per projection weight: f32 4, f16 2; int8/int4 codes plus one f32 scale and one zero point per 32-weight
 * block (quantize.ts layout). Norm weights stay f32 (a rounding error next to the projections).
 */
export const BYTES_PER_WEIGHT: Record<Precision, number> = {
  f32: 4,
  f16: 2,
  int8: quantizedBytes(1, 64 * QUANT_BLOCK, 8) / (64 * QUANT_BLOCK),
  int4: quantizedBytes(1, 64 * QUANT_BLOCK, 4) / (64 * QUANT_BLOCK), // (a long row: 4-bit zero points pack two blocks a byte)
};

/**
 * Peak RSS of an open session per byte of graph weights (ORT's pre-packed copies, arena): 1.25 measured for f32
 * (issue 11); bench/backbone-9b-memory.ts at Gemma-2-9B shapes measured 1.22 per added block for int8 and 1.39 for
 * int4 (MatMulNBits re-packs 4-bit blocks with extra per-block sums), hence 1.45 for int4.
 */
const RUNTIME_OVERHEAD: Record<Precision, number> = { f32: 1.25, f16: 1.25, int8: 1.25, int4: 1.45 };

export function backboneMemoryNeed(c: Shape, layer: number, precision: Precision): MemoryNeed {
  const parameters = blockParameters(c, layer);
  const weightBytes = Math.ceil(parameters * BYTES_PER_WEIGHT[precision]);
  return { parameters, weightBytes, needBytes: Math.ceil(weightBytes * RUNTIME_OVERHEAD[precision]) + RUNTIME_BYTES };
}

/** What every precision needs for blocks 0..layer, cheapest last. */
export function memoryByPrecision(c: Shape, layer: number): Record<Precision, MemoryNeed> {
  return Object.fromEntries(PRECISIONS.map((p) => [p, backboneMemoryNeed(c, layer, p)])) as Record<Precision, MemoryNeed>;
}

/** Gemma-2-9B(-it) at layer 31 (the paper's headline backbone): 32 of its 42 blocks (config.json numbers). */
export const GEMMA2_9B_L31 = {
  label: 'Gemma-2-9B-it at layer 31 (32 blocks)',
  shape: { hiddenSize: 3584, intermediateSize: 14336, numHeads: 16, numKvHeads: 8, headDim: 256, arch: { sandwichNorms: true } },
  layer: 31,
} as const;

/** "f32 ~31.6 GB, f16 ~15.9 GB, int8 ~9.3 GB, int4 ~5.4 GB" for a shape and layer. */
export function precisionNeedsLine(c: Shape, layer: number): string {
  const all = memoryByPrecision(c, layer);
  return PRECISIONS.map((p) => `${p} ~${gb(all[p].needBytes)}`).join(', ');
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
 * One line for doctor / the Models screen: what each precision needs for a shape and layer against this machine,
 * and which ones fit (ok when at least one does).
 */
export function precisionMemoryLine(c: Shape, layer: number, mem = systemMemory()): { ok: boolean; detail: string; needs: Record<Precision, number> } {
  const all = memoryByPrecision(c, layer);
  const fits = PRECISIONS.filter((p) => all[p].needBytes <= mem.available);
  return {
    ok: fits.length > 0,
    needs: Object.fromEntries(PRECISIONS.map((p) => [p, all[p].needBytes])) as Record<Precision, number>,
    detail:
      `${(all.f32.parameters / 1e9).toFixed(2)} B parameters: ${precisionNeedsLine(c, layer)}; ` +
      `${fits.length ? `fits here: ${fits.join(', ')}` : 'no precision fits here'} (${gb(mem.available)} available of ${gb(mem.total)})`,
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
  // The largest precision below this one that fits (f16 keeps the most accuracy, then int8, then int4).
  const order = PRECISIONS.slice(PRECISIONS.indexOf(precision) + 1);
  const fits = order.map((p) => ({ p, need: backboneMemoryNeed(c, layer, p).needBytes })).find((x) => x.need <= mem.available);
  throw new InputError({
    file: checkpoint,
    field: 'layer',
    expected:
      `memory for blocks 0..${layer} (${(need.parameters / 1e9).toFixed(2)} B parameters, ${precision}): ~${gb(need.needBytes)}` +
      `${fits ? `; precision ${fits.p} needs ~${gb(fits.need)}, which fits` : '; try an earlier layer or a machine with more RAM'}` +
      ' (SPARSERM_IGNORE_MEMORY_CHECK=1 skips this check)',
    got: `${gb(mem.available)} available of ${gb(mem.total)}`,
  });
}
