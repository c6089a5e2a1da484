#!/usr/bin/env bash
# What each kernel class costs inside the pipelined single-stream decode step, on the GPU
# machine: `ferrum bench latency` (one 32-token prompt, 128 tokens) with all kernels, then with
# one class of launches left out at a time (FERRUM_CUDA_SKIP_KERNELS, see docs/cuda.md; the
# output is garbage, the timing is that of the rest). The difference, per output token and per
# layer, is that class's share of the step, which per-kernel profiles (each kernel timed
# alone) do not show.
#
# Output: the full step per token on the first row, then per class the time it saves per token
# and per layer.
# Usage: scripts/gpu/knockout.sh MODEL_DIR [FERRUM_BIN]   (FERRUM_BIN defaults to .gpu/ferrum;
# CLASSES="name1 name2,name3" picks the launch classes, comma-joined ones left out together)
set -uo pipefail
M=${1:?model folder}
BIN=${2:-.gpu/ferrum}
OUT_LEN=128
layers=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]+"/config.json"))["num_hidden_layers"])' "$M")
run() {
  FERRUM_CUDA_SKIP_KERNELS=$1 timeout 120 "$BIN" bench latency --model "$M" --device cuda \
    --batch-size 1 --input-len 32 --output-len $OUT_LEN --num-iters-warmup 2 --num-iters 4 2>/dev/null \
    | sed -n 's/^Avg latency: \([0-9.]*\) seconds/\1/p'
}
base=$(run "")
[ -n "$base" ] || { echo "bench latency failed" >&2; exit 1; }
printf '%-44s %10s %12s %12s\n' "left out" "latency s" "ms / token" "us / layer"
printf '%-44s %10.4f %12.3f %12s\n' "(nothing)" "$base" "$(python3 -c "print($base/$OUT_LEN*1e3)")" "-"
for k in ${CLASSES:-attn_decode qk_rope_kv gemv_norm gemv_res gemv_silu_norm gemv rms_norm}; do
  t=$(run "$k")
  [ -n "$t" ] || { echo "$k: bench latency failed" >&2; continue; }
  python3 -c "b,t,n,l=$base,$t,$OUT_LEN,$layers; print('%-44s %10.4f %12.3f %12.1f' % ('$k', t, (b-t)/n*1e3, (b-t)/n/l*1e6))"
done
