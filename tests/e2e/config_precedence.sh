#!/usr/bin/env bash
# `ferrum serve --config` in YAML and JSON, with environment variables and flags on top:
# command line > environment > file > defaults, checked on the running server's /v1/models.
set -euo pipefail
bin=$1
model=$2
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/vllm.yaml" <<YAML
model: $model
served-model-name: [from-yaml]
port: 18441
max-model-len: 1k
kv-cache-memory-bytes: 256M
YAML
cat >"$dir/vllm_config.json" <<JSON
{"model": "$model", "served_model_name": ["from-json"], "port": 18442, "max_model_len": 1024,
 "kv_cache_memory_bytes": "256M"}
JSON
check() { # port, expected name, expected max_model_len
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && break; sleep 0.5; done
  curl -sf "http://127.0.0.1:$1/v1/models" | python3 -c "import json,sys; d=json.load(sys.stdin)['data'][0]; assert (d['id'], d['max_model_len']) == ('$2', $3), d"
  kill "$pid"; wait "$pid" || true; pid=""
}
# File alone.
"$bin" serve --config "$dir/vllm.yaml" >/dev/null 2>&1 & pid=$!; check 18441 from-yaml 1000
"$bin" serve --config "$dir/vllm_config.json" >/dev/null 2>&1 & pid=$!; check 18442 from-json 1024
# Environment over the file.
MAX_MODEL_LEN=512 FERRUM_PORT=18443 "$bin" serve --config "$dir/vllm.yaml" >/dev/null 2>&1 & pid=$!; check 18443 from-yaml 512
# Flags over the environment.
MAX_MODEL_LEN=512 FERRUM_PORT=18443 "$bin" serve --config "$dir/vllm.yaml" --port 18444 --max-model-len 768 \
  --served-model-name from-cli >/dev/null 2>&1 & pid=$!; check 18444 from-cli 768
# Unknown keys are named.
echo "max-modle-len: 5" >>"$dir/vllm.yaml"
if "$bin" serve --config "$dir/vllm.yaml" 2>"$dir/err"; then exit 1; fi
grep -q "max-modle-len" "$dir/err"
