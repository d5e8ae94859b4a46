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

/** The keys we use from a Gemma-2 config.json (others are ignored, not rejected). */
const gemma2Schema = z.object({
  architectures: z.array(z.string()).min(1),
  hidden_size: pos,
  intermediate_size: pos,
  num_hidden_layers: pos,
  num_attention_heads: pos,
  num_key_value_heads: pos,
  head_dim: pos,
  vocab_size: pos,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive().default(10000),
  query_pre_attn_scalar: z.number().positive(),
  attn_logit_softcapping: z.number().positive().nullable().optional(),
  sliding_window: pos.nullable().optional(),
  hidden_activation: z.string().optional(),
  hidden_act: z.string().optional(),
  bos_token_id: z.number().int().nonnegative().optional(),
  max_position_embeddings: pos.optional(),
  rope_scaling: z.unknown().optional(),
  torch_dtype: z.string().optional(),
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
  const parsed = gemma2Schema.safeParse(raw);
  if (!parsed.success) throw new InputError(zodIssueDetails(parsed.error, raw, file));
  const c = parsed.data;
  for (const [key, max] of Object.entries(CONFIG_LIMITS)) {
    const v = c[key as keyof typeof CONFIG_LIMITS];
    if (typeof v === 'number' && v > max) {
      throw new InputError({ file, field: key, expected: `at most ${max} (a sanity limit far above any released model)`, got: String(v) });
    }
  }
  if (c.bos_token_id !== undefined && c.bos_token_id >= c.vocab_size) {
    throw new InputError({ file, field: 'bos_token_id', expected: `a token id below vocab_size (${c.vocab_size})`, got: String(c.bos_token_id) });
  }
  const act = c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh';
  if (ACTIVATIONS[act] !== arch.activation) {
    throw new InputError({ file, field: 'hidden_activation', expected: `the ${arch.id} activation (gelu_pytorch_tanh)`, got: JSON.stringify(act) });
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new InputError({
      file,
      field: 'num_key_value_heads',
      expected: `a divisor of num_attention_heads (${c.num_attention_heads})`,
      got: String(c.num_key_value_heads),
    });
  }
  if (c.head_dim % 2 !== 0) throw new InputError({ file, field: 'head_dim', expected: 'an even number (RoPE rotates halves)', got: String(c.head_dim) });
  const softcap = arch.attnSoftcapKey ? ((raw as Record<string, unknown>)[arch.attnSoftcapKey] as number | null | undefined) : null;
  return {
    arch,
    hfArchitecture: first!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads,
    headDim: c.head_dim,
    vocabSize: c.vocab_size,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    queryScale: arch.queryScaleKey === 'head_dim' ? c.head_dim : c.query_pre_attn_scalar,
    attnSoftcap: softcap ?? null,
    slidingWindow: arch.slidingWindow === 'none' ? null : (c.sliding_window ?? null),
    bosTokenId: c.bos_token_id,
    torchDtype: c.torch_dtype,
    maxPositionEmbeddings: c.max_position_embeddings,
  };
}

