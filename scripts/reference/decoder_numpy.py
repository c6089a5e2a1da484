#!/usr/bin/env python3
"""Independent float64 reference of the Llama / Qwen2 / Qwen3 decoder, numpy only.

Written from the papers and the Hugging Face config fields, sharing no code with Ferrum, so
that agreement between the two means something:

- RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * weight.
- Rotary embeddings (Su et al. 2021) in the "rotate_half" layout transformers uses for these
  families: the first and second halves of the rotary dims form the (real, imaginary) pairs;
  inv_freq_i = theta^(-2i/rotary_dim); `partial_rotary_factor` rotates only the leading dims.
- Llama-3 `rope_scaling` (rope_type "llama3"): wavelengths longer than
  original_max/low_freq_factor are divided by `factor`, shorter than original_max/high_freq_factor
  are kept, and the band between is interpolated linearly in original_max/wavelength.
- Grouped-query attention (Ainslie et al. 2023) with a causal mask, scale head_dim^-0.5.
- SwiGLU MLP (Shazeer 2020): down(silu(gate(x)) * up(x)).
- Qwen2: biases on q/k/v. Qwen3: RMSNorm over head_dim on each q and k head, before rotary.
- LM head: `lm_head.weight`, or the embedding when `tie_word_embeddings`.

Usage: decoder_numpy.py MODEL_DIR TOKEN_ID [TOKEN_ID ...]   (prints the last logits as JSON)
"""

