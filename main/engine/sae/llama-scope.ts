/**
 * Llama Scope SAEs (OpenMOSS, fnlp/Llama3_1-8B-Base-LXR-{8x,32x}): a release folder (`hyperparams.json` +
 * `checkpoints/final.safetensors`, nn.Linear layout) or SAELens's conversion of one (`cfg.json` with
 * `normalize_activations: "expected_average_only_in"` + `sae_weights.safetensors`).
 *
 * They are trained on dataset-wise normalised input (x · s, s = sqrt(d_model) / norm_in), have one scalar JumpReLU
 * threshold and decoder columns that are not unit norm, so two encodings disagree (docs/sparserm.md, "SAE formats"):
 *  - 'saelens' (default, what most users load): pre = (s·x)·W_enc + b_enc, fires iff pre > t·s, value pre; decoder
 *    as stored.
 *  - 'authors' (lm-saes): decoder columns rescaled to unit norm n_j and the encoder to match: value n_j·h_j with
 *    h_j = W_enc[:, j]·x + b_enc[j]/s, fires iff it exceeds t.
 * Both are folded here into the plain JumpReLU form the encoders run on the raw resid_post
 * (pre = x·W_enc + b_enc, f = pre·[pre > θ]), so nothing downstream knows which SAE family it has.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { transpose2d } from '../backbone/linear-weights';
import { InputError } from '../errors';
import { openSafetensors } from '../formats/safetensors';
import { zodIssueDetails } from '../zod-issue';

export type SaeEncoding = 'saelens' | 'authors';
export const SAE_ENCODINGS: readonly SaeEncoding[] = ['saelens', 'authors'];

/** The five tensors in our layout: W_enc [dIn, dSae], b_enc [dSae], W_dec [dSae, dIn], b_dec [dIn], threshold [dSae]. */
export interface JumpReluTensors {
  W_enc: { shape: number[]; data: Float32Array };
  b_enc: { shape: number[]; data: Float32Array };
  W_dec: { shape: number[]; data: Float32Array };
  b_dec: { shape: number[]; data: Float32Array };
  threshold: { shape: number[]; data: Float32Array };
}

const normSchema = z.union([z.number().positive(), z.object({ in: z.number().positive() }).passthrough()]);

const hyperparamsSchema = z
  .object({
    d_model: z.number().int().positive().max(65536),
    d_sae: z.number().int().positive().max(16777216),
    hook_point_in: z.string(),
    act_fn: z.string(),
    jump_relu_threshold: z.number().nonnegative(),
    norm_activation: z.string(),
    dataset_average_activation_norm: normSchema,
    apply_decoder_bias_to_pre_encoder: z.boolean().optional(),
  })
  .passthrough();

export interface LlamaScopeRaw {
  tensors: JumpReluTensors;
  /** norm_in of dataset_average_activation_norm. */
  normIn: number;
  hookName: string;
  /** lm_config.json's model_name (e.g. meta-llama/Llama-3.1-8B), when the folder has one. */
  trainedOn?: string;
  files: string[];
}

const normIn = (v: z.infer<typeof normSchema>) => (typeof v === 'number' ? v : v.in);

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError({ file, expected: 'valid JSON', got: code === 'ENOENT' ? 'no such file' : (err as Error).message }, err);
  }
}

function modelNameIn(dir: string): string | undefined {
  const f = path.join(dir, 'lm_config.json');
  if (!fs.existsSync(f)) return undefined;
  const name = (readJson(f) as { model_name?: unknown })?.model_name;
  return typeof name === 'string' ? name : undefined;
}

