/**
 * Decoder architectures described as DATA: everything that differs between Gemma-2 and the next backbones
 * (Llama-3.1) lives in one record, and the config reader / graph builder only read these fields. Adding an
 * architecture = adding a record (plus any genuinely new op), not sprinkling `if (gemma)` through the code.
 */

export type NormStyle =
  /** y = x·rsqrt(mean(x²)+eps)·(1 + w): Gemma stores zero-centred norm weights. */
  | 'one_plus_weight'
  /** y = x·rsqrt(mean(x²)+eps)·w: Llama. */
  | 'weight';

export type Activation = 'gelu_tanh' | 'silu';

/** Which layers use sliding-window attention (the others are full causal). */
export type SlidingWindowPattern = 'even_layers' | 'none';

export interface TensorNameTemplates {
  embed: string;
  /** `{i}` is replaced with the layer index. */
  q: string;
  k: string;
  v: string;
  o: string;
  gate: string;
  up: string;
  down: string;
  inputNorm: string;
  postAttnNorm: string;
  /** Only for sandwich-norm architectures. */
  preFfnNorm?: string;
  postFfnNorm?: string;
}

export interface ArchitectureSpec {
  /** Our id (also part of cache keys). */
  id: 'gemma2' | 'llama';
  /** The family as people name it (Models screen, doctor). */
  label: string;
  /** `architectures[0]` values in config.json that map here. */
  hfArchitectures: string[];
  normStyle: NormStyle;
  /** x = embed[ids] × sqrt(hidden_size) (Gemma) or unscaled (Llama). */
  embeddingScale: 'sqrt_hidden' | 'none';
  /**
   * Gemma-2 "sandwich" norms: h = x + postAttnNorm(attn(inputNorm(x))); out = h + postFfnNorm(mlp(preFfnNorm(h))).
   * Without: h = x + attn(inputNorm(x)); out = h + mlp(postAttnNorm(h)) (Llama names its pre-MLP norm that way).
   */
  sandwichNorms: boolean;
  activation: Activation;
  slidingWindow: SlidingWindowPattern;
  /** config.json key of the attention-logit softcap (null: none). */
  attnSoftcapKey: string | null;
  /** Scores are scaled by (config[key])^-0.5; `head_dim` when the architecture has no separate scalar. */
  queryScaleKey: 'query_pre_attn_scalar' | 'head_dim';
  /**
   * Where head_dim comes from: `config` = config.json must hold it (Gemma-2: heads × head_dim ≠ hidden);
   * `config_or_hidden_over_heads` = read it when present, else hidden_size / num_attention_heads (transformers'
   * LlamaConfig default).
   */
  headDim: 'config' | 'config_or_hidden_over_heads';
  /** The config.json activation name transformers defaults to when the key is absent. */
  defaultActivation: string;
  tensors: TensorNameTemplates;
  /** Whether our graph builder implements it end to end (verified by parity tests). */
  supported: boolean;
}

const HF_DECODER_TENSORS = {
  embed: 'model.embed_tokens.weight',
  q: 'model.layers.{i}.self_attn.q_proj.weight',
  k: 'model.layers.{i}.self_attn.k_proj.weight',
  v: 'model.layers.{i}.self_attn.v_proj.weight',
  o: 'model.layers.{i}.self_attn.o_proj.weight',
  gate: 'model.layers.{i}.mlp.gate_proj.weight',
  up: 'model.layers.{i}.mlp.up_proj.weight',
  down: 'model.layers.{i}.mlp.down_proj.weight',
  inputNorm: 'model.layers.{i}.input_layernorm.weight',
  postAttnNorm: 'model.layers.{i}.post_attention_layernorm.weight',
};

export const GEMMA2: ArchitectureSpec = {
  id: 'gemma2',
  label: 'Gemma-2',
  hfArchitectures: ['Gemma2ForCausalLM', 'Gemma2Model'],
  normStyle: 'one_plus_weight',
  embeddingScale: 'sqrt_hidden',
  sandwichNorms: true,
  activation: 'gelu_tanh',
  slidingWindow: 'even_layers',
  attnSoftcapKey: 'attn_logit_softcapping',
  queryScaleKey: 'query_pre_attn_scalar',
  headDim: 'config',
  defaultActivation: 'gelu_pytorch_tanh',
  tensors: {
    ...HF_DECODER_TENSORS,
    preFfnNorm: 'model.layers.{i}.pre_feedforward_layernorm.weight',
    postFfnNorm: 'model.layers.{i}.post_feedforward_layernorm.weight',
  },
  supported: true,
};

/** Llama-3.x (and Llama-2: same graph, rope_scaling absent). `llama3` rope_scaling lives in config.ts (any family). */
export const LLAMA: ArchitectureSpec = {
  id: 'llama',
  label: 'Llama-3.x',
  hfArchitectures: ['LlamaForCausalLM', 'LlamaModel'],
  normStyle: 'weight',
  embeddingScale: 'none',
  sandwichNorms: false,
  activation: 'silu',
  slidingWindow: 'none',
  attnSoftcapKey: null,
  queryScaleKey: 'head_dim',
  headDim: 'config_or_hidden_over_heads',
  defaultActivation: 'silu',
  tensors: HF_DECODER_TENSORS,
  supported: true,
};

export const ARCHITECTURES: readonly ArchitectureSpec[] = [GEMMA2, LLAMA];

export function architectureFor(hfArchitecture: string): ArchitectureSpec | undefined {
  return ARCHITECTURES.find((a) => a.hfArchitectures.includes(hfArchitecture));
}

/** The per-layer tensor name for a template key. */
export function layerTensor(arch: ArchitectureSpec, key: Exclude<keyof TensorNameTemplates, 'embed'>, layer: number): string {
  const t = arch.tensors[key];
  if (!t) throw new Error(`${arch.id} has no ${key} tensor`);
  return t.replace('{i}', String(layer));
}

/** True when layer i uses sliding-window attention. */
export function isSlidingLayer(arch: ArchitectureSpec, layer: number): boolean {
  return arch.slidingWindow === 'even_layers' && layer % 2 === 0;
}