import json
import math
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    """All tensors of one safetensors file as float64 arrays."""
    raw = Path(path).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    data = raw[8 + header_len :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = data[begin:end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(buf, dtype="<f2")
        elif dtype == "BF16":
            # bf16 is the top half of an f32: widen by shifting the bits up.
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name}: unsupported dtype {dtype}")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def load_weights(model_dir):
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for f in files:
        weights.update(read_safetensors(model_dir / f))
    return weights


class Config:
    def __init__(self, raw):
        self.model_type = raw["model_type"]
        if self.model_type not in ("llama", "qwen2", "qwen3"):
            raise ValueError(f"model_type {self.model_type!r} is not implemented")
        self.hidden = raw["hidden_size"]
        self.heads = raw["num_attention_heads"]
        self.kv_heads = raw.get("num_key_value_heads") or self.heads
        self.head_dim = raw.get("head_dim") or self.hidden // self.heads
        self.layers = raw["num_hidden_layers"]
        self.eps = raw["rms_norm_eps"]
        self.theta = raw.get("rope_theta", 10000.0)
        self.rope_scaling = raw.get("rope_scaling")
        self.rotary_dim = int(self.head_dim * raw.get("partial_rotary_factor", 1.0))
        self.tie = raw.get("tie_word_embeddings", False)
        self.qkv_bias = self.model_type == "qwen2" or raw.get("attention_bias", False)
        self.o_bias = self.model_type != "qwen2" and raw.get("attention_bias", False)
        self.qk_norm = self.model_type == "qwen3"
        self.act = raw.get("hidden_act", "silu")
        if self.act != "silu":
            raise ValueError(f"hidden_act {self.act!r} is not implemented")


def inverse_frequencies(cfg):
    exponents = np.arange(0, cfg.rotary_dim, 2, dtype=np.float64) / cfg.rotary_dim
    inv_freq = 1.0 / (cfg.theta**exponents)
    scaling = cfg.rope_scaling
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise ValueError(f"rope_scaling type {kind!r} is not implemented")
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    low_freq_wavelen = original / low
    high_freq_wavelen = original / high
    out = np.empty_like(inv_freq)
    for i, f in enumerate(inv_freq):
        wavelen = 2.0 * math.pi / f
        if wavelen > low_freq_wavelen:
            out[i] = f / factor
        elif wavelen < high_freq_wavelen:
            out[i] = f
        else:
            smooth = (original / wavelen - low) / (high - low)
            out[i] = (1.0 - smooth) * f / factor + smooth * f
    return out


def apply_rotary(x, positions, inv_freq):
    """x: [tokens, heads, head_dim]. Rotates the leading 2*len(inv_freq) dims."""
    rd = 2 * len(inv_freq)
    angles = np.outer(positions, inv_freq)  # [tokens, rd/2]
    cos = np.cos(angles)[:, None, :]
    sin = np.sin(angles)[:, None, :]
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    first, second = x_rot[..., : rd // 2], x_rot[..., rd // 2 :]
    rotated = np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return np.concatenate([rotated, x_pass], axis=-1)


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def silu(x):
    return x / (1.0 + np.exp(-x))


def linear(x, w, name, b=None):
    if w is None:
        raise KeyError(f"missing tensor {name}")
    y = x @ w.T
    return y if b is None else y + b


def attention(cfg, w, p, x, positions, inv_freq):
    t = x.shape[0]

    def proj(name, bias):
        weight = w.get(f"{p}.self_attn.{name}.weight")
        b = w.get(f"{p}.self_attn.{name}.bias")
        if bias and b is None:
            raise KeyError(f"config implies {p}.self_attn.{name}.bias but it is missing")
        if not bias and b is not None:
            raise KeyError(f"{p}.self_attn.{name}.bias present but the config has no bias")
        return linear(x, weight, f"{p}.self_attn.{name}.weight", b)

    q = proj("q_proj", cfg.qkv_bias).reshape(t, cfg.heads, cfg.head_dim)
    k = proj("k_proj", cfg.qkv_bias).reshape(t, cfg.kv_heads, cfg.head_dim)
    v = proj("v_proj", cfg.qkv_bias).reshape(t, cfg.kv_heads, cfg.head_dim)
    if cfg.qk_norm:
        q = rms_norm(q, w[f"{p}.self_attn.q_norm.weight"], cfg.eps)
        k = rms_norm(k, w[f"{p}.self_attn.k_norm.weight"], cfg.eps)
    q = apply_rotary(q, positions, inv_freq)
    k = apply_rotary(k, positions, inv_freq)

    group = cfg.heads // cfg.kv_heads
    causal = np.triu(np.ones((t, t), dtype=bool), k=1)
    out = np.empty((t, cfg.heads, cfg.head_dim))
    for h in range(cfg.heads):
        kv = h // group
        scores = (q[:, h, :] @ k[:, kv, :].T) / math.sqrt(cfg.head_dim)
        scores[causal] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        out[:, h, :] = probs @ v[:, kv, :]
    return proj_out(cfg, w, p, out.reshape(t, cfg.heads * cfg.head_dim))


def proj_out(cfg, w, p, x):
    bias = w.get(f"{p}.self_attn.o_proj.bias") if cfg.o_bias else None
    return linear(x, w.get(f"{p}.self_attn.o_proj.weight"), f"{p}.self_attn.o_proj.weight", bias)


def mlp(w, p, x):
    def get(name):
        return w.get(f"{p}.mlp.{name}.weight"), f"{p}.mlp.{name}.weight"

    gate = linear(x, *get("gate_proj"))
    up = linear(x, *get("up_proj"))
    return linear(silu(gate) * up, *get("down_proj"))


def forward(model_dir, token_ids):
    """Logits [len(token_ids), vocab_size] in float64 for one prompt starting at position 0."""
    model_dir = Path(model_dir)
    cfg = Config(json.loads((model_dir / "config.json").read_text()))
    w = load_weights(model_dir)
    ids = np.asarray(token_ids, dtype=np.int64)
    positions = np.arange(len(ids), dtype=np.float64)
    inv_freq = inverse_frequencies(cfg)

    x = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg.layers):
        p = f"model.layers.{layer}"
        h = rms_norm(x, w[f"{p}.input_layernorm.weight"], cfg.eps)
        x = x + attention(cfg, w, p, h, positions, inv_freq)
        h = rms_norm(x, w[f"{p}.post_attention_layernorm.weight"], cfg.eps)
        x = x + mlp(w, p, h)
    x = rms_norm(x, w["model.norm.weight"], cfg.eps)
    if cfg.tie:
        head = w["model.embed_tokens.weight"]
    elif "lm_head.weight" in w:
        head = w["lm_head.weight"]
    else:
        raise KeyError("lm_head.weight missing and tie_word_embeddings is false")
    return x @ head.T


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    logits = forward(argv[1], [int(a) for a in argv[2:]])
    print(json.dumps(logits[-1].tolist()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
