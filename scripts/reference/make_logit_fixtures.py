#!/usr/bin/env python3
"""Writes crates/ferrum-testkit/fixtures/reference_logits.json.

For each tiny preset and seed, generates the model with the Rust generator
(`cargo run -p ferrum-testkit --release -- make-model ...`, f32), runs the independent numpy
reference (decoder_numpy.py, float64) on fixed prompts and stores full logits rows.

Fixture format (version 1):
{
  "format": 1,
  "dtype": "f32",
  "reference": "scripts/reference/decoder_numpy.py (float64)",
  "cases": [
    {
      "preset": "tiny_llama", "seed": 0, "vocab_size": 512,
      "safetensors_fnv1a64": "a1b2...",           # FNV-1a 64 of model.safetensors, 16 hex digits
      "prompts": [
        {"name": "one_token", "token_ids": [42], "positions": [0], "logits": [[... vocab_size floats]]},
        {"name": "hundred_tokens", "token_ids": [... 100 ids], "positions": [0, 37, 99],
         "logits": [[...], [...], [...]]}
      ]
    }, ...
  ]
}
`logits[i]` is the logits row at `positions[i]` of the prompt run from position 0 (causal, one
sequence). Values are rounded to 8 significant digits.

Usage: make_logit_fixtures.py [--check]   (--check recomputes and compares instead of writing)
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decoder_numpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/ferrum-testkit/fixtures/reference_logits.json"
PRESETS = ["tiny_llama", "tiny_llama2", "tiny_qwen2", "tiny_qwen3"]
SEEDS = [0, 1]
ONE_TOKEN = [42]
# A fixed, irregular sequence of ordinary BPE ids (all tiny tokenizers have over 400 tokens).
HUNDRED = [(7 * i * i + 13 * i + 3) % 400 for i in range(100)]
POSITIONS = [0, 37, 99]


def fnv1a64(path):
    h = 0xCBF29CE484222325
    for b in Path(path).read_bytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def make_model(preset, seed, out):
    cmd = ["cargo", "run", "-q", "-p", "ferrum-testkit", "--release", "--",
           "make-model", "--preset", preset, "--dtype", "f32", "--seed", str(seed), str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def rounded(row):
    return [float(f"{x:.8g}") for x in row]


def check_spread(preset, row):
    """Non-degenerate logits: a spread of a few units and no single token taking everything."""
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    if not (0.5 < row.std() < 10.0 and probs.max() < 0.9):
        raise SystemExit(f"{preset}: degenerate logits (std {row.std():.3f}, top-1 {probs.max():.3f})")


def build_cases():
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in PRESETS:
            for seed in SEEDS:
                out = Path(tmp) / f"{preset}-{seed}"
                make_model(preset, seed, out)
                config = json.loads((out / "config.json").read_text())
                prompts = []
                for name, ids, positions in [
                    ("one_token", ONE_TOKEN, [0]),
                    ("hundred_tokens", HUNDRED, POSITIONS),
                ]:
                    logits = decoder_numpy.forward(out, ids)
                    rows = [logits[p] for p in positions]
                    for row in rows:
                        check_spread(preset, row)
                    prompts.append({"name": name, "token_ids": ids, "positions": positions,
                                    "logits": [rounded(r) for r in rows]})
                cases.append({"preset": preset, "seed": seed, "vocab_size": config["vocab_size"],
                              "safetensors_fnv1a64": fnv1a64(out / "model.safetensors"),
                              "prompts": prompts})
                print(f"{preset} seed {seed}: done", file=sys.stderr)
    return {"format": 1, "dtype": "f32",
            "reference": "scripts/reference/decoder_numpy.py (float64)", "cases": cases}


def main(argv):
    fixture = build_cases()
    if "--check" in argv:
        old = json.loads(FIXTURE.read_text())
        worst = 0.0
        for a, b in zip(old["cases"], fixture["cases"]):
            assert a["safetensors_fnv1a64"] == b["safetensors_fnv1a64"], a["preset"]
            for pa, pb in zip(a["prompts"], b["prompts"]):
                worst = max(worst, float(np.abs(np.array(pa["logits"]) - np.array(pb["logits"])).max()))
        print(f"fixture matches; max |diff| {worst:.3g}")
        return 0 if worst < 1e-5 else 1
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    # One case per line keeps diffs readable without pretty-printing 16k numbers.
    lines = ",\n".join("    " + json.dumps(c, separators=(",", ":")) for c in fixture["cases"])
    head = {k: v for k, v in fixture.items() if k != "cases"}
    text = json.dumps(head)[:-1] + ', "cases": [\n' + lines + "\n]}\n"
    json.loads(text)
    FIXTURE.write_text(text)
    print(f"wrote {FIXTURE} ({len(text)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
