#!/usr/bin/env bash
# End-to-end tests of `ferrum serve` with real clients: the official `openai` Python package,
# curl running the deployment guide's commands, and the JDK's java.net.http (installed with apt
# when missing).
# Starts the release binary on the default model; installs the `openai` pip package if absent.
# Usage: tests/e2e/run.sh            (from anywhere; exits non-zero on the first failure)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=tests/e2e
scripts/fetch-default-model >/dev/null
python3 -c "import openai" 2>/dev/null || python3 -m pip install --quiet openai
cargo build --release -p ferrum-cli --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/ferrum"
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
port=${FERRUM_E2E_PORT:-18431}
key=e2e-secret-key
log=$(mktemp)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

VLLM_API_KEY=$key "$bin" serve "$model" --served-model-name smollm2 default --port "$port" \
  --max-model-len 2048 --shutdown-timeout 5 --kv-cache-memory-bytes 512M >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "server exited"; exit 1; }
  sleep 0.5
done
export E2E_URL="http://127.0.0.1:$port" E2E_KEY=$key E2E_MODEL=smollm2
passed=0
failed=0
run() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
run curl-guide bash "$here/curl_guide.sh"
run openai-sdk python3 "$here/test_openai_sdk.py"
run load-and-disconnect python3 "$here/test_load.py"
run jdk-httpclient bash "$here/java/run.sh"
# SIGTERM drains and exits.
kill -TERM "$pid"
if wait "$pid"; then passed=$((passed + 1)); echo "ok   sigterm-exit"; else failed=$((failed + 1)); echo "FAIL sigterm-exit"; fi
pid=""
run config-precedence bash "$here/config_precedence.sh" "$bin" "$model"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
