/**
 * Test helper: writes a random-weight Gemma-2 checkpoint in Hugging Face layout with writeSafetensors
 * (single file or sharded with model.safetensors.index.json; F32, BF16 or F16).
 */
import fs from 'node:fs';
import path from 'node:path';

import { writeSafetensors, type FloatDtype, type TensorToWrite } from '../../../main/engine/formats/safetensors';
import type { LlamaRefConfig } from './reference-forward-llama';
import type { RefConfig } from './reference-forward';

export interface RandomCheckpointOptions {
  dtype?: FloatDtype;
  shards?: number;
  seed?: number;
  /**
   * 'test' (default): uniform weights scaled so each linear keeps unit variance, queries/keys doubled (peaked
   * attention) and norm gains far from their neutral value, so a wrong formula shows. 'hf': what transformers'
   * `_init_weights` gives a fresh model, normal(0, initializer_range = 0.02) for every linear and the embedding,
   * norms at their neutral value: the other common meaning of "random weights".
   */
  init?: 'test' | 'hf';
}

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32 → uniform in [-1, 1)
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

/** Gemma-2-2B's block shapes (hidden 2304, 8/4 heads of 256, ffn 9216, window 4096) with a small vocabulary: the benches' real-size blocks. */
export const GEMMA2_2B_BLOCK_SHAPES = {
  hidden_size: 2304,
  intermediate_size: 9216,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  vocab_size: 1000,
} as const;

export function gemma2Config(over: Partial<RefConfig> = {}): RefConfig & Record<string, unknown> {
  return {
    architectures: ['Gemma2ForCausalLM'],
    model_type: 'gemma2',
    hidden_activation: 'gelu_pytorch_tanh',
    bos_token_id: 2,
    eos_token_id: 1,
    pad_token_id: 0,
    final_logit_softcapping: 30.0,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 4,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 24,
    vocab_size: 300,
    query_pre_attn_scalar: 24,
    sliding_window: 4,
    rope_theta: 10000,
    attn_logit_softcapping: 50.0,
    rms_norm_eps: 1e-6,
    ...over,
  } as RefConfig & Record<string, unknown>;
}

/** A tiny Llama-3.1-shaped config: GQA, no head_dim key (derived), `llama3` rope_scaling, untied LM head. */
export function llamaConfig(over: Partial<LlamaRefConfig> & Record<string, unknown> = {}): LlamaRefConfig & Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 2,
    eos_token_id: [1, 3],
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 300,
    rope_theta: 500000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 1024,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
    ...over,
  } as LlamaRefConfig & Record<string, unknown>;
}

type AnyConfig = (RefConfig | LlamaRefConfig) & { architectures?: unknown };
const isLlama = (cfg: AnyConfig) => Array.isArray(cfg.architectures) && String(cfg.architectures[0]).startsWith('Llama');
const headDimOf = (cfg: AnyConfig) => cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;

