#!/usr/bin/env bash
# Ferrum's GPU test kit, run on a machine with an NVIDIA GPU, PyTorch and transformers, in one go:
#   1. random-weight models (tiny Qwen3/Llama, Qwen3-4B and Llama-3.1-8B shapes) built and saved
#      with transformers, with its reference logits and greedy tokens, and the copy bandwidth;
#   2. NVRTC compile check of our kernels for sm_80..sm_90 (cuda_kernels test binary), device
#      sampling and attention kernels against references (cuda_sampling, cuda_attention), and
#      the engine with async scheduling against the one-step loop (cuda_async), and no host
#      allocation in a warm decode step (cuda_step_alloc);
#   3. CUDA vs CPU on the testkit's tiny presets, and the parity/decode run on the models of 1
#      (cuda_parity test binary), in bf16 and again in f32;
#   4. compare.py: the checks and a short table, printed last;
#   5. with ENGINE_MODELS, the engine on those shapes: generation, seeded sampling reproduced
#      over three runs, latency and offline throughput.
# Binaries come prebuilt in $FERRUM_KIT_BIN (default .gpu): `scripts/gpu/build.sh` makes them.
# Logs go to $OUT (default /tmp/ferrum-kit). SHAPES picks models (comma list, see make_models.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ferrum-kit}
BIN=${FERRUM_KIT_BIN:-.gpu}
ROOT=${FERRUM_KIT_MODELS:-/tmp/ferrum-kit-models}
SHAPES=${SHAPES:-tiny-qwen3,tiny-llama,qwen3-4b,llama3-8b}
mkdir -p "$OUT" "$ROOT"
# cuBLAS and NVRTC: the toolkit's folder, else the pip wheels PyTorch brings.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia,os;print(" ".join(os.path.join(p,s,"lib") for p in nvidia.__path__ for s in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
export LD_LIBRARY_PATH FERRUM_CACHE_DIR=${FERRUM_CACHE_DIR:-/tmp/ferrum-cache}
export PYTHONUNBUFFERED=1
status=0
# Few files: the device tool brings back at most 8 from $OUT.
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; } 2>&1 | tee "$OUT/models.log"
python3 scripts/gpu/make_models.py --root "$ROOT" --shapes "$SHAPES" 2>&1 | tee -a "$OUT/models.log" || status=1
echo "== cuda_kernels" > "$OUT/tests.log"
"$BIN/cuda_kernels" --test-threads 1 2>&1 | tee -a "$OUT/tests.log" || status=1
# Device sampling against the host sampler; attention kernels against a naive reference, with
# the kernels' timings.
for t in cuda_sampling cuda_attention cuda_linear cuda_async cuda_step_alloc; do
  [ -x "$BIN/$t" ] || continue
  echo "== $t" >> "$OUT/tests.log"
  "$BIN/$t" --test-threads 1 --include-ignored --nocapture 2>&1 | tee -a "$OUT/tests.log" || status=1
done
echo "== cuda_parity" >> "$OUT/tests.log"
FERRUM_PARITY_DIR="$ROOT" "$BIN/cuda_parity" --test-threads 1 --nocapture 2>&1 | tee -a "$OUT/tests.log" || status=1
# The same models with Ferrum computing in f32 (`--dtype float32`), for the 1e-3 check against
# transformers in f32. PARITY_F32=0 skips it.
if [ "${PARITY_F32:-1}" != 0 ]; then
  echo "== cuda_parity (float32)" >> "$OUT/tests.log"
  FERRUM_PARITY_DTYPE=float32 FERRUM_PARITY_DIR="$ROOT" "$BIN/cuda_parity" cuda_parity_dump \
    --test-threads 1 --nocapture 2>&1 | tee -a "$OUT/tests.log" || status=1
