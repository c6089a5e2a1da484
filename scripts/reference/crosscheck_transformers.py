#!/usr/bin/env python3
"""Cross-checks generated models and the numpy reference against Hugging Face transformers.

Usage: crosscheck_transformers.py MODELS_ROOT
  MODELS_ROOT holds model dirs written by `ferrum-testkit make-model`, named
  `{preset}-{seed}` (f32; compared with fixtures/reference_logits.json) or anything else
  (compared with decoder_numpy.py run on the same dir).

Needs torch and transformers (the GPU machines have them; CI does not run this). For each
model: loads it with AutoModelForCausalLM in float64 (eager attention, CPU), checks the logits
against the fixture or the numpy reference, loads the tokenizer with AutoTokenizer, renders the
chat template and checks an encode/decode round trip.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import decoder_numpy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "crates/ferrum-testkit/fixtures/reference_logits.json"
PROMPT = [(7 * i * i + 13 * i + 3) % 400 for i in range(100)]


def hf_logits(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float64, attn_implementation="eager"
    )
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    return out.logits[0].numpy()


def check_tokenizer(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2? café 東京"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    back = tok.decode(ids)
    assert back == text, (back, text)
    return f"template {len(text)} chars -> {len(ids)} ids, eos {tok.eos_token!r}"


def main(argv):
    root = Path(argv[1])
    fixture = {(c["preset"], c["seed"]): c for c in json.loads(FIXTURE.read_text())["cases"]}
    worst = 0.0
    for model_dir in sorted(p for p in root.iterdir() if (p / "config.json").exists()):
        name = model_dir.name
        preset, _, seed = name.rpartition("-")
        case = fixture.get((preset, int(seed))) if seed.isdigit() else None
        if case:
            ours = {}
            for prompt in case["prompts"]:
                logits = hf_logits(model_dir, prompt["token_ids"])
                for pos, row in zip(prompt["positions"], prompt["logits"]):
                    ours[(prompt["name"], pos)] = float(np.abs(logits[pos] - np.array(row)).max())
            diff = max(ours.values())
            what = "fixture"
        else:
            logits = hf_logits(model_dir, PROMPT)
            ref = decoder_numpy.forward(model_dir, PROMPT)
            diff = float(np.abs(logits - ref).max())
            what = "numpy reference"
        worst = max(worst, diff)
        print(f"{name}: max |transformers - {what}| = {diff:.3g}; {check_tokenizer(model_dir)}")
    print(f"worst {worst:.3g}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
