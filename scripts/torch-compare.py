#!/usr/bin/env python3
"""Independent PyTorch forward of a Llama / Mistral / Qwen2 Hugging Face folder (local check, never in CI).

Usage: torch-compare.py FOLDER IDS_JSON STEPS  ->  prints JSON {"logits": [[...] per position], "greedy": [...]}

Uses `transformers` when it is installed (AutoModelForCausalLM on the folder, float32, eager
attention); otherwise the plain-torch implementation below, written from the transformers modeling
code of LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM: RMSNorm, rotate-half RoPE (Llama 3
frequency scaling), grouped-query attention with an additive causal (and sliding-window) mask,
q/k/v (Qwen2; Llama attention_bias) and o (Llama attention_bias) biases, SwiGLU MLP, tied or untied
lm_head. Weights are read from the safetensors files with the standard library (json header +
raw little-endian data), so nothing beyond torch is needed.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, _ = DTYPES[e["dtype"]]
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dt).reshape(e["shape"]) if b > a else torch.zeros(e["shape"], dtype=dt)
        out[name] = t.to(torch.float32)
    return out


def read_weights(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for fn in files:
        w.update(read_safetensors(os.path.join(folder, fn)))
    return w


def inv_freq(cfg, d):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    rs = cfg.get("rope_scaling")
    if rs and (rs.get("rope_type") or rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wave, high_wave = old / low, old / high
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wave, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wave) * ~(wavelen > low_wave)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def layer_window(cfg, layer):
    mt = cfg["model_type"]
    if mt == "mistral":
        return cfg.get("sliding_window")
    if mt == "qwen2":
        if not cfg.get("use_sliding_window"):
            return None
        types = cfg.get("layer_types")
        if types is not None:
            return cfg["sliding_window"] if types[layer] == "sliding_attention" else None
        return cfg["sliding_window"] if layer >= cfg.get("max_window_layers", 28) else None
    return None


def forward(cfg, w, ids):
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    d = cfg.get("head_dim") or D // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    mt = cfg["model_type"]
    qkv_bias = mt == "qwen2" or (mt == "llama" and cfg.get("attention_bias", False))
    o_bias = mt == "llama" and cfg.get("attention_bias", False)
    T = len(ids)

    def rms(x, name):
        v = x.pow(2).mean(-1, keepdim=True)
        return w[name] * (x * torch.rsqrt(v + eps))

    def lin(x, name, bias):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    pos = torch.arange(T).float()
    freqs = torch.outer(pos, inv_freq(cfg, d))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q_idx = torch.arange(T).view(T, 1)
    k_idx = torch.arange(T).view(1, T)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, p + "input_layernorm.weight")
        q = lin(h, p + "self_attn.q_proj", qkv_bias).view(T, H, d).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj", qkv_bias).view(T, KV, d).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj", qkv_bias).view(T, KV, d).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        allowed = k_idx <= q_idx
        win = layer_window(cfg, l)
        if win is not None:
            allowed = allowed & (k_idx > q_idx - win)
        mask = torch.zeros(T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1, dtype=torch.float32)
        y = (att @ v).transpose(0, 1).reshape(T, H * d)
        x = x + lin(y, p + "self_attn.o_proj", o_bias)
        h2 = rms(x, p + "post_attention_layernorm.weight")
        g = lin(h2, p + "mlp.gate_proj", False)
        u = lin(h2, p + "mlp.up_proj", False)
        x = x + lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj", False)
    x = rms(x, "model.norm.weight")
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def main():
    folder, ids, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    try:
        import transformers  # noqa: F401

        model = transformers.AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
        run = lambda seq: model(torch.tensor([seq])).logits[0]  # noqa: E731
        impl = f"transformers {transformers.__version__}"
    except ImportError:
        w = read_weights(folder)
        run = lambda seq: forward(cfg, w, seq)  # noqa: E731
        impl = "plain torch"
    with torch.no_grad():
        logits = run(ids)
        seq = list(ids)
        greedy = []
        eos = cfg.get("eos_token_id")
        eos = set(eos if isinstance(eos, list) else [eos])
        for _ in range(steps):
            t = int(torch.argmax(run(seq)[-1]))
            if t in eos:
                break
            greedy.append(t)
            seq.append(t)
    json.dump({"impl": impl, "torch": torch.__version__, "logits": logits.tolist(), "greedy": greedy}, sys.stdout)


if __name__ == "__main__":
    main()
