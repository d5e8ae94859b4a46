/**
 * Loads a JumpReLU SAE from the layouts Gemma Scope and Llama Scope are distributed in:
 *  - `params.npz` (Gemma Scope release: W_enc, W_dec, b_enc, b_dec, threshold), or a folder holding one;
 *  - a SAELens folder: `cfg.json` + `sae_weights.safetensors` (old files carry `log_threshold` instead of
 *    `threshold`; the JumpReLU threshold is then exp(log_threshold));
 *  - Llama Scope: a release folder (`hyperparams.json` + `checkpoints/final.safetensors`) or SAELens's conversion
 *    (`cfg.json` with `normalize_activations: "expected_average_only_in"`); see llama-scope.ts for the two encodings.
 * Every tensor is validated against the others and against cfg.json, and the SAE gets a content hash (over the
 * float32 values actually used) so caches and reward models can pin exactly which SAE they were built with.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { InputError } from '../errors';
import { assertFinite } from '../formats/finite';
import { openNpz } from '../formats/npz';
import { openSafetensors } from '../formats/safetensors';
import { cacheHome } from '../paths';
import { zodIssueDetails } from '../zod-issue';
import { foldLlamaScope, readLlamaScopeRelease, saeLensLlamaScopeNorm, type SaeEncoding } from './llama-scope';

export type { SaeEncoding } from './llama-scope';

export interface LoadSaeOptions {
  /** Llama Scope only: 'saelens' (default) or 'authors' (lm-saes, unit-norm decoder). */
  encoding?: SaeEncoding;
}

export interface Sae {
  /** Human-readable id: the Gemma Scope path tail (layer_N/width_W/average_l0_K) or the folder name, + hash prefix. */
  id: string;
  /** The file or folder it was loaded from. */
  path: string;
  format: 'npz' | 'saelens' | 'llama-scope';
  /** Llama Scope SAEs: which encoding the tensors were folded for (llama-scope.ts). Absent for Gemma Scope. */
  encoding?: SaeEncoding;
  /** Llama Scope: dataset_average_activation_norm.in (the input is scaled by sqrt(d_in) / it). */
  inputNorm?: number;
  /** The model the SAE was trained on, when the files say (lm_config.json / cfg.json model_name). */
  trainedOn?: string;
  dIn: number;
  dSae: number;
  /** [dIn × dSae] row-major. */
  W_enc: Float32Array;
  b_enc: Float32Array;
  /** [dSae × dIn] row-major: row j is latent j's decoder direction. */
  W_dec: Float32Array;
  b_dec: Float32Array;
  threshold: Float32Array;
  /** SAELens `apply_b_dec_to_input` (Gemma Scope: false). When true the encoder subtracts b_dec first. */
  applyBDecToInput: boolean;
  /** sha256 over names, shapes and float32 bytes of the five tensors (hex). */
  hash: string;
  /** Residual-stream layer the SAE was trained on, when the file says (cfg hook_name or Gemma Scope path). */
  hookLayer?: number;
}

