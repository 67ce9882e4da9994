// Host side of the Hopper kernel: TMA descriptors, persistent grid, launch.
// Included by the fwd_sm90_* instantiation files (built for sm_90a only).
#pragma once

#include <atomic>

#include "kernels/device_cache.h"
#include "kernels/hopper/kernel_fwd_sm90.hpp"
#include "kernels/hopper/supported.h"
#include "kernels/hopper/tile_order.h"
#include "kernels/launch_fwd.h"

namespace jax_fa3::hopper {

template <class In, class Out, int kHeadDim, TileShape kTile>
cudaError_t LaunchFwd(const AttentionParams& p, cudaStream_t stream) {
  using Cfg = TileConfig<In, Out, kHeadDim, kTile>;
  KernelParams<Cfg> kp;
  kp.p = p;
  int m_blocks;
  const int num_tiles = TileScheduler<Cfg::kBlockM>::NumTilesUpperBound(p, &m_blocks);
  if (num_tiles == 0) return cudaSuccess;
  kp.sched = SchedulerParams::Make(p, num_tiles, m_blocks);

  auto* kernel = &AttentionFwdSm90<Cfg>;
  // Host-side queries and attributes (not stream operations: safe under
  // graph capture), once per device. The persistent grid fills every CTA
  // slot the SMs have, after the kernel's shared-memory limit is raised.
  static std::atomic<int> slots_cache[kMaxCachedDevices] = {};
  static std::atomic<int> l2_cache[kMaxCachedDevices] = {};
  const int slots = CachedForDevice(slots_cache, [&](int device) {
    int sms = 0, ctas_per_sm = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas_per_sm, kernel, Cfg::kThreads, Cfg::kSmemBytes) !=
            cudaSuccess) {
      return 0;
    }
    return sms * std::max(ctas_per_sm, 1);
  });
  const int l2_bytes = CachedForDevice(l2_cache, [](int device) {
    int bytes = 0;
    return cudaDeviceGetAttribute(&bytes, cudaDevAttrL2CacheSize, device) == cudaSuccess ? bytes : 0;
  });
  if (slots == 0 || l2_bytes == 0) return cudaErrorInvalidDevice;

  // Varlen tensors are one sequence of all tokens; the batch mode is 1.
  const int batch = p.is_varlen() ? 1 : p.batch;
  auto batch_stride = [&](const TensorStrides& s) { return p.is_varlen() ? int64_t{0} : s.batch; };
  kp.shape_q = make_shape(p.seqlen_q, p.head_dim, p.num_heads, batch);
  kp.shape_k = make_shape(p.seqlen_k, p.head_dim, p.num_heads_k, batch);
  kp.shape_v = VGlobal<Cfg>::MakeShape(p.seqlen_k, p.head_dim, p.num_heads_k, batch);
  auto gmem = [](const void* ptr) { return make_gmem_ptr(static_cast<const In*>(ptr)); };
  Tensor mQ = make_tensor(gmem(p.q), kp.shape_q,
                          make_stride(p.q_stride.row, _1{}, p.q_stride.head, batch_stride(p.q_stride)));
  Tensor mK = make_tensor(gmem(p.k), kp.shape_k,
                          make_stride(p.k_stride.row, _1{}, p.k_stride.head, batch_stride(p.k_stride)));
  Tensor mV = make_tensor(gmem(p.v), kp.shape_v, VGlobal<Cfg>::MakeStride(p.v_stride, batch_stride(p.v_stride)));
  kp.tma_q = make_tma_copy(SM90_TMA_LOAD{}, mQ, typename Cfg::SmemLayoutQ{},
                           Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{}, _1{});
  kp.tma_k = make_tma_copy(SM90_TMA_LOAD{}, mK, take<0, 2>(typename Cfg::SmemLayoutK{}),
                           Shape<typename Cfg::BlockN, typename Cfg::HeadDim>{}, _1{});
  kp.tma_v = make_tma_copy(SM90_TMA_LOAD{}, mV, take<0, 2>(typename Cfg::SmemLayoutVLoad{}),
                           typename VGlobal<Cfg>::Tile{}, _1{});
  // O is stored from registers where TMA cannot address it.
  TensorStrides out_strides = p.out_stride;
  out_strides.batch = batch_stride(p.out_stride);
  kp.o_tma = Cfg::kSmemEpilogue && TmaAligned(p.out, out_strides, sizeof(Out));
  if (kp.o_tma) {
    Tensor mO = make_tensor(make_gmem_ptr(static_cast<Out*>(p.out)), kp.shape_q,
                            make_stride(out_strides.row, _1{}, out_strides.head, out_strides.batch));
    kp.tma_o = make_tma_copy(SM90_TMA_STORE{}, mO, typename Cfg::SmemLayoutOWarpgroup{},
                             Shape<Int<Cfg::kRowsPerWarpgroup>, typename Cfg::HeadDim>{}, _1{});
  }

  const int grid = std::min(kp.sched.num_tiles, slots);
  if (kp.sched.longest_first && !p.is_varlen()) {
    const int sms = Cfg::kCtasPerSm == 2 ? slots / 2 : 0;
    // Under a key split a tile's chain takes half its blocks: costed as
    // blocks twice as wide.
    const int cost_block_n = Cfg::kBlockN * KeySplit<Cfg>::kStep;
    const TileOrder order = CachedTileOrder(p, Cfg::kBlockM, cost_block_n, sizeof(In), l2_bytes, m_blocks, grid,
                                            /*can_count=*/p.tile_counter != nullptr, sms);
    kp.sched.section = order.section;
    kp.sched.snake = order.snake;
    kp.sched.pair_sms = order.pair_reverse ? sms : 0;
    if (order.dynamic) {
      // A stream operation (a memset node under graph capture), not a host synchronization.
      if (const cudaError_t err = cudaMemsetAsync(p.tile_counter, 0, sizeof(*p.tile_counter), stream);
          err != cudaSuccess) {
        return err;
      }
      kp.sched.tile_counter = p.tile_counter;
    }
  }
  kp.sched.tail = TailSplit<Cfg>::Plan(p, kp.sched.num_tiles, grid);
  if (kp.sched.tail.counts != nullptr) {
    const size_t count_bytes = size_t(grid) * kTailCountsPerCta * sizeof(int);
    if (const cudaError_t err = cudaMemsetAsync(kp.sched.tail.counts, 0, count_bytes, stream); err != cudaSuccess) {
      return err;
    }
  }
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(kp);
  return cudaGetLastError();
}

}  // namespace jax_fa3::hopper
