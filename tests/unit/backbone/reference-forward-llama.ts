/**
 * Test-only, independent Llama forward pass (float64 loops), written from transformers' LlamaModel eager path
 * (modeling_llama.py + modeling_rope_utils._compute_llama3_parameters). Shares no code with main/engine/backbone:
 * no embedding scale, RMSNorm × w (not 1 + w), two norms per block, SiLU MLP, scores × head_dim^-1/2, no softcap,
 * no sliding window, GQA, optional `llama3` RoPE scaling.
 */
export interface LlamaRefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rope_theta: number;
  rms_norm_eps: number;
  vocab_size: number;
  rope_scaling?: {
    rope_type: 'llama3';
    factor: number;
    low_freq_factor: number;
    high_freq_factor: number;
    original_max_position_embeddings: number;
  } | null;
}

export type WeightReader = (name: string) => Float32Array;

/** The rotary frequencies, float64, llama3-scaled when the config says so. */
export function llamaInvFreq(cfg: LlamaRefConfig): number[] {
  const hd = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  const inv = Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(cfg.rope_theta, (2 * i) / hd));
  const rs = cfg.rope_scaling;
  if (!rs) return inv;
  const lowWl = rs.original_max_position_embeddings / rs.low_freq_factor;
  const highWl = rs.original_max_position_embeddings / rs.high_freq_factor;
  return inv.map((f) => {
    const wl = (2 * Math.PI) / f;
    if (wl < highWl) return f; // high frequency: kept
    if (wl > lowWl) return f / rs.factor; // low frequency: interpolated
    const s = (rs.original_max_position_embeddings / wl - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    return (1 - s) * (f / rs.factor) + s * f;
  });
}

/** resid_post of every block 0..layer: result[l][t] = Float64Array(hidden). */
export function llamaReferenceResidPost(cfg: LlamaRefConfig, w: WeightReader, ids: number[], layer: number): Float64Array[][] {
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const nH = cfg.num_attention_heads;
  const nKV = cfg.num_key_value_heads;
  const hd = cfg.head_dim ?? H / nH;
  const T = ids.length;
  const inv = llamaInvFreq(cfg);
  const emb = w('model.embed_tokens.weight');
  let x: Float64Array[] = ids.map((id) => Float64Array.from(emb.subarray(id * H, (id + 1) * H)));

  const rmsnorm = (v: Float64Array, g: Float32Array): Float64Array => {
    let ms = 0;
    for (const a of v) ms += a * a;
    const r = 1 / Math.sqrt(ms / v.length + cfg.rms_norm_eps);
    return v.map((a, i) => a * r * g[i]);
  };
  const linear = (v: Float64Array, W: Float32Array, out: number): Float64Array => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let acc = 0;
      for (let i = 0; i < v.length; i++) acc += W[o * v.length + i] * v[i];
      y[o] = acc;
    }
    return y;
  };
  // rotate_half: dim d pairs with d + hd/2; cos/sin from cat(freqs, freqs).
  const rope = (v: Float64Array, pos: number): Float64Array => {
    const half = hd / 2;
    return Float64Array.from({ length: hd }, (_, d) => {
      const ang = pos * inv[d % half];
      const rot = d < half ? -v[d + half] : v[d - half];
      return v[d] * Math.cos(ang) + rot * Math.sin(ang);
    });
  };
  const silu = (a: number) => a / (1 + Math.exp(-a));

  const result: Float64Array[][] = [];
  for (let l = 0; l <= layer; l++) {
    const p = (n: string) => w(`model.layers.${l}.${n}`);
    const xn = x.map((v) => rmsnorm(v, p('input_layernorm.weight')));
    const q = xn.map((v) => linear(v, p('self_attn.q_proj.weight'), nH * hd));
    const k = xn.map((v) => linear(v, p('self_attn.k_proj.weight'), nKV * hd));
    const vv = xn.map((v) => linear(v, p('self_attn.v_proj.weight'), nKV * hd));
    const head = (arr: Float64Array, h: number) => arr.subarray(h * hd, (h + 1) * hd);
    const qr = q.map((row, t) => Array.from({ length: nH }, (_, h) => rope(head(row, h), t)));
    const kr = k.map((row, t) => Array.from({ length: nKV }, (_, h) => rope(head(row, h), t)));
    const attn = x.map(() => new Float64Array(nH * hd));
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / (nH / nKV));
      for (let i = 0; i < T; i++) {
        const s = Array.from({ length: i + 1 }, (_, j) => {
          let acc = 0;
          for (let d = 0; d < hd; d++) acc += qr[i][h][d] * kr[j][kvh][d];
          return acc / Math.sqrt(hd);
        });
        const m = Math.max(...s);
        const e = s.map((a) => Math.exp(a - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          const vrow = head(vv[j], kvh);
          for (let d = 0; d < hd; d++) attn[i][h * hd + d] += (e[j] / z) * vrow[d];
        }
      }
    }
    const hres = x.map((v, t) => {
      const o = linear(attn[t], p('self_attn.o_proj.weight'), H);
      return v.map((a, d) => a + o[d]);
    });
    x = hres.map((v) => {
      const n = rmsnorm(v, p('post_attention_layernorm.weight'));
      const g = linear(n, p('mlp.gate_proj.weight'), I);
      const u = linear(n, p('mlp.up_proj.weight'), I);
      const down = linear(g.map((a, i) => silu(a) * u[i]), p('mlp.down_proj.weight'), H);
      return v.map((a, d) => a + down[d]);
    });
    result.push(x.map((r) => Float64Array.from(r)));
  }
  return result;
}

/** Full-depth logits of every position (float64): all blocks, final norm × w, `lm_head.weight` (or the embedding
 *  when tie_word_embeddings is true). No KV cache. */
export function llamaReferenceLogits(cfg: LlamaRefConfig & { tie_word_embeddings?: boolean }, w: WeightReader, ids: number[]): Float64Array[] {
  const resid = llamaReferenceResidPost(cfg, w, ids, cfg.num_hidden_layers - 1)[cfg.num_hidden_layers - 1];
  const head = cfg.tie_word_embeddings === true ? w('model.embed_tokens.weight') : w('lm_head.weight');
  const g = w('model.norm.weight');
  return resid.map((v) => {
    let ms = 0;
    for (const a of v) ms += a * a;
    const r = 1 / Math.sqrt(ms / v.length + cfg.rms_norm_eps);
    const n = v.map((a, i) => a * r * g[i]);
    return Float64Array.from({ length: cfg.vocab_size }, (_, o) => {
      let acc = 0;
      for (let i = 0; i < n.length; i++) acc += head[o * n.length + i] * n[i];
      return acc;
    });
  });
}