/** All tensors of a random checkpoint (f32 values; the file dtype rounds them on write). */
export function randomTensors(cfg: AnyConfig, seed = 1): Record<string, Float32Array> {
  const r = rng(seed);
  const H = cfg.hidden_size;
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => r() * scale);
  const t: Record<string, Float32Array> = {};
  t['model.embed_tokens.weight'] = fill(cfg.vocab_size * H, 1 / Math.sqrt(H));
  const qd = cfg.num_attention_heads * headDimOf(cfg);
  const kd = cfg.num_key_value_heads * headDimOf(cfg);
  const I = cfg.intermediate_size;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    // Uniform(-a, a) with a = sqrt(3/in) keeps unit variance through each linear.
    t[p + 'self_attn.q_proj.weight'] = fill(qd * H, Math.sqrt(3 / H) * 2);
    t[p + 'self_attn.k_proj.weight'] = fill(kd * H, Math.sqrt(3 / H) * 2);
    t[p + 'self_attn.v_proj.weight'] = fill(kd * H, Math.sqrt(3 / H));
    t[p + 'self_attn.o_proj.weight'] = fill(H * qd, Math.sqrt(3 / qd));
    t[p + 'mlp.gate_proj.weight'] = fill(I * H, Math.sqrt(3 / H));
    t[p + 'mlp.up_proj.weight'] = fill(I * H, Math.sqrt(3 / H));
    t[p + 'mlp.down_proj.weight'] = fill(H * I, Math.sqrt(3 / I));
    if (isLlama(cfg)) {
      // Llama stores the gain itself (around 1, not 1): adding "1 +" would show.
      for (const n of ['input_layernorm', 'post_attention_layernorm']) t[p + n + '.weight'] = Float32Array.from(fill(H, 0.5), (v) => 1 + v);
    } else {
      for (const n of ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']) {
        t[p + n + '.weight'] = fill(H, 0.5); // zero-centred, non-zero: forgetting "1 +" shows
      }
    }
  }
  t['model.norm.weight'] = fill(H, 0.5);
  if (isLlama(cfg)) t['lm_head.weight'] = fill(cfg.vocab_size * H, 1 / Math.sqrt(H)); // untied (unused by resid_post)
  return t;
}

export function shapeOf(cfg: AnyConfig, name: string): number[] {
  const H = cfg.hidden_size;
  const qd = cfg.num_attention_heads * headDimOf(cfg);
  const kd = cfg.num_key_value_heads * headDimOf(cfg);
  const I = cfg.intermediate_size;
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return [cfg.vocab_size, H];
  if (name.endsWith('q_proj.weight')) return [qd, H];
  if (name.endsWith('k_proj.weight') || name.endsWith('v_proj.weight')) return [kd, H];
  if (name.endsWith('o_proj.weight')) return [H, qd];
  if (name.endsWith('gate_proj.weight') || name.endsWith('up_proj.weight')) return [I, H];
  if (name.endsWith('down_proj.weight')) return [H, I];
  return [H];
}

/** Writes config.json + weights; returns the folder. */
/** transformers' initialisation of a fresh model (see RandomCheckpointOptions.init): same tensor names as randomTensors. */
export function hfInitTensors(cfg: AnyConfig, seed = 1): Record<string, Float32Array> {
  const u = rng(seed);
  const std = 0.02;
  const normal = (): number => {
    // Box–Muller on the xorshift stream (u() is uniform in [-1, 1)).
    const a = (u() + 1) / 2 || Number.MIN_VALUE;
    const b = (u() + 1) / 2;
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
  };
  const t = randomTensors(cfg, seed);
  for (const name of Object.keys(t)) {
    const v = t[name];
    if (name.endsWith('norm.weight')) v.fill(isLlama(cfg) ? 1 : 0); // neutral gain: Llama stores w, Gemma stores w − 1
    else for (let k = 0; k < v.length; k++) v[k] = normal() * std;
  }
  return t;
}

export function writeRandomCheckpoint(dir: string, config: AnyConfig & Record<string, unknown>, opts: RandomCheckpointOptions = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const tensors = opts.init === 'hf' ? hfInitTensors(config, opts.seed ?? 1) : randomTensors(config, opts.seed ?? 1);
  const dtype = opts.dtype ?? 'F32';
  const names = Object.keys(tensors);
  const shards = opts.shards ?? 1;
  const toWrite = (list: string[]): Record<string, TensorToWrite> =>
    Object.fromEntries(list.map((n) => [n, { dtype, shape: shapeOf(config, n), data: tensors[n] }]));
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), toWrite(names), { format: 'pt' });
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(names.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const list = names.slice(s * per, (s + 1) * per);
      writeSafetensors(path.join(dir, file), toWrite(list), { format: 'pt' });
      for (const n of list) weightMap[n] = file;
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  }
  return dir;
}

/** Random token ids in [3, vocab) with BOS (2) first. */
export function randomIds(n: number, vocab: number, seed: number): number[] {
  const r = rng(seed);
  return [2, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(((r() + 1) / 2) * (vocab - 3)))];
}
