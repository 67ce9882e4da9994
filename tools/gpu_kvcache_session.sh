#!/usr/bin/env bash
# One device session for the KV-cache work (issue 4), after the build: the
# whole GPU suite, the decode benchmark, an Nsight Compute profile of the
# decode kernel, and compute-sanitizer on the out-of-range KV-cache test.
# Logs go to $OUT (the device tool brings them back).
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest tests -q -n 8 --timeout 120 -p no:benchmark 2>&1 | tail -30 | tee "$OUT/all_gpu.log"
timeout 90 python3 bench/run.py --decode --iters 20 --out "$OUT/decode.md" 2>&1 | tail -30 | tee "$OUT/bench.log"
timeout 50 ncu --clock-control none -k regex:AttentionFwdPortable -c 1 --section SpeedOfLight --section Occupancy \
  --section LaunchStats --section WarpStateStats python3 bench/profile_decode.py > "$OUT/ncu.txt" 2>&1
grep -E "Duration|Throughput|Occupancy|Registers|Block Limit|Stall|Warp Cycles|Shared Memory Config" "$OUT/ncu.txt" | head -40
timeout 70 compute-sanitizer --tool memcheck python3 -m pytest tests/test_kvcache_gpu.py -q -p no:benchmark \
  -k "out_of_range" 2>&1 | tail -8 | tee "$OUT/sanitizer.log"
