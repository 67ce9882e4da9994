#!/usr/bin/env bash
# Two builds timed against each other in one GPU-machine call: A is a tree
# of another revision (e.g. `git archive <rev> | tar -x -C .snap/rev_a`), B
# the working tree. Both build at once as wheels into /tmp/ab_{a,b} (no
# editable install is used, so neither shadows the other), then
# bench/ab.py times them in alternating processes.
# Usage (on the device, repo root): tools/ab_session.sh <tree A> [bench/ab.py args...]
# Logs go to $OUT (default ./gpu_logs).
set -u
a_tree=${1:?usage: tools/ab_session.sh <tree A> [bench/ab.py args...]}
shift
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site CMAKE_BUILD_PARALLEL_LEVEL=8 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 -m pip uninstall -q -y jax_fa3 > /dev/null 2>&1

build() {  # tree, target, name
  python3 -m pip install -q --no-build-isolation --no-deps --upgrade --target "$2" "$1" \
    -Ccmake.define.JAX_FA3_CUDA=ON -Ccmake.define.JAX_FA3_CUDA_ARCHS=90-real > "$OUT/build_$3.log" 2>&1 \
    || { echo "build $3 failed:"; grep -E "error|Error" "$OUT/build_$3.log" | head -20; return 1; }
}
start=$(date +%s)
build "$a_tree" /tmp/ab_a a & pid_a=$!
build . /tmp/ab_b b & pid_b=$!
wait $pid_a && wait $pid_b || exit 1
echo "builds: $(( $(date +%s) - start )) s"
python3 bench/ab.py --a /tmp/ab_a --b /tmp/ab_b "$@"