const saeLensCfgSchema = z
  .object({
    architecture: z.string().optional(),
    // Sanity bounds (docs/known-limits.md): hidden sizes stay under 65536 (config.ts), Gemma Scope widths ≤ 1M.
    d_in: z.number().int().positive().max(65536),
    d_sae: z.number().int().positive().max(16777216),
    hook_name: z.string().optional(),
    hook_layer: z.number().int().optional(),
    apply_b_dec_to_input: z.boolean().optional(),
    normalize_activations: z.string().nullable().optional(),
    model_name: z.string().optional(),
    metadata: z.object({ hook_name: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();

const TENSORS = ['W_enc', 'b_enc', 'W_dec', 'b_dec', 'threshold'] as const;
type TensorName = (typeof TENSORS)[number];
type Tensors = Record<TensorName, { shape: number[]; data: Float32Array }>;

/** Layer index from a SAELens hook name (`blocks.12.hook_resid_post`) or a Gemma Scope path (`layer_12/...`). */
export function hookLayerFrom(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const m = /blocks\.(\d+)\.hook_resid_post/.exec(text) ?? /(?:^|[\\/])layer_(\d+)(?:[\\/]|$)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

export async function loadSae(input: string, opts: LoadSaeOptions = {}): Promise<Sae> {
  const abs = path.resolve(input);
  if (opts.encoding !== undefined && opts.encoding !== 'saelens' && opts.encoding !== 'authors') {
    throw new InputError({ field: 'encoding', expected: '"saelens" or "authors"', got: JSON.stringify(opts.encoding) });
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new InputError({ file: abs, expected: 'a Gemma Scope params.npz file, a SAELens folder (cfg.json + sae_weights.safetensors) or a Llama Scope folder (hyperparams.json + checkpoints/final.safetensors)', got: 'nothing at that path' });
  }
  let sae: Sae;
  if (stat.isFile()) sae = await loadNpzSae(abs);
  else if (fs.existsSync(path.join(abs, 'cfg.json'))) sae = await loadSaeLens(abs, opts.encoding ?? 'saelens');
  else if (fs.existsSync(path.join(abs, 'hyperparams.json'))) sae = loadLlamaScope(abs, opts.encoding ?? 'saelens');
  else if (fs.existsSync(path.join(abs, 'params.npz'))) sae = await loadNpzSae(path.join(abs, 'params.npz'));
  else {
    throw new InputError({
      file: abs,
      expected: 'a folder with cfg.json + sae_weights.safetensors (SAELens), hyperparams.json + checkpoints/final.safetensors (Llama Scope) or params.npz (Gemma Scope)',
      got: `entries ${fs.readdirSync(abs).join(', ') || '(none)'}`,
    });
  }
  // The encodings only differ for Llama Scope's normalised input and non-unit decoders: anywhere else 'authors'
  // would silently mean nothing.
  if (opts.encoding === 'authors' && sae.encoding === undefined) {
    throw new InputError({ file: abs, field: 'encoding', expected: '"saelens" (the authors\' encoding applies to Llama Scope SAEs only)', got: '"authors"' });
  }
  return sae;
}

function loadLlamaScope(dir: string, encoding: SaeEncoding): Sae {
  const raw = readLlamaScopeRelease(dir);
  const t = raw.tensors as Tensors;
  const { dIn, dSae } = checkShapes(raw.files[1]!, t);
  foldLlamaScope(t, raw.normIn, encoding);
  return finish(dir, 'llama-scope', t, dIn, dSae, false, hookLayerFrom(raw.hookName), path.basename(dir), raw.files, { encoding, inputNorm: raw.normIn, trainedOn: raw.trainedOn });
}

async function loadNpzSae(file: string): Promise<Sae> {
  const npz = await openNpz(file);
  const t = {} as Tensors;
  try {
    // W_enc first: its shape fixes every other tensor's, so each is refused from its .npy header (before any of
    // its data is inflated) when it is not that shape.
    t.W_enc = await npz.readF32('W_enc');
    const enc = t.W_enc.shape;
    if (enc.length !== 2) throw new InputError({ file, tensor: 'W_enc', expected: 'a 2-D [d_in, d_sae] matrix', got: `shape [${enc.join(', ')}]` });
    const want = shapesFrom(enc[0], enc[1]);
    for (const name of TENSORS) {
      if (name === 'W_enc') continue;
      const expect = { shape: want[name], why: `from W_enc [${enc.join(', ')}]` };
      if (name === 'threshold' && !npz.entries.has('threshold') && npz.entries.has('log_threshold')) {
        const lt = await npz.readF32('log_threshold', { expect });
        t.threshold = { shape: lt.shape, data: lt.data.map(Math.exp) };
        continue;
      }
      t[name] = await npz.readF32(name, { expect });
    }
  } finally {
    await npz.close();
  }
  const { dIn, dSae } = checkShapes(file, t);
  return finish(file, 'npz', t, dIn, dSae, false, hookLayerFrom(file), gemmaScopeId(file), [file]);
}

async function loadSaeLens(dir: string, encoding: SaeEncoding): Promise<Sae> {
  const cfgFile = path.join(dir, 'cfg.json');
  let rawCfg: unknown;
  try {
    rawCfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  } catch (err) {
    throw new InputError({ file: cfgFile, expected: 'valid JSON', got: (err as Error).message }, err);
  }
  const parsed = saeLensCfgSchema.safeParse(rawCfg);
  if (!parsed.success) throw new InputError(zodIssueDetails(parsed.error, rawCfg, cfgFile));
  const cfg = parsed.data;
  if (cfg.architecture !== undefined && cfg.architecture !== 'jumprelu') {
    throw new InputError({ file: cfgFile, field: 'architecture', expected: '"jumprelu" (Gemma Scope SAEs)', got: JSON.stringify(cfg.architecture) });
  }
  // SAELens's Llama Scope conversion: dataset-wise input norm (its value must be in cfg.json).
  const llamaScope = cfg.normalize_activations === 'expected_average_only_in';
  const norm = llamaScope ? saeLensLlamaScopeNorm(cfg, cfgFile) : undefined;
  if (!llamaScope && cfg.normalize_activations != null && cfg.normalize_activations !== 'none') {
    throw new InputError({
      file: cfgFile,
      field: 'normalize_activations',
      expected: 'null or "none" (raw residual input, as Gemma Scope) or "expected_average_only_in" (Llama Scope)',
      got: JSON.stringify(cfg.normalize_activations),
    });
  }
  const weightsFile = path.join(dir, 'sae_weights.safetensors');
  if (!fs.existsSync(weightsFile)) throw new InputError({ file: weightsFile, expected: 'the SAELens weights file next to cfg.json', got: 'no such file' });
  const st = openSafetensors(weightsFile);
  const t = {} as Tensors;
  try {
    for (const name of TENSORS) {
      let key: string = name;
      if (name === 'threshold' && !st.entries.has('threshold') && st.entries.has('log_threshold')) key = 'log_threshold';
      const entry = st.entries.get(key);
      if (!entry) {
        throw new InputError({ file: weightsFile, tensor: name, expected: `a tensor "${name}"${name === 'threshold' ? ' (or "log_threshold")' : ''}`, got: `tensors ${[...st.entries.keys()].join(', ')}` });
      }
      let data = st.readF32(key);
      if (key === 'log_threshold') data = data.map(Math.exp);
      t[name] = { shape: entry.shape, data };
    }
  } finally {
    st.close();
  }
  const { dIn, dSae } = checkShapes(weightsFile, t);
  if (cfg.d_in !== dIn) throw new InputError({ file: cfgFile, field: 'd_in', expected: `${dIn} (W_enc rows in sae_weights.safetensors)`, got: String(cfg.d_in) });
  if (cfg.d_sae !== dSae) throw new InputError({ file: cfgFile, field: 'd_sae', expected: `${dSae} (W_enc columns in sae_weights.safetensors)`, got: String(cfg.d_sae) });
  const hookName = cfg.hook_name ?? cfg.metadata?.hook_name;
  const hookLayer = hookLayerFrom(hookName) ?? cfg.hook_layer;
  if (norm !== undefined) {
    foldLlamaScope(t, norm, encoding);
    return finish(dir, 'saelens', t, dIn, dSae, cfg.apply_b_dec_to_input ?? false, hookLayer, path.basename(dir), [cfgFile, weightsFile], { encoding, inputNorm: norm, trainedOn: cfg.model_name });
  }
  return finish(dir, 'saelens', t, dIn, dSae, cfg.apply_b_dec_to_input ?? false, hookLayer, path.basename(dir), [cfgFile, weightsFile], { trainedOn: cfg.model_name });
}

function shapesFrom(dIn: number, dSae: number): Record<TensorName, number[]> {
  return { W_enc: [dIn, dSae], W_dec: [dSae, dIn], b_enc: [dSae], b_dec: [dIn], threshold: [dSae] };
}

function checkShapes(file: string, t: Tensors): { dIn: number; dSae: number } {
  const enc = t.W_enc.shape;
  if (enc.length !== 2) throw new InputError({ file, tensor: 'W_enc', expected: 'a 2-D [d_in, d_sae] matrix', got: `shape [${enc.join(', ')}]` });
  const [dIn, dSae] = enc;
  const want = shapesFrom(dIn, dSae);
  for (const name of TENSORS) {
    const got = t[name].shape;
    if (got.length !== want[name].length || got.some((d, i) => d !== want[name][i])) {
      throw new InputError({ file, tensor: name, expected: `shape [${want[name].join(', ')}] (from W_enc [${dIn}, ${dSae}])`, got: `[${got.join(', ')}]` });
    }
  }
  for (let j = 0; j < dSae; j++) {
    if (!Number.isFinite(t.threshold.data[j])) throw new InputError({ file, tensor: 'threshold', expected: 'finite thresholds', got: `${t.threshold.data[j]} at latent ${j}` });
  }
  // NaN/Inf weights would make every activation NaN without an error (safetensors reads already refuse them).
  for (const name of TENSORS) assertFinite(t[name].data, { file, tensor: name }, (i) => `index ${i} of shape [${t[name].shape.join(', ')}]`);
  return { dIn, dSae };
}

const MEMO_MIN_BYTES = 64 << 20;

/**
 * Hashing a 3.8 GB SAE takes seconds on every load; big SAEs memoise their hash by (path, size, mtime) of the
 * source files in the cache (same policy as the backbone content hash). Small SAEs are simply rehashed.
 */
function memoisedHash(files: string[], compute: () => string, salt = ''): string {
  const stats = files.map((f) => fs.statSync(f));
  if (stats.reduce((a, s) => a + s.size, 0) < MEMO_MIN_BYTES) return compute();
  const memoFile = path.join(cacheHome(), 'sae-hashes.json');
  const key = JSON.stringify(files.map((f, i) => [path.resolve(f), stats[i].size, stats[i].mtimeMs])) + salt;
  let memo: Record<string, string> = {};
  try {
    memo = z.record(z.string(), z.string()).parse(JSON.parse(fs.readFileSync(memoFile, 'utf8')));
  } catch {
    memo = {};
  }
  if (memo[key]) return memo[key];
  const hash = compute();
  try {
    fs.mkdirSync(path.dirname(memoFile), { recursive: true });
    const tmp = `${memoFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...memo, [key]: hash }));
    fs.renameSync(tmp, memoFile);
  } catch {
    // a read-only cache only costs the next load a rehash
  }
  return hash;
}

function gemmaScopeId(file: string): string {
  // …/layer_12/width_16k/average_l0_82/params.npz → layer_12/width_16k/average_l0_82
  const parts = path.resolve(file).split(path.sep);
  const i = parts.findIndex((p) => /^layer_\d+$/.test(p));
  if (i >= 0 && i < parts.length - 1) return parts.slice(i, parts.length - 1).join('/');
  return path.basename(path.dirname(path.resolve(file)));
}

function finish(
  where: string,
  format: Sae['format'],
  t: Tensors,
  dIn: number,
  dSae: number,
  applyBDecToInput: boolean,
  hookLayer: number | undefined,
  baseId: string,
  sourceFiles: string[],
  extra: Pick<Sae, 'encoding' | 'inputNorm' | 'trainedOn'> = {},
): Sae {
  const compute = () => {
    const h = crypto.createHash('sha256');
    for (const name of TENSORS) {
      h.update(`${name}:${t[name].shape.join('x')};`);
      const d = t[name].data;
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    h.update(`apply_b_dec_to_input:${applyBDecToInput}`);
    // Gemma Scope hashes stay what they were; a Llama Scope SAE hashes differently per encoding.
    if (extra.encoding) h.update(`encoding:${extra.encoding}`);
    return h.digest('hex');
  };
  // The memo is keyed by the source files: the encoding is part of the key so both hashes can be memoised.
  const hash = memoisedHash(sourceFiles, compute, extra.encoding ? `|encoding:${extra.encoding}` : '');
  return {
    ...extra,
    id: `${baseId}${extra.encoding === 'authors' ? '+authors' : ''}@${hash.slice(0, 12)}`,
    path: where,
    format,
    dIn,
    dSae,
    W_enc: t.W_enc.data,
    b_enc: t.b_enc.data,
    W_dec: t.W_dec.data,
    b_dec: t.b_dec.data,
    threshold: t.threshold.data,
    applyBDecToInput,
    hash,
    hookLayer,
  };
}
