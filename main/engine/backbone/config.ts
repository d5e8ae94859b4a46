/**
 * config.json → a validated, architecture-independent ModelConfig. Every number the forward pass uses comes
 * from here (never derived: head_dim is read, not hidden/heads).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { InputError } from '../errors';
import { zodIssueDetails } from '../zod-issue';
import { architectureFor, ARCHITECTURES, type ArchitectureSpec } from './architecture';

const pos = z.number().int().positive();

/**
 * Sanity upper bounds for the sizes in config.json. Far above any released model (Llama-3.1-405B: hidden 16384,
 * intermediate 53248, 126 layers, 128 heads; Gemma-2: vocab 256000, head_dim 256), low enough that a typo or a
 * hostile file (`num_hidden_layers: 1e9`) is refused up front instead of allocating or looping for ever.
 * Documented in docs/known-limits.md.
 */
export const CONFIG_LIMITS = {
  hidden_size: 65536,
  intermediate_size: 524288,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  vocab_size: 4194304,
  sliding_window: 16777216,
} as const;

/** The keys we use from a decoder config.json, for every family (others are ignored, not rejected). Which of the
 *  optional ones a family needs is checked against its ArchitectureSpec in parseModelConfig. */
const decoderSchema = z.object({
  architectures: z.array(z.string()).min(1),
  hidden_size: pos,
  intermediate_size: pos,
  num_hidden_layers: pos,
  num_attention_heads: pos,
  num_key_value_heads: pos.optional(),
  head_dim: pos.nullable().optional(),
  vocab_size: pos,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive().default(10000),
  query_pre_attn_scalar: z.number().positive().optional(),
  attn_logit_softcapping: z.number().positive().nullable().optional(),
  sliding_window: pos.nullable().optional(),
  hidden_activation: z.string().nullable().optional(),
  hidden_act: z.string().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  bos_token_id: z.number().int().nonnegative().nullable().optional(),
  max_position_embeddings: pos.optional(),
  rope_scaling: z.unknown().optional(),
  torch_dtype: z.string().optional(),
});

/**
 * transformers' `llama3` RoPE scaling (modeling_rope_utils._compute_llama3_parameters): long wavelengths divided by
 * `factor`, short ones kept, a smooth blend between. Attention factor 1.
 */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

const llama3ScalingSchema = z.object({
  factor: z.number().positive(),
  low_freq_factor: z.number().positive(),
  high_freq_factor: z.number().positive(),
  original_max_position_embeddings: pos,
});

export interface ModelConfig {
  arch: ArchitectureSpec;
  /** The architectures[0] string from config.json. */
  hfArchitecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Scores are multiplied by queryScale^-0.5. */
  queryScale: number;
  /** null: no softcap. */
  attnSoftcap: number | null;
  /** null: no sliding window at all. */
  slidingWindow: number | null;
  /** null: plain RoPE (no rope_scaling, or rope_type "default"). */
  ropeScaling: Llama3RopeScaling | null;
  bosTokenId?: number;
  torchDtype?: string;
  /** Longest sequence the checkpoint was trained for (caps a reward model's max-token setting); not hashed. */
  maxPositionEmbeddings?: number;
}

const ACTIVATIONS: Record<string, ArchitectureSpec['activation']> = {
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_tanh: 'gelu_tanh',
  silu: 'silu',
};

export function readModelConfig(checkpointDir: string): ModelConfig {
  const file = path.join(checkpointDir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      { file, expected: 'a Hugging Face config.json', got: code === 'ENOENT' ? 'no such file' : (err as Error).message },
      err,
    );
  }
  return parseModelConfig(raw, file);
}

