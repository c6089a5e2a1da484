#!/usr/bin/env bash
# Builds what scripts/gpu/kit.sh runs into .gpu/ (release builds, so that host-side timings
# are those of the shipped code) (git-ignored through .git/info/exclude): the
# CUDA test binaries and the release `ferrum` binary. Run on the build machine (no CUDA needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
for t in cuda_kernels cuda_parity cuda_sampling cuda_attention cuda_linear; do
  [ -f "crates/ferrum-backend/tests/$t.rs" ] || continue
  exe=$(cargo test --release -p ferrum-backend --test "$t" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys,json;[print(m["executable"]) for m in map(json.loads,sys.stdin) if m.get("executable")]' | tail -1)
  cp "$exe" ".gpu/$t"
done
for t in ferrum-engine:cuda_async ferrum-executor:cuda_step_alloc; do
  exe=$(cargo test --release -p "${t%%:*}" --test "${t#*:}" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys,json;[print(m["executable"]) for m in map(json.loads,sys.stdin) if m.get("executable")]' | tail -1)
  cp "$exe" ".gpu/${t#*:}"
done
if [ "${WITH_CLI:-1}" = 1 ]; then
  cargo build --release -p ferrum-cli
  cp "${CARGO_TARGET_DIR:-target}/release/ferrum" .gpu/ferrum
fi
# The device copy of the tree is size-limited: no symbols.
strip .gpu/cuda_* .gpu/ferrum 2>/dev/null || true
ls -la .gpu
