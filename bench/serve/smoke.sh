#!/usr/bin/env bash
# `ferrum bench serve` against a running `ferrum serve` (tests/e2e/run.sh starts it and exports
# E2E_URL, E2E_KEY, E2E_MODEL): token-id prompts on /v1/completions at 8 req/s (Poisson), then
# text prompts (--tokenizer) on /v1/chat/completions released at once with at most 3 in flight.
# Checks that every request completed with exactly the asked-for output tokens (ignore_eos), that
# the server counted the prompt ids we sent, and that the result file has vLLM's keys.
# Usage: bench/serve/smoke.sh FERRUM_BIN MODEL_PATH
set -euo pipefail
bin=$1
model=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OPENAI_API_KEY=$E2E_KEY
common=(--base-url "$E2E_URL" --model "$E2E_MODEL" --dataset-name random --random-output-len 12
  --ignore-eos --seed 1 --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99)
"$bin" bench serve "${common[@]}" --random-input-len 40 --num-prompts 8 --request-rate 8 \
  --result-file "$out/ids.json" >"$out/ids.txt"
"$bin" bench serve "${common[@]}" --endpoint /v1/chat/completions --tokenizer "$model" \
  --random-input-len 24 --num-prompts 6 --request-rate inf --max-concurrency 3 \
  --result-file "$out/chat.json" >"$out/chat.txt"
python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
for name, n, in_len in (("ids", 8, 40), ("chat", 6, None)):
    r = json.load(open(f"{out}/{name}.json"))
    text = open(f"{out}/{name}.txt").read()
    assert (r["completed"], r["failed"]) == (n, 0), (name, r["errors"], text)
    assert r["output_lens"] == [12] * n, (name, r["output_lens"])
    assert r["total_output_tokens"] == 12 * n
    if in_len is not None:
        assert r["input_lens"] == [in_len] * n, r["input_lens"]
    else:  # chat template around the text: longer than the text alone
        assert all(l > 24 for l in r["input_lens"]), r["input_lens"]
    for m in ("ttft", "tpot", "itl", "e2el"):
        for s in ("mean", "median", "std", "p50", "p99"):
            assert r[f"{s}_{m}_ms"] > 0, (name, s, m)
    # One gap per event after the first; an event may carry several tokens, and the finish
    # reason may come in an event of its own (which vLLM's client counts as a gap too).
    assert all(1 <= len(i) <= 12 for i in r["itls"]), r["itls"]
    assert r["request_throughput"] > 0 and "Successful requests:" in text
print("bench serve: ids and chat runs complete, 12 tokens each")
EOF