/** A release folder: hyperparams.json + checkpoints/final.safetensors (bf16 or f32). */
export function readLlamaScopeRelease(dir: string): LlamaScopeRaw {
  const hpFile = path.join(dir, 'hyperparams.json');
  const raw = readJson(hpFile);
  const parsed = hyperparamsSchema.safeParse(raw);
  if (!parsed.success) throw new InputError(zodIssueDetails(parsed.error, raw, hpFile));
  const hp = parsed.data;
  if (hp.act_fn !== 'jumprelu') throw new InputError({ file: hpFile, field: 'act_fn', expected: '"jumprelu" (Llama Scope)', got: JSON.stringify(hp.act_fn) });
  if (hp.norm_activation !== 'dataset-wise') {
    throw new InputError({
      file: hpFile,
      field: 'norm_activation',
      expected: '"dataset-wise" (the Llama3_1-8B-Base-L*R-8x/-32x folders; older token-wise Llama3_1Base-L* folders are not supported)',
      got: JSON.stringify(hp.norm_activation),
    });
  }
  if (hp.apply_decoder_bias_to_pre_encoder) {
    throw new InputError({ file: hpFile, field: 'apply_decoder_bias_to_pre_encoder', expected: 'false (as in the Llama Scope release)', got: 'true' });
  }
  const weights = path.join(dir, 'checkpoints', 'final.safetensors');
  if (!fs.existsSync(weights)) throw new InputError({ file: weights, expected: 'the SAE weights (checkpoints/final.safetensors next to hyperparams.json)', got: 'no such file' });
  const st = openSafetensors(weights);
  const { d_model: dIn, d_sae: dSae } = hp;
  const read = (name: string, shape: number[]): Float32Array => {
    const e = st.entries.get(name);
    if (!e) throw new InputError({ file: weights, tensor: name, expected: `a tensor "${name}" (nn.Linear layout)`, got: `tensors ${[...st.entries.keys()].join(', ')}` });
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new InputError({ file: weights, tensor: name, expected: `shape [${shape.join(', ')}] (d_model ${dIn}, d_sae ${dSae} in hyperparams.json)`, got: `[${e.shape.join(', ')}]` });
    }
    return st.readF32(name);
  };
  let tensors: JumpReluTensors;
  try {
    // nn.Linear stores [out, in]: encoder.weight [d_sae, d_model] → W_enc [d_model, d_sae]; decoder.weight
    // [d_model, d_sae] → W_dec [d_sae, d_model] (row j = latent j's direction).
    const wEnc = transpose2d(read('encoder.weight', [dSae, dIn]), dSae, dIn);
    const bEnc = read('encoder.bias', [dSae]);
    const wDec = transpose2d(read('decoder.weight', [dIn, dSae]), dIn, dSae);
    const bDec = read('decoder.bias', [dIn]);
    tensors = {
      W_enc: { shape: [dIn, dSae], data: wEnc },
      b_enc: { shape: [dSae], data: bEnc },
      W_dec: { shape: [dSae, dIn], data: wDec },
      b_dec: { shape: [dIn], data: bDec },
      threshold: { shape: [dSae], data: new Float32Array(dSae).fill(hp.jump_relu_threshold) },
    };
  } finally {
    st.close();
  }
  // Release folders name the model they were trained on (Llama3_1-8B-Base-L15R-8x); lm_config.json says it exactly.
  const trainedOn = modelNameIn(dir) ?? (/-Base-/.test(path.basename(dir)) ? `${path.basename(dir).split('-L')[0]} (base model, from the folder name)` : undefined);
  return { tensors, normIn: normIn(hp.dataset_average_activation_norm), hookName: hp.hook_point_in, trainedOn, files: [hpFile, weights] };
}

/** Norm for SAELens's Llama Scope cfg.json: the release's dataset_average_activation_norm, copied into cfg.json. */
export function saeLensLlamaScopeNorm(cfg: Record<string, unknown>, cfgFile: string): number {
  const parsed = normSchema.safeParse(cfg.dataset_average_activation_norm);
  if (!parsed.success) {
    throw new InputError({
      file: cfgFile,
      field: 'dataset_average_activation_norm',
      expected: 'the input norm of this Llama Scope SAE ({"in": …} from the release\'s hyperparams.json) for normalize_activations "expected_average_only_in"',
      got: cfg.dataset_average_activation_norm === undefined ? 'nothing' : JSON.stringify(cfg.dataset_average_activation_norm),
    });
  }
  return normIn(parsed.data);
}

/**
 * Folds the input normalisation (and, for 'authors', the decoder norms) into plain JumpReLU tensors on the raw
 * residual stream. `t.threshold` holds the unscaled per-latent t (the scalar repeated). In place.
 */
export function foldLlamaScope(t: JumpReluTensors, norm: number, encoding: SaeEncoding): void {
  const [dIn, dSae] = t.W_enc.shape;
  const s = Math.sqrt(dIn) / norm;
  const wEnc = t.W_enc.data;
  if (encoding === 'saelens') {
    for (let k = 0; k < wEnc.length; k++) wEnc[k] *= s;
    const th = t.threshold.data;
    for (let j = 0; j < dSae; j++) th[j] *= s;
    return;
  }
  const wDec = t.W_dec.data;
  const n = new Float64Array(dSae);
  for (let j = 0; j < dSae; j++) {
    let acc = 0;
    for (let i = 0; i < dIn; i++) acc += wDec[j * dIn + i] ** 2;
    n[j] = Math.sqrt(acc);
    const inv = n[j] > 0 ? 1 / n[j] : 0;
    for (let i = 0; i < dIn; i++) wDec[j * dIn + i] *= inv;
  }
  for (let i = 0; i < dIn; i++) for (let j = 0; j < dSae; j++) wEnc[i * dSae + j] *= n[j];
  const bEnc = t.b_enc.data;
  for (let j = 0; j < dSae; j++) bEnc[j] = (n[j] * bEnc[j]) / s;
}

/**
 * Neuronpedia's ids for a Llama Scope residual SAE of Llama-3.1-8B (what its bulk explanation exports are keyed by):
 * model `llama3.1-8b`, source `{L}-llamascope-res-32k` (8x) or `-131k` (32x). Undefined for anything else.
 */
export function llamaScopeNeuronpediaIds(sae: { encoding?: SaeEncoding; dIn: number; dSae: number; hookLayer?: number }): { modelId: string; saeId: string } | undefined {
  if (!sae.encoding || sae.dIn !== 4096 || sae.hookLayer === undefined) return undefined;
  const width = sae.dSae === 32768 ? '32k' : sae.dSae === 131072 ? '131k' : undefined;
  return width ? { modelId: 'llama3.1-8b', saeId: `${sae.hookLayer}-llamascope-res-${width}` } : undefined;
}
