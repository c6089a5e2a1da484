"""Builds random-weight models with transformers on the GPU, writes them in Hugging Face layout
(config.json in the classic field names, model.safetensors) with prompts and transformers'
reference outputs, for the Ferrum CUDA parity run (scripts/gpu/kit.sh).

Per model folder: prompts.json, hf_logits.f32 (last-position logits of each prompt alone, bf16
model, as f32), hf_logits_fp32.f32 (same from an f32 copy), hf.json (greedy
tokens). Also writes ROOT/copy_bw.json: device-to-device copy bandwidth measured here.
"""
import argparse, json, os, time
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
SHAPES = {
    "tiny-qwen3": dict(model_type="qwen3", vocab_size=1024, hidden_size=256, intermediate_size=512,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=128,
                       max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True),
    "tiny-llama": dict(model_type="llama", vocab_size=1024, hidden_size=256, intermediate_size=512,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, rope_scaling=LLAMA3_SCALING),
    # published configs of the real models (architecture numbers only; weights are random)
    "qwen3-4b": dict(model_type="qwen3", vocab_size=151936, hidden_size=2560, intermediate_size=9728,
                     num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                     tie_word_embeddings=True),
    "llama3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, rope_scaling=LLAMA3_SCALING),
}
ARCH = {"qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}


def copy_bw():
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
    for _ in range(3): y.copy_(x)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        s.record(); y.copy_(x); e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e) / 1e3)
    del x, y; torch.cuda.empty_cache()
    times.sort()
    return 2 * (2 << 30) / times[len(times) // 2]  # bytes read + written per second


def config_json(name):
    kw = dict(SHAPES[name]); mt = kw["model_type"]
    kw.update(architectures=[ARCH[mt]], torch_dtype="bfloat16", hidden_act="silu", bos_token_id=1,
              eos_token_id=2, attention_bias=False)
    return kw


@torch.inference_mode()
def build(name, root, n_prompts, greedy_steps, decode_steps, seed):
    kw = dict(SHAPES[name]); mt = kw.pop("model_type")
    cfg = AutoConfig.for_model(mt, **kw)
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = AutoModelForCausalLM.from_config(cfg)
    torch.set_default_dtype(torch.float32)
    m.eval()
    d = os.path.join(root, name); os.makedirs(d, exist_ok=True)
    t = time.time()
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(d, "model.safetensors"))
    del sd
    json.dump(config_json(name), open(os.path.join(d, "config.json"), "w"), indent=1)
    save_s = time.time() - t
    V = cfg.vocab_size
    g = torch.Generator(device="cuda").manual_seed(seed + 1)
    lens = [17, 64, 129, 200][:n_prompts]
    prompts = [torch.randint(3, V - 1, (n,), device="cuda", generator=g).tolist() for n in lens]
    json.dump({"prompts": prompts, "greedy_steps": greedy_steps, "decode_steps": decode_steps},
              open(os.path.join(d, "prompts.json"), "w"))
    rows = []
    for p in prompts:
        ids = torch.tensor([p], device="cuda")
        rows.append(m(ids).logits[0, -1].float().cpu())
    torch.stack(rows).numpy().tofile(os.path.join(d, "hf_logits.f32"))
    ids = torch.tensor([prompts[0]], device="cuda")
    gen = m.generate(ids, do_sample=False, max_new_tokens=greedy_steps + 1, min_new_tokens=greedy_steps + 1,
                     pad_token_id=0, eos_token_id=None)
    hf = {"greedy_tokens": gen[0, len(prompts[0]):].tolist(), "save_s": save_s,
          "weight_bytes": os.path.getsize(os.path.join(d, "model.safetensors"))}
    # The same weights in f32: transformers' own bf16 error against it is the noise floor that
    # any bf16 implementation of this (random, untrained) model shows.
    if True:
        m32 = m.float()
        rows = [m32(torch.tensor([p], device="cuda")).logits[0, -1].float().cpu() for p in prompts]
        torch.stack(rows).numpy().tofile(os.path.join(d, "hf_logits_fp32.f32"))
        # The reference for Ferrum's f32 mode (no TF32: PyTorch's default for matmuls).
        gen = m32.generate(ids, do_sample=False, max_new_tokens=greedy_steps + 1,
                           min_new_tokens=greedy_steps + 1, pad_token_id=0, eos_token_id=None)
        hf["greedy_tokens_fp32"] = gen[0, len(prompts[0]):].tolist()
    json.dump(hf, open(os.path.join(d, "hf.json"), "w"))
    del m; torch.cuda.empty_cache()
    print(f"{name}: saved in {save_s:.1f}s, {hf['weight_bytes'] / 2**30:.2f} GiB", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--shapes", default="tiny-qwen3,tiny-llama,qwen3-4b,llama3-8b")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--greedy-steps", type=int, default=16)
    ap.add_argument("--decode-steps", type=int, default=64)
    a = ap.parse_args()
    os.makedirs(a.root, exist_ok=True)
    bw = copy_bw()
    json.dump({"copy_bytes_per_s": bw, "device": torch.cuda.get_device_name()},
              open(os.path.join(a.root, "copy_bw.json"), "w"))
    print(f"copy bandwidth (read+write): {bw / 1e12:.2f} TB/s on {torch.cuda.get_device_name()}", flush=True)
    for s in a.shapes.split(","):
        build(s, a.root, a.prompts, a.greedy_steps, a.decode_steps, seed=0)


if __name__ == "__main__":
    main()