fi
# 5. The engine end to end on CUDA (a tiny tokenizer stands in: prompts are token ids anyway):
#    start-up time and memory plan, greedy generation, offline throughput (vLLM's workloads,
#    fewer prompts on the 1024-token-input workload to keep the run short).
if [ -x "$BIN/ferrum" ] && [ -n "${ENGINE_MODELS:-llama3-8b}" ]; then
  for m in ${ENGINE_MODELS:-llama3-8b}; do
    [ -d "$ROOT/$m" ] || continue
    cp "$BIN"/tok/* "$ROOT/$m/"
    "$BIN/ferrum" generate --model "$ROOT/$m" --device cuda \
      --prompt "hello world" --max-tokens 64 --ignore-eos --temperature 0 --print-token-ids \
      2>&1 | tee -a "$OUT/engine.log" || status=1
    # Seeded sampling is reproducible: 48 prompts (greedy, seeded top-p, seeded top-k) generated
    # three times, one-step and async loops, give the same token ids every time.
    python3 -c 'import json
for i in range(48):
    line = {"prompt": "Item %d: the story of %s" % (i, "x" * (i % 23)), "max_tokens": 8 + (i * 37) % 120, "temperature": 0}
    if i % 3 == 1: line.update({"temperature": 0.8, "seed": i, "top_p": 0.9})
    if i % 3 == 2: line.update({"temperature": 0.8, "seed": i, "top_k": 50})
    print(json.dumps(line))' > "$ROOT/seeded_prompts.jsonl"
    sums=""
    for flag in --no-async-scheduling --no-async-scheduling --async-scheduling; do
      sums="$sums $("$BIN/ferrum" generate --model "$ROOT/$m" --device cuda --prompts-file \
        "$ROOT/seeded_prompts.jsonl" --print-token-ids $flag 2>/dev/null | md5sum | cut -c1-32)"
    done
    if [ "$(echo $sums | tr ' ' '\n' | sort -u | wc -l)" = 1 ]; then
      echo "$m: seeded sampling reproducible over 3 runs ($sums)" | tee -a "$OUT/engine.log"
    else
      echo "$m: seeded sampling NOT reproducible over 3 runs:$sums" | tee -a "$OUT/engine.log"; status=1
    fi
    # Single-stream latency as `vllm bench latency` measures it: one 32-token prompt, 128 tokens.
    timeout 120 "$BIN/ferrum" bench latency --model "$ROOT/$m" --device cuda --batch-size 1 \
      --input-len 32 --output-len 128 --num-iters-warmup 2 --num-iters 5 2>&1 | tail -4 | tee -a "$OUT/engine.log"
    # Time per op, one op at a time (PROFILE=1): where a decode step's time goes.
    if [ -n "${PROFILE:-}" ]; then
      FERRUM_CUDA_PROFILE=1 "$BIN/ferrum" generate --model "$ROOT/$m" --device cuda \
        --prompt "hello world" --max-tokens 32 --ignore-eos --temperature 0 2>&1 | tail -40 >> "$OUT/engine.log"
    fi
    timeout ${TPUT_TIMEOUT:-150} "$BIN/ferrum" bench throughput --model "$ROOT/$m" --device cuda \
      --num-prompts ${TPUT_N1:-1000} --random-input-len 202 --random-output-len 179 --max-num-seqs 256 \
      --max-num-batched-tokens 8192 --output-json "$ROOT/tput_${m}_202_179.json" 2>&1 | tail -5 | tee -a "$OUT/engine.log"
    cat "$ROOT/tput_${m}_202_179.json" >> "$OUT/engine.log" 2>/dev/null
    timeout ${TPUT_TIMEOUT:-150} "$BIN/ferrum" bench throughput --model "$ROOT/$m" --device cuda \
      --num-prompts ${TPUT_N2:-200} --random-input-len 1024 --random-output-len 128 --max-num-seqs 256 \
      --max-num-batched-tokens 8192 --output-json "$ROOT/tput_${m}_1024_128.json" 2>&1 | tail -5 | tee -a "$OUT/engine.log"
    cat "$ROOT/tput_${m}_1024_128.json" >> "$OUT/engine.log" 2>/dev/null
  done
fi
# 7. `ferrum serve --device cuda`: start-up to the first 200 from /health (warm page cache: the
#    model was just written), then vLLM-style serving runs at several request rates.
if [ -n "${SERVE_MODEL:-}" ] && [ -d "$ROOT/$SERVE_MODEL" ] && [ -x "$BIN/ferrum" ]; then
  cp "$BIN"/tok/* "$ROOT/$SERVE_MODEL/"
  port=${SERVE_PORT:-8011}
  t0=$(date +%s.%N)
  "$BIN/ferrum" serve "$ROOT/$SERVE_MODEL" --device cuda --port "$port" --max-model-len 4096 \
    > "$ROOT/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
  t1=$(date +%s.%N)
  echo "serve $SERVE_MODEL: start-up to /health 200 in $(python3 -c "print(round($t1 - $t0, 2))") s" | tee -a "$OUT/engine.log"
  for rate in ${SERVE_RATES:-1 4 16 inf}; do
    echo "== request rate $rate" >> "$OUT/engine.log"
    timeout ${SERVE_TIMEOUT:-100} "$BIN/ferrum" bench serve --base-url "http://127.0.0.1:$port" \
      --dataset-name random --random-input-len 202 --random-output-len 179 --random-vocab-size 500 \
      --num-prompts ${SERVE_N:-64} --request-rate "$rate" --ignore-eos --seed 0 \
      --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99 2>&1 | tail -32 >> "$OUT/engine.log"
  done
  kill "$pid" 2>/dev/null
  echo "== serve log (start-up)" >> "$OUT/engine.log"
  head -12 "$ROOT/serve.log" | cut -c1-300 >> "$OUT/engine.log"
fi
# 6. transformers on the same saved models, as the measured baseline.
if [ -n "${HF_MODELS:-}" ]; then
  python3 scripts/gpu/hf_bench.py --root "$ROOT" --models "$HF_MODELS" 2>&1 | tee -a "$OUT/engine.log" || status=1
fi
python3 scripts/gpu/compare.py --root "$ROOT" 2>&1 | tee "$OUT/summary.txt" || status=1
exit $status
