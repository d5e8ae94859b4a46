/**
 * A Hugging Face checkpoint folder: validated config.json + safetensors (single file or shards listed in
 * `model.safetensors.index.json`), read lazily one tensor at a time. Opening reads config and shard headers only;
 * nothing of a block after L is ever read when building the truncated graph.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { InputError } from '../errors';
import { firstNonFinite } from '../formats/finite';
import { openSafetensors, toF32, type SafetensorsEntry, type SafetensorsFile } from '../formats/safetensors';
import { layerTensor, type TensorNameTemplates } from './architecture';
import { readModelConfig, type ModelConfig } from './config';
import { checkpointContentHash } from './content-hash';

export interface TensorRef extends SafetensorsEntry {
  name: string;
  file: string;
}

export type LayerTensorKey = Exclude<keyof TensorNameTemplates, 'embed'>;

export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  /** Shard files (absolute paths), in index order. */
  readonly files: readonly string[];
  /** Every tensor the files hold, by name. */
  readonly tensors: ReadonlyMap<string, TensorRef>;
  /** The tensor's location; InputError naming the checkpoint when it is missing. */
  tensor(name: string): TensorRef;
  /** Name and expected shape of a per-layer tensor. */
  layerTensor(key: LayerTensorKey, layer: number): { name: string; shape: number[] };
  /** Reads a tensor as f32 after checking its shape (InputError: tensor, expected vs got). */
  readF32(name: string, expectedShape?: number[]): Float32Array;
  /** Rows of the embedding matrix (unscaled), `[ids.length × hidden]`. Reads only those rows. */
  embeddingRows(ids: readonly number[]): Float32Array;
  /** Checks presence, dtype and shape of the embedding and every tensor of blocks 0..layer (headers only). */
  validateThrough(layer: number): void;
  /** The tensor names resid_post(layer) depends on, in a fixed order (embedding first). */
  tensorsThrough(layer: number): string[];
  /**
   * Content hash of exactly what resid_post(layer) depends on (see content-hash.ts); without a layer, of every
   * tensor in the checkpoint. Memoised on disk by (shard path, size, mtime).
   */
  contentHash(layer?: number, opts?: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal }): Promise<string>;
  close(): void;
}

const indexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), z.string()),
});

