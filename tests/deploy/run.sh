#!/usr/bin/env bash
# Tests of the deployment files (docker/, deploy/) that need no container engine:
#  1. every compose file through Debian's `docker-compose config` (schema, anchors, variables);
#  2. check_manifests.py: compose, Kubernetes YAML and Dockerfiles agree on port, /health,
#     read-only models, config file and grace periods;
#  3. failover.py: deploy/nginx/nginx.conf with Debian's nginx in front of two real
#     `ferrum serve` processes on loopback; under load one is killed, restarted, and then the
#     other is drained with SIGTERM: no request started after the kill or during the drain fails.
# Installs docker-compose, nginx and python3-yaml with apt when missing (root on Debian).
# Needs the release binary (tests/e2e/run.sh builds it; built here when absent).
# Usage: tests/deploy/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=tests/deploy

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
python3 -c "import yaml" 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
export PATH="$PATH:/usr/sbin"
# Debian's python3-yaml serves the system python; a python3 elsewhere on PATH gets it from pip.
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet pyyaml

for f in deploy/docker-compose*.yml; do
  MODEL_DIR=/data/model docker-compose -f "$f" config -q
  echo "ok   compose $f"
done
python3 "$here/check_manifests.py"

scripts/fetch-default-model >/dev/null
bin="${CARGO_TARGET_DIR:-$root/target}/release/ferrum"
[ -x "$bin" ] || cargo build --release -p ferrum-cli --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! python3 "$here/failover.py" "$bin" "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  deploy/nginx/nginx.conf "$work"; then
  tail -n 20 "$work"/*.log "$work/nginx.out" 2>/dev/null || true
  echo "FAIL nginx failover"
  exit 1
fi
echo "ok   nginx failover"