export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  const archName = (raw as { architectures?: unknown })?.architectures;
  const first = Array.isArray(archName) && typeof archName[0] === 'string' ? archName[0] : undefined;
  const arch = first ? architectureFor(first) : undefined;
  if (!arch || !arch.supported) {
    const known = ARCHITECTURES.filter((a) => a.supported).flatMap((a) => a.hfArchitectures);
    throw new InputError({
      file,
      field: 'architectures',
      expected: `one of ${known.join(', ')}${arch ? ` (${first} is recognised but not supported yet)` : ''}`,
      got: first ? JSON.stringify(first) : JSON.stringify(archName ?? null),
    });
  }
  const parsed = decoderSchema.safeParse(raw);
  if (!parsed.success) throw new InputError(zodIssueDetails(parsed.error, raw, file));
  const c = parsed.data;
  for (const [key, max] of Object.entries(CONFIG_LIMITS)) {
    const v = c[key as keyof typeof CONFIG_LIMITS];
    if (typeof v === 'number' && v > max) {
      throw new InputError({ file, field: key, expected: `at most ${max} (a sanity limit far above any released model)`, got: String(v) });
    }
  }
  if (typeof c.bos_token_id === 'number' && c.bos_token_id >= c.vocab_size) {
    throw new InputError({ file, field: 'bos_token_id', expected: `a token id below vocab_size (${c.vocab_size})`, got: String(c.bos_token_id) });
  }
  const actKey = c.hidden_activation != null ? 'hidden_activation' : c.hidden_act !== undefined ? 'hidden_act' : 'hidden_activation';
  const act = c.hidden_activation ?? c.hidden_act ?? arch.defaultActivation;
  if (ACTIVATIONS[act] !== arch.activation) {
    throw new InputError({ file, field: actKey, expected: `the ${arch.id} activation (${arch.defaultActivation})`, got: JSON.stringify(act) });
  }
  for (const key of ['attention_bias', 'mlp_bias'] as const) {
    if (c[key]) throw new InputError({ file, field: key, expected: 'false (projections without biases; biased variants are not supported)', got: 'true' });
  }
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    throw new InputError({
      file,
      field: 'num_key_value_heads',
      expected: `a divisor of num_attention_heads (${c.num_attention_heads})`,
      got: String(numKvHeads),
    });
  }
  let headDim = c.head_dim ?? undefined;
  if (headDim === undefined) {
    if (arch.headDim === 'config') throw new InputError({ file, field: 'head_dim', expected: 'a number', got: 'nothing (the field is missing)' });
    if (c.hidden_size % c.num_attention_heads !== 0) {
      throw new InputError({ file, field: 'head_dim', expected: `present, or hidden_size (${c.hidden_size}) divisible by num_attention_heads (${c.num_attention_heads})`, got: 'nothing' });
    }
    headDim = c.hidden_size / c.num_attention_heads;
  }
  if (headDim % 2 !== 0) throw new InputError({ file, field: 'head_dim', expected: 'an even number (RoPE rotates halves)', got: String(headDim) });
  let queryScale = headDim;
  if (arch.queryScaleKey === 'query_pre_attn_scalar') {
    if (c.query_pre_attn_scalar === undefined) throw new InputError({ file, field: 'query_pre_attn_scalar', expected: 'a positive number (scores are scaled by its -1/2 power)', got: 'nothing' });
    queryScale = c.query_pre_attn_scalar;
  }
  const ropeScaling = parseRopeScaling(c.rope_scaling, file);
  const softcap = arch.attnSoftcapKey ? ((raw as Record<string, unknown>)[arch.attnSoftcapKey] as number | null | undefined) : null;
  return {
    arch,
    hfArchitecture: first!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    queryScale,
    attnSoftcap: softcap ?? null,
    slidingWindow: arch.slidingWindow === 'none' ? null : (c.sliding_window ?? null),
    ropeScaling,
    bosTokenId: c.bos_token_id ?? undefined,
    torchDtype: c.torch_dtype,
    maxPositionEmbeddings: c.max_position_embeddings,
  };
}


/** rope_scaling → null (none / "default") or the llama3 parameters; any other type is refused, never ignored. */
function parseRopeScaling(raw: unknown, file: string): Llama3RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  const obj = raw as Record<string, unknown>;
  const type = typeof obj === 'object' ? (obj.rope_type ?? obj.type) : undefined;
  if (type === 'default') return null;
  if (type !== 'llama3') {
    throw new InputError({ file, field: 'rope_scaling.rope_type', expected: '"llama3", "default" or no rope_scaling (other RoPE scalings are not supported)', got: JSON.stringify(type ?? raw) });
  }
  const parsed = llama3ScalingSchema.safeParse(obj);
  if (!parsed.success) {
    const d = zodIssueDetails(parsed.error, raw, file);
    throw new InputError({ ...d, field: `rope_scaling${d.field ? `.${d.field}` : ''}` });
  }
  const p = parsed.data;
  if (p.high_freq_factor <= p.low_freq_factor) {
    throw new InputError({ file, field: 'rope_scaling.high_freq_factor', expected: `greater than low_freq_factor (${p.low_freq_factor})`, got: String(p.high_freq_factor) });
  }
  return { type: 'llama3', factor: p.factor, lowFreqFactor: p.low_freq_factor, highFreqFactor: p.high_freq_factor, originalMaxPositionEmbeddings: p.original_max_position_embeddings };
}
