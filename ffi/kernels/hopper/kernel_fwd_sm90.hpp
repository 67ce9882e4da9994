// The Hopper forward kernel: warp roles and pipelines only.
//
// Warpgroup 0 is the producer (one warp issues TMA loads, 24 registers per
// thread); warpgroups 1 and 2 are consumers (64 query rows each, 240
// registers). The grid is persistent: each CTA walks tiles of the scheduler.
#pragma once

#include "kernels/hopper/consumer_fwd_sm90.hpp"
#include "cutlass/arch/reg_reconfig.h"
#include "cutlass/cutlass.h"
#include "kernels/hopper/epilogue_fwd_sm90.hpp"

namespace jax_fa3::hopper {

// The consumer warpgroups' tile loop: mainloop, then the epilogue.
template <class Cfg, class Out>
__device__ __forceinline__ void ConsumerLoop(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                             typename Cfg::PipelineK& pipe_k, typename Cfg::PipelineV& pipe_v) {
  const AttentionParams& p = kp.p;
  const int tid = threadIdx.x - 128;  // 0 .. kConsumerThreads-1
  const int warpgroup = tid / 128;
  ConsumerMainloop<Cfg> mainloop;
  Tensor tOrO = partition_fragment_C(mainloop.mma_pv,
                                     Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{});  // (MMA, MMA_M, MMA_N)
  Tensor o_rc = make_tensor(tOrO.data(), RowColLayout(tOrO.layout()));                      // (rows, cols)
  Tensor cO = mainloop.mma_pv.get_thread_slice(tid).partition_C(
      make_identity_tensor(Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{}));  // (MMA, MMA_M, MMA_N)
  Tensor cO_rc = make_tensor(cO.data(), RowColLayout(cO.layout()));                  // (rows, cols)
  OnlineSoftmaxSm90<2> softmax;
  int q_phase = 0;
  // The first warpgroup issues first: the second opens its turn once.
  if (warpgroup == 1) ConsumerMainloop<Cfg>::PassTurn(warpgroup);

  TileScheduler<Cfg::kBlockM> scheduler{p, kp.sched};
  for (int t = blockIdx.x; t < kp.sched.num_tiles; t += gridDim.x) {
    const TileInfo tile = scheduler.Decode(t);
    if (!tile.valid) break;
    const int kv_head = tile.head / p.head_group();
    ConsumerTile ct;
    ct.blocks = VisibleKeyBlocks<Cfg>(p, tile);
    ct.mask = Mask{tile.seq.seqlen_q, tile.seq.seqlen_k, p.window_left, p.window_right};
    ct.scale = ScoreScale::Make(
        p.softmax_scale * DescaleAt(p.q_descale, tile.batch, kv_head) * DescaleAt(p.k_descale, tile.batch, kv_head),
        p.softcap);
    ct.m0 = tile.m_block * Cfg::kBlockM;
    ct.wg_row0 = ct.m0 + warpgroup * Cfg::kRowsPerWarpgroup;
    // Dense K/V past seqlen_k are zero-filled by TMA; varlen and seqused_k
    // tails are real memory.
    const int tail_keys = tile.seq.seqlen_k - (ct.blocks.hi - 1) * Cfg::kBlockN;
    ct.v_tail_row = (p.is_varlen() || p.seqused_k != nullptr) && tail_keys < Cfg::kBlockN ? tail_keys : -1;

    softmax.Reset();
    clear(tOrO);
    if (!ct.blocks.empty()) {
      ss.q_full.wait(q_phase);
      q_phase ^= 1;
      mainloop.Run(ss, pipe_k, pipe_v, ct, softmax, tOrO, tid);
    }
    float out_scale[2], lse[2];
    softmax.Finalize(ct.scale.scale_log2, DescaleAt(p.v_descale, tile.batch, kv_head), out_scale, lse);
    StoreTile<Cfg::kBlockM, Out>(p, tile, o_rc, cO_rc, out_scale, lse);
  }
}

template <class Cfg, class Out>
__global__ void __launch_bounds__(Cfg::kThreads, 1) AttentionFwdSm90(const __grid_constant__ KernelParams<Cfg> kp) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  auto& ss = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  const int warp = cutlass::canonical_warp_idx_sync();
  const bool producer = warp < 4;

  if (warp == 0 && cute::elect_one_sync()) {
    cute::prefetch_tma_descriptor(kp.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(kp.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(kp.tma_v.get_tma_descriptor());
    ss.q_full.init(1);
  }
  using PipelineK = typename Cfg::PipelineK;
  using PipelineV = typename Cfg::PipelineV;
  typename PipelineK::Params pipe_params;
  pipe_params.transaction_bytes = Cfg::kKVTileBytes;
  pipe_params.role = producer ? PipelineK::ThreadCategory::Producer : PipelineK::ThreadCategory::Consumer;
  pipe_params.is_leader = threadIdx.x == 0;
  pipe_params.num_consumers = Cfg::kConsumerThreads;
  PipelineK pipe_k(ss.pipeline_k, pipe_params, Shape<_1, _1, _1>{});
  PipelineV pipe_v(ss.pipeline_v, pipe_params, Shape<_1, _1, _1>{});
  __syncthreads();  // barriers initialized and visible to every role

  if (producer) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (warp == 0) Producer<Cfg>::Run(kp, ss, pipe_k, pipe_v);
  } else {
    cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
    ConsumerLoop<Cfg, Out>(kp, ss, pipe_k, pipe_v);
  }
}

}  // namespace jax_fa3::hopper
