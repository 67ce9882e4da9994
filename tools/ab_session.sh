#!/usr/bin/env bash
# Builds of several trees timed against each other in one GPU-machine call.
# Each NAME=TREE builds (all at once, sharing the cores) as a wheel into
# /tmp/ab_NAME; no editable install is used, so none shadows another. A
# tree is a checkout of some revision, e.g. `git archive <rev> | tar -x -C
# .snap/rev_a`, or `.` for the working tree. Arguments after `--` go to
# bench/ab.py, which then times every build in alternating processes;
# without `--` the script only builds.
# Usage (on the device, repo root): tools/ab_session.sh NAME=TREE... [-- ab.py args...]
# Logs go to $OUT (default ./gpu_logs).
set -u
specs=()
while [[ $# -gt 0 && $1 != -- ]]; do specs+=("$1"); shift; done
[[ ${#specs[@]} -gt 0 ]] || { echo "usage: tools/ab_session.sh NAME=TREE... [-- ab.py args...]"; exit 2; }
[[ $# -gt 0 ]] && shift
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export CMAKE_BUILD_PARALLEL_LEVEL=$(( ($(nproc) + ${#specs[@]} - 1) / ${#specs[@]} ))
python3 -m pip uninstall -q -y jax_fa3 > /dev/null 2>&1

build() {  # name, tree
  local tree=$2
  [[ $tree == */* || $tree == . ]] || tree=./$tree  # pip reads a bare name as a requirement
  python3 -m pip install -q --no-build-isolation --no-deps --upgrade --target "/tmp/ab_$1" "$tree" \
    -Ccmake.define.JAX_FA3_CUDA=ON -Ccmake.define.JAX_FA3_CUDA_ARCHS=90-real > "$OUT/build_$1.log" 2>&1 \
    || { echo "build $1 failed:"; grep -E "error|Error" "$OUT/build_$1.log" | head -20; return 1; }
}
start=$(date +%s)
pids=()
builds=()
for spec in "${specs[@]}"; do
  build "${spec%%=*}" "${spec#*=}" & pids+=($!)
  builds+=("${spec%%=*}=/tmp/ab_${spec%%=*}")
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[[ $failed == 0 ]] || exit 1
echo "builds: $(( $(date +%s) - start )) s"
[[ $# -gt 0 ]] || exit 0
python3 bench/ab.py --builds "${builds[@]}" "$@"
