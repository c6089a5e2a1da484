"""transformers baseline on the kit's saved models, in the same call as Ferrum's runs:
single-stream greedy decode ms/token (prompt 17 ids, dynamic cache) and batched `generate`
throughput (random ids, fixed lengths, no EOS stop). Prints one JSON line per model.

usage: python3 hf_bench.py --root DIR --models llama3-8b [--batch 128 --in 202 --out 179]
"""
import argparse, json, os, time
import torch
from transformers import AutoModelForCausalLM


@torch.inference_mode()
def run(d, batch, n_in, n_out):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, device_map="cuda")
    m.eval()
    V = m.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(3)
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    ids = torch.randint(3, V - 1, (1, 17), device="cuda", generator=g)
    m.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)
    times = {}
    for n in (1, 65):
        torch.cuda.synchronize(); t = time.perf_counter()
        m.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
        torch.cuda.synchronize(); times[n] = time.perf_counter() - t
    single_ms = (times[65] - times[1]) / 64 * 1e3
    ids = torch.randint(3, V - 1, (batch, n_in), device="cuda", generator=g)
    torch.cuda.synchronize(); t = time.perf_counter()
    m.generate(ids, max_new_tokens=n_out, min_new_tokens=n_out, **kw)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    del m; torch.cuda.empty_cache()
    return {"single_stream_ms_per_token": single_ms, "batch": batch, "in": n_in, "out": n_out,
            "batch_s": dt, "requests_per_s": batch / dt, "output_tokens_per_s": batch * n_out / dt}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True); ap.add_argument("--models", default="llama3-8b")
    ap.add_argument("--batch", type=int, default=128); ap.add_argument("--in", dest="n_in", type=int, default=202)
    ap.add_argument("--out", type=int, default=179)
    a = ap.parse_args()
    for name in a.models.split(","):
        r = run(os.path.join(a.root, name), a.batch, a.n_in, a.out)
        print(json.dumps({"model": name, "transformers": r}), flush=True)


if __name__ == "__main__":
    main()
