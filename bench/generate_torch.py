#!/usr/bin/env python3
"""PyTorch float32 greedy decoding with a KV cache: the reference peer of bench/generate.ts.

A Gemma-2 forward written from the architecture (transformers' eager path: embedding scale, (1 + w) RMSNorm,
query_pre_attn_scalar, attention-logit softcap, sliding window on even layers, gelu-tanh MLP, pre/post norms,
tied LM head, final-logit softcap), reading the same Hugging Face checkpoint folder the engine reads. No
transformers install is needed: the safetensors header is parsed here and tensors are viewed with torch.

    python3 bench/generate_torch.py --checkpoint DIR --prompts ids.json --new-tokens 32 --threads 1 --stop 1,107

prompts.json holds equal-length token-id lists (one batch, no padding). Prints one JSON line: prefill and decode
seconds, tokens/s, and the generated ids (bench/generate.ts checks they equal the engine's: same greedy tokens).
"""
import argparse
import json
import math
import os
import struct
import time

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = t.to(torch.float32)
    return out


def load_checkpoint(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if cfg.get("model_type") != "gemma2":
        raise SystemExit(f"{folder}: this reference implements Gemma-2 only, got model_type {cfg.get('model_type')}")
    w = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            w.update(read_safetensors(os.path.join(folder, f)))
    return cfg, w


class Gemma2:
    def __init__(self, cfg, w):
        self.c = cfg
        self.w = w
        self.H = cfg["hidden_size"]
        self.nH = cfg["num_attention_heads"]
        self.nKV = cfg["num_key_value_heads"]
        self.hd = cfg["head_dim"]
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["rms_norm_eps"]
        self.scale = cfg["query_pre_attn_scalar"] ** -0.5
        self.attn_cap = cfg.get("attn_logit_softcapping")
        self.final_cap = cfg.get("final_logit_softcapping")
        self.window = cfg.get("sliding_window")
        inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        self.inv_freq = inv
        # Weights transposed once so every projection is x @ W (a plain GEMM).
        self.lin = {k: v.t().contiguous() for k, v in w.items() if k.endswith("proj.weight")}
        self.emb = w["model.embed_tokens.weight"]

    def norm(self, x, name):
        g = self.w[name]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + g)

    def rope(self, x, pos):
        # x [B, h, T, hd], pos [T]
        ang = pos[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        half = self.hd // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def forward(self, ids, cache, start):
        """ids [B, T] new tokens at positions start..start+T-1; cache: per layer [k, v] or None. Last-position logits."""
        B, T = ids.shape
        x = self.emb[ids] * torch.tensor(self.H ** 0.5, dtype=torch.float32)
        pos = torch.arange(start, start + T)
        for l in range(self.L):
            p = f"model.layers.{l}."
            h = self.norm(x, p + "input_layernorm.weight")
            q = (h @ self.lin[p + "self_attn.q_proj.weight"]).view(B, T, self.nH, self.hd).transpose(1, 2)
            k = (h @ self.lin[p + "self_attn.k_proj.weight"]).view(B, T, self.nKV, self.hd).transpose(1, 2)
            v = (h @ self.lin[p + "self_attn.v_proj.weight"]).view(B, T, self.nKV, self.hd).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache[l] is not None:
                k = torch.cat([cache[l][0], k], dim=2)
                v = torch.cat([cache[l][1], v], dim=2)
            cache[l] = (k, v)
            rep = self.nH // self.nKV
            kk = k.repeat_interleave(rep, dim=1)
            vv = v.repeat_interleave(rep, dim=1)
            s = (q @ kk.transpose(-1, -2)) * self.scale
            if self.attn_cap:
                s = self.attn_cap * torch.tanh(s / self.attn_cap)
            kpos = torch.arange(0, start + T)
            allowed = kpos[None, :] <= pos[:, None]
            if self.window is not None and l % 2 == 0:
                allowed = allowed & (pos[:, None] - self.window < kpos[None, :])
            s = s.masked_fill(~allowed, torch.finfo(torch.float32).min)
            a = torch.softmax(s, dim=-1) @ vv
            a = a.transpose(1, 2).reshape(B, T, self.nH * self.hd) @ self.lin[p + "self_attn.o_proj.weight"]
            x = x + self.norm(a, p + "post_attention_layernorm.weight")
            m = self.norm(x, p + "pre_feedforward_layernorm.weight")
            g = torch.nn.functional.gelu(m @ self.lin[p + "mlp.gate_proj.weight"], approximate="tanh")
            f = (g * (m @ self.lin[p + "mlp.up_proj.weight"])) @ self.lin[p + "mlp.down_proj.weight"]
            x = x + self.norm(f, p + "post_feedforward_layernorm.weight")
        x = self.norm(x[:, -1, :], "model.norm.weight")
        head = self.w.get("lm_head.weight", self.emb)
        logits = x @ head.t()
        if self.final_cap:
            logits = self.final_cap * torch.tanh(logits / self.final_cap)
        return logits


def greedy(model, prompts, new_tokens, stop):
    ids = torch.tensor(prompts, dtype=torch.long)
    B, P = ids.shape
    cache = [None] * model.L
    out = [[] for _ in range(B)]
    done = [False] * B
    with torch.inference_mode():
        t0 = time.perf_counter()
        logits = model.forward(ids, cache, 0)
        nxt = logits.argmax(-1)
        t1 = time.perf_counter()
        steps = 0
        for step in range(new_tokens):
            for b in range(B):
                tok = int(nxt[b])
                if not done[b]:
                    if tok in stop:
                        done[b] = True
                    else:
                        out[b].append(tok)
            if all(done) or step == new_tokens - 1:
                break
            logits = model.forward(nxt[:, None], cache, P + step)
            nxt = logits.argmax(-1)
            steps += 1
        t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1, steps


def loaded_blas():
    """The BLAS library actually mapped into this process (Debian's torch links the libblas alternative)."""
    libs = {l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower() and "/" in l}
    return sorted(os.path.basename(x) for x in libs) or "none found in /proc/self/maps"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop", default="")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, w = load_checkpoint(a.checkpoint)
    model = Gemma2(cfg, w)
    prompts = json.load(open(a.prompts))
    stop = {int(s) for s in a.stop.split(",") if s}
    greedy(model, [p[:8] for p in prompts], 2, stop)  # warm-up
    best = None
    for _ in range(a.repeats):
        out, pre, dec, steps = greedy(model, prompts, a.new_tokens, stop)
        if best is None or pre + dec < best[1] + best[2]:
            best = (out, pre, dec, steps)
    out, pre, dec, steps = best
    B, P = len(prompts), len(prompts[0])
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": loaded_blas(),
        "batch": B,
        "promptTokens": P,
        "prefillSeconds": pre,
        "prefillTokensPerSecond": B * P / pre,
        "decodeSteps": steps,
        "decodeSeconds": dec,
        # One decode step makes one token per row of the batch.
        "decodeTokensPerSecond": (B * steps / dec) if steps else None,
        "tokens": out,
    }))


if __name__ == "__main__":
    main()
