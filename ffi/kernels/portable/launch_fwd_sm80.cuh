// Launch wrapper of the portable kernel, included by the instantiation files.
#pragma once

#include "kernels/launch_fwd.h"
#include "kernels/portable/kernel_fwd_sm80.cuh"

namespace jax_fa3::portable {

template <class In, class Out, int kHeadDim>
cudaError_t LaunchFwd(const AttentionParams& p, cudaStream_t stream) {
  using Cfg = TileConfig<kHeadDim>;
  using Compute = typename ComputeTypeOf<In>::type;
  constexpr int kSmemBytes = Cfg::kSmemElems * sizeof(Compute);
  auto* kernel = &AttentionFwdPortable<Cfg, In, Out>;
  // Host-side attribute, not a stream operation: safe under graph capture.
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(NumBlocksX<Cfg::kBlockM>(p), p.num_heads);
  if (grid.x == 0) return cudaSuccess;
  kernel<<<grid, Cfg::kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace jax_fa3::portable
