#!/usr/bin/env bash
# Compiles one kernel instantiation with the CMake build's flags and prints
# its SASS, so the compiled code can be read without the GPU machine (nvcc
# compiles for any architecture; cuobjdump and the nvdisasm it runs come
# from the nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels, downloaded
# once into .tools/).
# Usage: tools/local_sass.sh fwd_sm90_bf16_hd128 > /tmp/bf16_hd128.sass
#        (any name under ffi/instantiations/, without .cu; ptxas -v on stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
unit=${1:?usage: tools/local_sass.sh <instantiation name>}
src=ffi/instantiations/$unit.cu
[[ -f $src ]] || { echo "no $src" >&2; exit 1; }

bin=.tools/nvidia/cu13/bin
if [[ ! -x $bin/cuobjdump || ! -x $bin/nvdisasm ]]; then
  mkdir -p .tools
  python3 -m pip download -q --no-deps -d .tools nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  for wheel in .tools/nvidia_cuda_cuobjdump-*.whl .tools/nvidia_cuda_nvdisasm-*.whl; do
    python3 -m zipfile -e "$wheel" .tools/
  done
  chmod +x $bin/cuobjdump $bin/nvdisasm
fi

cutlass=$(python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))")
flags=(-std=c++17 --expt-relaxed-constexpr -O3 -DNDEBUG -Iffi -I"$cutlass" -Xptxas -v -c)
if [[ $unit == fwd_sm90_* ]]; then
  flags+=(-DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -gencode arch=compute_90a,code=sm_90a)
else
  flags+=(-gencode arch=compute_90,code=sm_90)
fi
obj=$(mktemp --suffix=.o)
trap 'rm -f "$obj"' EXIT
nvcc "${flags[@]}" -o "$obj" "$src" >&2
NVDISASM_PATH=$bin/nvdisasm PATH=$bin:$PATH "$bin/cuobjdump" --dump-sass "$obj"