const FLOAT_DTYPES = new Set(['F32', 'BF16', 'F16']);

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new InputError({ file: root, expected: 'a checkpoint folder (config.json + *.safetensors)', got: fs.existsSync(root) ? 'a file' : 'nothing there' });
  }
  const config = readModelConfig(root);
  const { files, weightMap, indexFile } = locateShards(root);
  const opened: SafetensorsFile[] = [];
  const tensors = new Map<string, TensorRef>();
  try {
    for (const f of files) {
      const st = openSafetensors(f);
      opened.push(st);
      for (const [name, e] of st.entries) {
        const other = tensors.get(name);
        if (other) {
          throw new InputError({ file: f, tensor: name, expected: 'each tensor in exactly one shard', got: `it also in ${path.basename(other.file)}` });
        }
        tensors.set(name, { ...e, name, file: f });
      }
    }
  } catch (err) {
    for (const st of opened) st.close();
    throw err;
  }
  if (weightMap) {
    for (const [name, shard] of Object.entries(weightMap)) {
      const t = tensors.get(name);
      if (!t || path.basename(t.file) !== shard) {
        for (const st of opened) st.close();
        throw new InputError({ file: indexFile, tensor: name, expected: `the tensor inside ${shard} as weight_map says`, got: t ? `it in ${path.basename(t.file)}` : 'it in no shard' });
      }
    }
  }
  const byFile = new Map(opened.map((st) => [st.path, st]));
  const c = config;
  const shapes: Record<LayerTensorKey, number[]> = {
    q: [c.numHeads * c.headDim, c.hiddenSize],
    k: [c.numKvHeads * c.headDim, c.hiddenSize],
    v: [c.numKvHeads * c.headDim, c.hiddenSize],
    o: [c.hiddenSize, c.numHeads * c.headDim],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    down: [c.hiddenSize, c.intermediateSize],
    inputNorm: [c.hiddenSize],
    postAttnNorm: [c.hiddenSize],
    preFfnNorm: [c.hiddenSize],
    postFfnNorm: [c.hiddenSize],
  };
  const layerKeys = (Object.keys(shapes) as LayerTensorKey[]).filter((k) => c.arch.tensors[k] !== undefined);
  const embedShape = [c.vocabSize, c.hiddenSize];

  const tensor = (name: string): TensorRef => {
    const t = tensors.get(name);
    if (!t) throw new InputError({ file: root, tensor: name, expected: 'the tensor in the checkpoint\'s safetensors', got: `${tensors.size} tensors without it` });
    return t;
  };
  const checkTensor = (name: string, shape: number[]): TensorRef => {
    const t = tensor(name);
    if (!FLOAT_DTYPES.has(t.dtype)) throw new InputError({ file: t.file, tensor: name, expected: 'dtype F32, BF16 or F16', got: t.dtype });
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InputError({ file: t.file, tensor: name, expected: `shape [${shape.join(', ')}] (from config.json)`, got: `[${t.shape.join(', ')}]` });
    }
    return t;
  };
  const shapeOf = (name: string): number[] | undefined => {
    if (name === c.arch.tensors.embed) return embedShape;
    for (const k of layerKeys) {
      const m = c.arch.tensors[k]!.replace('{i}', '(\\d+)').replace(/\./g, '\\.');
      if (new RegExp(`^${m}$`).test(name)) return shapes[k];
    }
    return undefined;
  };
  const checkLayer = (layer: number) => {
    if (!Number.isInteger(layer) || layer < 0 || layer >= c.numLayers) {
      throw new InputError({ field: 'layer', file: path.join(root, 'config.json'), expected: `a block index 0..${c.numLayers - 1} (num_hidden_layers = ${c.numLayers})`, got: String(layer) });
    }
  };
  const tensorsThrough = (layer: number): string[] => {
    checkLayer(layer);
    const names = [c.arch.tensors.embed];
    for (let i = 0; i <= layer; i++) for (const k of layerKeys) names.push(layerTensor(c.arch, k, i));
    return names;
  };

  return {
    dir: root,
    config,
    files,
    tensors,
    tensor,
    layerTensor(key, layer) {
      return { name: layerTensor(c.arch, key, layer), shape: shapes[key] };
    },
    readF32(name, expectedShape) {
      const shape = expectedShape ?? shapeOf(name);
      const t = shape ? checkTensor(name, shape) : tensor(name);
      return byFile.get(t.file)!.readF32(name);
    },
    embeddingRows(ids) {
      const t = checkTensor(c.arch.tensors.embed, embedShape);
      const rowBytes = c.hiddenSize * (t.dtype === 'F32' ? 4 : 2);
      // Each distinct id is read once (pread on the shard's open descriptor), then all rows convert in one pass.
      const slot = new Map<number, number>();
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
          throw new InputError({ field: 'ids', expected: `token ids in 0..${c.vocabSize - 1} (vocab_size)`, got: String(id) });
        }
        if (!slot.has(id)) slot.set(id, slot.size);
      }
      const raw = Buffer.allocUnsafe(slot.size * rowBytes);
      const st = byFile.get(t.file)!;
      for (const [id, k] of slot) st.readRawRange(t.name, id * rowBytes, rowBytes, raw, k * rowBytes);
      const rows = toF32(raw, t.dtype as 'F32' | 'BF16' | 'F16');
      // Only these rows are read, so only they are checked (the whole embedding is never loaded).
      const bad = firstNonFinite(rows);
      if (bad >= 0) {
        const id = [...slot.keys()][Math.floor(bad / c.hiddenSize)];
        throw new InputError({ file: t.file, tensor: t.name, expected: 'finite weights (no NaN or Inf)', got: `${rows[bad]} in the row of token ${id}` });
      }
      const H = c.hiddenSize;
      const out = new Float32Array(ids.length * H);
      ids.forEach((id, i) => {
        const k = slot.get(id)!;
        out.set(rows.subarray(k * H, (k + 1) * H), i * H);
      });
      return out;
    },
    validateThrough(layer) {
      checkTensor(c.arch.tensors.embed, embedShape);
      for (const name of tensorsThrough(layer).slice(1)) checkTensor(name, shapeOf(name)!);
    },
    tensorsThrough,
    contentHash(layer, opts) {
      const names = layer === undefined ? [...tensors.keys()].sort() : tensorsThrough(layer);
      return checkpointContentHash(hashedConfig(c), names.map(tensor), opts);
    },
    close() {
      for (const st of opened) st.close();
    },
  };
}

/** The config values that can change activations (what the content hash covers of config.json). */
function hashedConfig(c: ModelConfig): Record<string, string | number | null | object> {
  return {
    architecture: c.arch.id,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    rmsNormEps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
    queryScale: c.queryScale,
    attnSoftcap: c.attnSoftcap,
    slidingWindow: c.slidingWindow,
    // Only when present, so checkpoints without rope_scaling (every Gemma-2) keep the hashes they had.
    ...(c.ropeScaling ? { ropeScaling: { ...c.ropeScaling } } : {}),
  };
}

/** The safetensors files of a checkpoint: the index's shards when there is an index, else model.safetensors. */
function locateShards(root: string): { files: string[]; weightMap?: Record<string, string>; indexFile?: string } {
  const indexFile = path.join(root, 'model.safetensors.index.json');
  if (fs.existsSync(indexFile)) {
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (err) {
      throw new InputError({ file: indexFile, expected: 'JSON', got: (err as Error).message }, err);
    }
    const parsed = indexSchema.safeParse(raw);
    if (!parsed.success) throw new InputError({ file: indexFile, field: 'weight_map', expected: 'an object mapping tensor names to shard file names' });
    const shardNames = [...new Set(Object.values(parsed.data.weight_map))];
    for (const s of shardNames) {
      if (s !== path.basename(s)) throw new InputError({ file: indexFile, field: 'weight_map', expected: 'shard file names inside the checkpoint folder', got: JSON.stringify(s) });
      if (!fs.existsSync(path.join(root, s))) throw new InputError({ file: path.join(root, s), expected: 'the shard listed in model.safetensors.index.json', got: 'no such file' });
    }
    return { files: shardNames.map((s) => path.join(root, s)), weightMap: parsed.data.weight_map, indexFile };
  }
  const single = path.join(root, 'model.safetensors');
  if (fs.existsSync(single)) return { files: [single] };
  const others = fs.readdirSync(root).filter((f) => f.endsWith('.safetensors'));
  throw new InputError({
    file: root,
    expected: 'model.safetensors or model.safetensors.index.json',
    got: others.length ? `only ${others.slice(0, 3).join(', ')}` : 'no safetensors files',
  });
}
