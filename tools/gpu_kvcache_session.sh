#!/usr/bin/env bash
# One device session for the KV-cache work (issue 4), after the build: the
# KV-cache GPU tests, the decode benchmark, then the whole GPU suite with
# the time left. Logs go to $OUT (the device tool brings them back).
set -uo pipefail
start=$(date +%s)
budget=${1:-330}  # seconds this script may use
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest tests/test_kvcache_gpu.py -q -n 8 --timeout 120 -p no:benchmark 2>&1 \
  | tail -40 | tee "$OUT/kvcache_gpu.log"
timeout 90 python3 bench/run.py --decode --iters 20 --out "$OUT/decode.md" 2>&1 | tail -30 | tee "$OUT/bench.log"
left=$(( budget - ($(date +%s) - start) ))
if (( left > 30 )); then
  timeout "$left" python3 -m pytest tests -q -n 8 --timeout 120 -p no:benchmark -x 2>&1 | tail -30 \
    | tee "$OUT/all_gpu.log"
fi
