#!/usr/bin/env python3
"""PyTorch float32 eager peer of bench/backbone-quantized.ts: resid_post(L) of a Gemma-2 checkpoint folder.

A Gemma-2 forward written from the architecture (transformers' eager path: embedding scale, (1 + w) RMSNorm,
query_pre_attn_scalar, attention-logit softcap, sliding window on even layers, gelu-tanh MLP, sandwich norms),
blocks 0..L only, batch of equal-length sequences, no padding. Weights are read from the safetensors (bf16 -> f32).

    python3 bench/backbone-quantized.py --checkpoint DIR --ids ids.json --layer 1 --threads 2 --out resid.f32

Prints one JSON line: seconds of the timed run (after one warm-up on the first sequence), tokens/s, BLAS in use;
writes resid_post as raw little-endian float32 [batch, seq, hidden] to --out (the bench compares it to the engine).
"""
import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            data = fh.read()
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, end = e["data_offsets"]
            out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).to(torch.float32)
    return out


def resid_post(cfg, w, ids, layer):
    H, nH, nKV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, cap, window = cfg["rms_norm_eps"], cfg.get("attn_logit_softcapping"), cfg.get("sliding_window")
    B, T = ids.shape
    x = w["model.embed_tokens.weight"][ids] * torch.tensor(math.sqrt(H), dtype=torch.float32)
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    pos = torch.arange(T, dtype=torch.float32)
    emb = torch.cat([torch.outer(pos, inv)] * 2, dim=-1)
    cos, sin = emb.cos(), emb.sin()
    i = torch.arange(T)
    causal = i[None, :] <= i[:, None]
    sliding = causal & (i[None, :] > i[:, None] - window) if window else causal

    def norm(v, name):
        v = v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps)
        return v * (1.0 + w[name])

    def rope(v):
        a, b = v[..., : hd // 2], v[..., hd // 2 :]
        return v * cos + torch.cat([-b, a], dim=-1) * sin

    for l in range(layer + 1):
        p = f"model.layers.{l}."
        h = norm(x, p + "input_layernorm.weight")
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, nH, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, nKV, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, nKV, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(nH // nKV, dim=1)
        v = v.repeat_interleave(nH // nKV, dim=1)
        s = (q @ k.transpose(-1, -2)) * cfg["query_pre_attn_scalar"] ** -0.5
        if cap:
            s = torch.tanh(s / cap) * cap
        mask = sliding if (window and l % 2 == 0) else causal
        s = s.masked_fill(~mask, torch.finfo(torch.float32).min)
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, nH * hd)
        a = a @ w[p + "self_attn.o_proj.weight"].T
        x = x + norm(a, p + "post_attention_layernorm.weight")
        m = norm(x, p + "pre_feedforward_layernorm.weight")
        f = F.gelu(m @ w[p + "mlp.gate_proj.weight"].T, approximate="tanh") * (m @ w[p + "mlp.up_proj.weight"].T)
        f = f @ w[p + "mlp.down_proj.weight"].T
        x = x + norm(f, p + "post_feedforward_layernorm.weight")
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.checkpoint, "config.json")))
    w = load(a.checkpoint)
    ids = torch.tensor(json.load(open(a.ids)), dtype=torch.long)
    with torch.inference_mode():
        resid_post(cfg, w, ids[:1, :16], a.layer)  # warm-up
        t0 = time.perf_counter()
        y = resid_post(cfg, w, ids, a.layer)
        sec = time.perf_counter() - t0
    if a.out:
        y.contiguous().numpy().astype("<f4").tofile(a.out)
    # Debian's torch calls whatever libblas.so.3 the alternatives system points at: report the library really loaded.
    blas = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower() and len(l.split()) >= 6})
    print(json.dumps({"seconds": sec, "tokens": ids.numel(), "tokensPerSecond": ids.numel() / sec, "threads": a.threads, "torch": torch.__version__, "blas": blas}))


if __name__ == "__main__":
    main()
