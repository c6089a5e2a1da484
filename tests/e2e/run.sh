#!/usr/bin/env bash
# End-to-end tests of `ferrum serve` with real clients: the official `openai` Python package,
# curl running the deployment guide's commands, and the JDK's java.net.http (installed with apt
# when missing); first on the default model, then on a random-weight Qwen3 model with the real
# Qwen vocabulary and vLLM's Qwen flags (reasoning parser, hermes tool calls).
# Installs what it needs: the default model and Qwen vocabulary (scripts/fetch-*), the `openai`
# and `jinja2` pip packages, curl and a JDK (apt). Every server it starts is stopped on exit.
# Usage: tests/e2e/run.sh    (from anywhere; runs every test, prints ok/FAIL per test, exits
#                             non-zero when any failed)
#        FERRUM_BIN=path/to/ferrum tests/e2e/run.sh    tests that binary instead of building one
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=tests/e2e
if ! command -v curl >/dev/null; then
  [ "$(id -u)" -eq 0 ] && sudo="" || sudo=sudo
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi
scripts/fetch-default-model >/dev/null
scripts/fetch-qwen-vocab >/dev/null
python3 -c "import openai, jinja2" 2>/dev/null || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet openai jinja2
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${FERRUM_BIN:-}" ]; then
  bin=$FERRUM_BIN
  cargo build --release -p ferrum-testkit --quiet
else
  bin="$target/release/ferrum"
  cargo build --release -p ferrum-cli -p ferrum-testkit --quiet
fi
testkit="$target/release/ferrum-testkit"
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
port=${FERRUM_E2E_PORT:-18431}
key=e2e-secret-key
work=$(mktemp -d)
pids=()
passed=0
failed=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$failed" -gt 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- last lines of $(basename "$f")"; tail -n 15 "$f"; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PORT ARGS...: starts `ferrum serve ARGS` on PORT, logs to $work/NAME.log, waits for
# /health; prints the log and exits when the server dies or is not ready in 60 s.
start() {
  local name=$1 p=$2; shift 2
  "$bin" serve "$@" --port "$p" >"$work/$name.log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$p/health" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  cat "$work/$name.log"
  echo "server $name did not become ready on port $p" >&2
  exit 1
}

run() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@"; then passed=$((passed + 1)); echo "ok   $name ($((SECONDS - t0)) s)"
  else failed=$((failed + 1)); echo "FAIL $name ($((SECONDS - t0)) s)"; fi
}

# The default model.
VLLM_API_KEY=$key start smollm2 "$port" "$model" --served-model-name smollm2 default \
  --max-model-len 2048 --shutdown-timeout 5 --kv-cache-memory-bytes 512M
pid=${pids[-1]}
export E2E_URL="http://127.0.0.1:$port" E2E_KEY=$key E2E_MODEL=smollm2
run curl-guide bash "$here/curl_guide.sh"
run openai-sdk python3 "$here/test_openai_sdk.py"
run load-and-disconnect python3 "$here/test_load.py"
run bench-serve bash bench/serve/smoke.sh "$bin" "$model"
run jdk-httpclient bash "$here/java/run.sh"
run ollama-client python3 "$here/test_ollama.py"
# SIGTERM drains (the test sends it), then the process exits 0.
before=$failed
E2E_PID=$pid E2E_SHUTDOWN_TIMEOUT=5 run sigterm-drain python3 "$here/test_drain.py"
# A failed test may not have signalled; a second SIGTERM during a drain is not wanted otherwise.
[ "$failed" -eq "$before" ] || kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -KILL "$pid" 2>/dev/null && echo "the server was still running 20 s after SIGTERM"
if wait "$pid"; then passed=$((passed + 1)); echo "ok   sigterm-exit"; else failed=$((failed + 1)); echo "FAIL sigterm-exit"; fi
run config-precedence bash "$here/config_precedence.sh" "$bin" "$model"

# A random-weight Qwen3 with Qwen's vocabulary, served as vLLM serves Qwen3; a second server of
# the same model renders only message contents (and `<think>` with the template argument
# open_think, as thinking-only templates end the prompt), so that forced tool-call tokens are not
# in its prompts (see test_qwen3.py).
qwen="$work/tiny-qwen3"
"$testkit" make-model --preset tiny_qwen3 --qwen-vocab models/qwen.tiktoken "$qwen"
printf '%s' "{%- for m in messages %}{{ m['content'] }}{%- endfor %}{%- if open_think %}<think>{%- endif %}" \
  >"$work/bare.jinja"
qwen_flags=(--served-model-name qwen3-tiny --max-model-len 4096 --kv-cache-memory-bytes 64M --api-key "$key"
  --reasoning-parser qwen3 --enable-auto-tool-choice --tool-call-parser hermes)
start qwen3 $((port + 1)) "$qwen" "${qwen_flags[@]}"
start qwen3-bare $((port + 2)) "$qwen" "${qwen_flags[@]}" --chat-template "$work/bare.jinja"
E2E_URL="http://127.0.0.1:$((port + 1))" E2E_BARE_URL="http://127.0.0.1:$((port + 2))" E2E_MODEL=qwen3-tiny \
  E2E_MODEL_DIR="$qwen" run qwen3-openai-sdk python3 "$here/test_qwen3.py"

# Both models in one server, from a `models:` list in a --config file.
cat >"$work/two-models.yaml" <<YAML
kv-cache-memory-bytes: 256M
models:
  - model: $model
    served-model-name: [small, smollm2-alias]
    max-model-len: 1024
    kv-cache-memory-bytes: 128M
  - model: $qwen
    served-model-name: qwen
    max-model-len: 2048
    kv-cache-memory-bytes: 64M
YAML
start two-models $((port + 3)) --config "$work/two-models.yaml" --api-key "$key"
E2E_URL="http://127.0.0.1:$((port + 3))" E2E_KEY=$key run two-models python3 "$here/test_two_models.py"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
