import fs from 'node:fs';
import path from 'node:path';

import { writeSafetensors, type TensorToWrite } from '../formats/safetensors';
import { Prng } from './prng';

/**
 * The demo backbone: a tiny random-weight Gemma-2 in the exact Hugging Face layout (config.json +
 * model.safetensors), small but with every Gemma-2 peculiarity that matters: head_dim ≠ hidden/heads, grouped
 * KV heads, a sliding window short enough to bite on real prompts, zero-centred non-zero norm weights.
 */
export interface DemoModelShape {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  slidingWindow: number;
}

export const DEMO_MODEL_SHAPE: Omit<DemoModelShape, 'vocabSize'> = {
  hiddenSize: 64,
  intermediateSize: 256,
  numLayers: 6,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 24,
  slidingWindow: 16,
};

export function demoConfig(s: DemoModelShape): Record<string, unknown> {
  return {
    architectures: ['Gemma2ForCausalLM'],
    model_type: 'gemma2',
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: 50.0,
    bos_token_id: 2,
    cache_implementation: 'hybrid',
    eos_token_id: 1,
    final_logit_softcapping: 30.0,
    head_dim: s.headDim,
    hidden_act: 'gelu_pytorch_tanh',
    hidden_activation: 'gelu_pytorch_tanh',
    hidden_size: s.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: s.intermediateSize,
    max_position_embeddings: 8192,
    num_attention_heads: s.numHeads,
    num_hidden_layers: s.numLayers,
    num_key_value_heads: s.numKvHeads,
    pad_token_id: 0,
    query_pre_attn_scalar: s.headDim,
    rms_norm_eps: 1e-6,
    rope_theta: 10000.0,
    sliding_window: s.slidingWindow,
    torch_dtype: 'float32',
    transformers_version: '4.44.2',
    use_cache: true,
    vocab_size: s.vocabSize,
  };
}

/**
 * Random weights, seeded. Embedding rows have std 0.5 so that after Gemma's ×√hidden scale the token identity
 * stays visible in the residual stream of the middle layers (the demo SAE's latents key on it); linear layers are
 * scaled 1/√fan_in so activations neither vanish nor explode.
 */
export function demoWeights(s: DemoModelShape, seed: number): Record<string, TensorToWrite> {
  const rng = new Prng(seed);
  const t: Record<string, TensorToWrite> = {};
  const lin = (name: string, out: number, inp: number) => {
    t[name] = { dtype: 'F32', shape: [out, inp], data: rng.normals(out * inp, 1 / Math.sqrt(inp)) };
  };
  const norm = (name: string) => {
    t[name] = { dtype: 'F32', shape: [s.hiddenSize], data: rng.normals(s.hiddenSize, 0.1) };
  };
  t['model.embed_tokens.weight'] = { dtype: 'F32', shape: [s.vocabSize, s.hiddenSize], data: rng.normals(s.vocabSize * s.hiddenSize, 0.5) };
  for (let i = 0; i < s.numLayers; i++) {
    const p = `model.layers.${i}`;
    lin(`${p}.self_attn.q_proj.weight`, s.numHeads * s.headDim, s.hiddenSize);
    lin(`${p}.self_attn.k_proj.weight`, s.numKvHeads * s.headDim, s.hiddenSize);
    lin(`${p}.self_attn.v_proj.weight`, s.numKvHeads * s.headDim, s.hiddenSize);
    lin(`${p}.self_attn.o_proj.weight`, s.hiddenSize, s.numHeads * s.headDim);
    lin(`${p}.mlp.gate_proj.weight`, s.intermediateSize, s.hiddenSize);
    lin(`${p}.mlp.up_proj.weight`, s.intermediateSize, s.hiddenSize);
    lin(`${p}.mlp.down_proj.weight`, s.hiddenSize, s.intermediateSize);
    norm(`${p}.input_layernorm.weight`);
    norm(`${p}.post_attention_layernorm.weight`);
    norm(`${p}.pre_feedforward_layernorm.weight`);
    norm(`${p}.post_feedforward_layernorm.weight`);
  }
  norm('model.norm.weight');
  return t;
}

export function writeDemoCheckpoint(dir: string, s: DemoModelShape, seed: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(demoConfig(s), null, 2) + '\n');
  writeSafetensors(path.join(dir, 'model.safetensors'), demoWeights(s, seed), { format: 'pt' });
}
