/**
 * Test-only, independent Gemma-2 forward pass in plain TypeScript (float64 loops), written straight from
 * the Gemma-2 architecture (transformers eager path) — no ONNX, no code shared with main/engine/backbone except reading tensors.
 * It is first verified against the golden fixtures, then used as the oracle for configs no fixture covers.
 */
export interface RefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  query_pre_attn_scalar: number;
  attn_logit_softcapping: number | null;
  sliding_window: number | null;
  rope_theta: number;
  rms_norm_eps: number;
  vocab_size: number;
}

export type WeightReader = (name: string) => Float32Array;

/** resid_post of every block 0..layer: result[l][t] = Float64Array(hidden). */
export function referenceResidPost(cfg: RefConfig, w: WeightReader, ids: number[], layer: number): Float64Array[][] {
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const nH = cfg.num_attention_heads;
  const nKV = cfg.num_key_value_heads;
  const hd = cfg.head_dim;
  const T = ids.length;
  const emb = w('model.embed_tokens.weight');
  const scale = Math.fround(Math.sqrt(H)); // "rounded to the compute dtype" (f32)
  let x: Float64Array[] = ids.map((id) => Float64Array.from(emb.subarray(id * H, (id + 1) * H), (v) => v * scale));

  const rmsnorm = (v: Float64Array, g: Float32Array): Float64Array => {
    let ms = 0;
    for (const a of v) ms += a * a;
    const r = 1 / Math.sqrt(ms / v.length + cfg.rms_norm_eps);
    return v.map((a, i) => a * r * (1 + g[i]));
  };
  // y = x·Wᵀ, W stored [out, in]
  const linear = (v: Float64Array, W: Float32Array, out: number): Float64Array => {
    const inp = v.length;
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let acc = 0;
      for (let i = 0; i < inp; i++) acc += W[o * inp + i] * v[i];
      y[o] = acc;
    }
    return y;
  };
  const rope = (v: Float64Array, pos: number): Float64Array => {
    const half = hd / 2;
    const y = new Float64Array(hd);
    for (let d = 0; d < hd; d++) {
      const i = d % half;
      const ang = pos * Math.pow(cfg.rope_theta, (-2 * i) / hd);
      const rot = d < half ? -v[d + half] : v[d - half];
      y[d] = v[d] * Math.cos(ang) + rot * Math.sin(ang);
    }
    return y;
  };
  const gelu = (a: number) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a * a * a)));

  const result: Float64Array[][] = [];
  for (let l = 0; l <= layer; l++) {
    const p = (n: string) => w(`model.layers.${l}.${n}`);
    const xn = x.map((v) => rmsnorm(v, p('input_layernorm.weight')));
    const q = xn.map((v) => linear(v, p('self_attn.q_proj.weight'), nH * hd));
    const k = xn.map((v) => linear(v, p('self_attn.k_proj.weight'), nKV * hd));
    const vv = xn.map((v) => linear(v, p('self_attn.v_proj.weight'), nKV * hd));
    const headOf = (arr: Float64Array, h: number) => arr.subarray(h * hd, (h + 1) * hd);
    const qr = q.map((row, t) => Array.from({ length: nH }, (_, h) => rope(headOf(row, h), t)));
    const kr = k.map((row, t) => Array.from({ length: nKV }, (_, h) => rope(headOf(row, h), t)));
    const sliding = l % 2 === 0 && cfg.sliding_window !== null;
    const attnOut = x.map(() => new Float64Array(nH * hd));
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / (nH / nKV));
      for (let i = 0; i < T; i++) {
        const scores: number[] = [];
        const keys: number[] = [];
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += qr[i][h][d] * kr[j][kvh][d];
          s *= Math.pow(cfg.query_pre_attn_scalar, -0.5);
          if (cfg.attn_logit_softcapping !== null) s = cfg.attn_logit_softcapping * Math.tanh(s / cfg.attn_logit_softcapping);
          const allowed = j <= i && (!sliding || i - cfg.sliding_window! < j);
          if (allowed) {
            scores.push(s);
            keys.push(j);
          }
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let n = 0; n < keys.length; n++) {
          const vrow = headOf(vv[keys[n]], kvh);
          for (let d = 0; d < hd; d++) attnOut[i][h * hd + d] += (e[n] / z) * vrow[d];
        }
      }
    }
    const o = attnOut.map((v) => linear(v, p('self_attn.o_proj.weight'), H));
    const hres = x.map((v, t) => {
      const a = rmsnorm(o[t], p('post_attention_layernorm.weight'));
      return v.map((val, d) => val + a[d]);
    });
    x = hres.map((v) => {
      const m = rmsnorm(v, p('pre_feedforward_layernorm.weight'));
      const g = linear(m, p('mlp.gate_proj.weight'), I);
      const u = linear(m, p('mlp.up_proj.weight'), I);
      const down = linear(g.map((a, i) => gelu(a) * u[i]), p('mlp.down_proj.weight'), H);
      const f = rmsnorm(down, p('post_feedforward_layernorm.weight'));
      return v.map((val, d) => val + f[d]);
    });
    result.push(x.map((r) => Float64Array.from(r)));
  }
  return result;
}

/**
 * Full-depth logits of every position (float64): all blocks, the final norm (1 + w), the LM head tied to the
 * embedding (Gemma-2's default) or `lm_head.weight`, then Gemma-2's final-logit softcapping cap·tanh(logits / cap).
 * No KV cache: every call recomputes the whole sequence (the oracle for greedy decoding).
 */
export function referenceLogits(
  cfg: RefConfig & { final_logit_softcapping?: number | null; tie_word_embeddings?: boolean },
  w: WeightReader,
  ids: number[],
): Float64Array[] {
  const resid = referenceResidPost(cfg, w, ids, cfg.num_hidden_layers - 1)[cfg.num_hidden_layers - 1];
  const head = cfg.tie_word_embeddings === false ? w('lm_head.weight') : w('model.embed_tokens.weight');
  const g = w('model.norm.weight');
  const cap = cfg.final_logit_softcapping ?? null;
  return resid.map((v) => {
    let ms = 0;
    for (const a of v) ms += a * a;
    const r = 1 / Math.sqrt(ms / v.length + cfg.rms_norm_eps);
    const n = v.map((a, i) => a * r * (1 + g[i]));
    return Float64Array.from({ length: cfg.vocab_size }, (_, o) => {
      let acc = 0;
      for (let i = 0; i < n.length; i++) acc += head[o * n.length + i] * n[i];
      return cap === null ? acc : cap * Math.tanh(acc / cap);
    });
  });
}
