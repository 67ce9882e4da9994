// Launch wrapper of the portable kernel, included by the instantiation files.
#pragma once

#include "kernels/launch_fwd.h"
#include "kernels/portable/combine.cuh"
#include "kernels/portable/kernel_fwd_sm80.cuh"
#include "kernels/portable/schedule.h"

namespace jax_fa3::portable {

template <class Cfg, class In, class Out>
cudaError_t LaunchKernel(const AttentionParams& p, cudaStream_t stream) {
  using Compute = typename ComputeTypeOf<In>::type;
  constexpr int kSmemBytes = Cfg::kSmemElems * sizeof(Compute);
  auto* kernel = &AttentionFwdPortable<Cfg, In, Out>;
  // Host-side attribute, not a stream operation: safe under graph capture.
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(NumBlocksX<Cfg::kBlockM>(p), p.pack_gqa ? p.num_heads_k : p.num_heads, p.split.num_splits);
  if (grid.x == 0) return cudaSuccess;
  kernel<<<grid, Cfg::kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// Picks packed GQA, the split count and the tile variant, launches the
// kernel and, with split-KV, the combine kernel.
template <class In, class Out, int kHeadDim>
cudaError_t LaunchFwd(const AttentionParams& params, cudaStream_t stream) {
  using Cfg = TileConfig<kHeadDim>;
  AttentionParams p = params;
  ChooseSchedule(&p, Cfg::kBlockM, Cfg::kBlockN, NumSms());
  cudaError_t err;
  if constexpr (kHeadDim <= 128) {
    // Decode-shaped calls (every sequence's packed rows fit one query tile)
    // take the deeper K/V pipeline.
    const bool decode = !p.is_varlen() && static_cast<long long>(p.seqlen_q) * PackFactor(p) <= Cfg::kBlockM;
    err = decode ? LaunchKernel<TileConfig<kHeadDim, true>, In, Out>(p, stream)
                 : LaunchKernel<Cfg, In, Out>(p, stream);
  } else {
    err = LaunchKernel<Cfg, In, Out>(p, stream);
  }
  if (err != cudaSuccess || p.split.num_splits <= 1) return err;
  return LaunchCombine<Out>(p, stream);
}

}  // namespace jax_fa3::portable
