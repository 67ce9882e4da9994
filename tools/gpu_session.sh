#!/usr/bin/env bash
# One GPU-machine session: build, SASS checks, GPU tests, benchmark.
# Usage (on the device, repo root): tools/gpu_session.sh [tests|bench|all] [pytest args...]
# Logs go to $OUT (default ./gpu_logs).
set -u
what=${1:-all}
shift || true
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site CMAKE_BUILD_PARALLEL_LEVEL=16 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
start=$(date +%s)
if ! python3 -m pip install --no-build-isolation --no-deps -e . -Ccmake.define.JAX_FA3_CUDA=ON \
    -Ccmake.define.JAX_FA3_CUDA_ARCHS=90-real -Cbuild.verbose=true > "$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -40
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
grep -E "Potential Performance Loss|spill stores|C7517|C7508" "$OUT/build.log" | grep -v " 0 bytes spill stores" | sort | uniq -c | head -20
if command -v cuobjdump > /dev/null; then
  for obj in $(find build -name "fwd_sm90_*.o"); do
    sass=$(cuobjdump --dump-sass "$obj")
    echo "$(basename "$obj"): HGMMA $(grep -c HGMMA <<< "$sass"), QGMMA $(grep -c QGMMA <<< "$sass"), local ld/st $(grep -cE "\b(LDL|STL)\b" <<< "$sass")"
    grep -E "\b(LDL|STL)\b" <<< "$sass" | head -3
  done
fi
if [[ $what == tests || $what == all ]]; then
  timeout 400 python3 -m pytest tests -q -n 8 --timeout 150 -p no:benchmark "$@" > "$OUT/tests.log" 2>&1
  tail -30 "$OUT/tests.log"
fi
if [[ $what == bench || $what == all ]]; then
  timeout 300 python3 bench/run.py --iters 10 > "$OUT/bench.log" 2>&1
  cat "$OUT/bench.log"
fi
if [[ $what == sweep ]]; then
  timeout 300 python3 bench/hopper_sweep.py "$@" > "$OUT/sweep.log" 2>&1
  cat "$OUT/sweep.log"
fi
