// The Hopper forward kernel: warp roles and pipelines only.
//
// Warpgroup 0 is the producer (one warp issues TMA loads, 24 registers per
// thread); warpgroups 1 and 2 (BlockTiling says how many) are consumers of
// 64 query rows each, or under a key split (KeySplit) of the same 64 rows.
// The grid is persistent: each CTA walks tiles of the scheduler.
#pragma once

#include "kernels/hopper/consumer_fwd_sm90.hpp"
#include "cutlass/arch/reg_reconfig.h"
#include "cutlass/cutlass.h"
#include "kernels/hopper/epilogue_fwd_sm90.hpp"
#include "kernels/hopper/tail_split_sm90.hpp"

namespace jax_fa3::hopper {

// The consumer warpgroups' tile loop: mainloop, then the epilogue.
template <class Cfg>
__device__ __forceinline__ void ConsumerLoop(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                             typename Cfg::PipelineK& pipe_k,
                                             typename ConsumerMainloop<Cfg>::PipelineV& pipe_v) {
  const AttentionParams& p = kp.p;
  const int tid = threadIdx.x - 128;  // 0 .. kConsumerThreads-1
  const int warpgroup = tid / 128;
  const int mma_tid = Cfg::kSplitKeys ? tid % 128 : tid;  // among the warpgroups of one TiledMma
  ConsumerMainloop<Cfg> mainloop;
  Tensor tOrO = partition_fragment_C(mainloop.mma_pv,
                                     Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{});  // (MMA, MMA_M, MMA_N)
  Tensor o_rc = make_tensor(tOrO.data(), RowColLayout(tOrO.layout()));                      // (rows, cols)
  Tensor cO = mainloop.mma_pv.get_thread_slice(mma_tid).partition_C(
      make_identity_tensor(Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{}));  // (MMA, MMA_M, MMA_N)
  Tensor cO_rc = make_tensor(cO.data(), RowColLayout(cO.layout()));                  // (rows, cols)
  typename ConsumerMainloop<Cfg>::Softmax softmax;
  // The first warpgroup issues first: the last opens its turn once.
  if (warpgroup > 0 && warpgroup == Cfg::kConsumerWarpgroups - 1) ConsumerMainloop<Cfg>::PassTurn(warpgroup);
  KeySplit<Cfg>::Start(warpgroup);

  // Tiles arrive in the producer's order, one per Q buffer (see Producer).
  for (int q_uses = 0;; ++q_uses) {
    const int q_buffer = q_uses % Cfg::kQStages;
    ss.q_full[q_buffer].wait((q_uses / Cfg::kQStages) & 1);
    const TileWork work = ss.work[q_buffer];
    const TileInfo& tile = work.tile;
    if (!tile.valid) break;
    ConsumerTile ct;
    ct.blocks = TileKeyBlocks<Cfg>(kp, tile, q_uses);
    ct.mask = Mask{tile.seq.seqlen_q, tile.seq.seqlen_k, p.window_left, p.window_right};
    ct.scale = ScoreScale::Make(p.softmax_scale * work.score_descale, p.softcap);
    ct.m0 = tile.m_block * Cfg::kBlockM;
    // A constant where the tile has one warpgroup's rows: the mask test of
    // every key block and the epilogue read it.
    ct.wg_row0 = ct.m0 + (Cfg::kMmaWarpgroups == 1 ? 0 : warpgroup * Cfg::kRowsPerWarpgroup);
    ct.v_tail_row = VTailRow<Cfg>(p, tile, ct.blocks);

    softmax.Reset();
    clear(tOrO);
    const KeyWalk walk = KeySplit<Cfg>::Walk(ct.blocks, warpgroup);
    const auto tile_k_state = mainloop.k_state;
    const auto tile_v_state = mainloop.v_state;
    // Without a split the walk is the tile's blocks; testing those (here
    // and for the walk's first block in Run) keeps the other shapes' code
    // as it was: ptxas allocated the long tile's registers differently
    // for one moved add (s8192 +0.4%).
    if (Cfg::kSplitKeys ? walk.empty() : ct.blocks.empty()) {
      ConsumerMainloop<Cfg>::ReleaseQuery(q_buffer);
    } else {
      if constexpr (Cfg::kSplitKeys) mainloop.Skip(KeySplit<Cfg>::Offset(warpgroup));
      mainloop.Run(ss, pipe_k, pipe_v, ct, walk, q_buffer, softmax, tOrO, mma_tid, warpgroup);
    }
    if constexpr (Cfg::kSplitKeys) {
      // Past the tile's blocks, whichever warpgroup took the last.
      mainloop.k_state = tile_k_state;
      mainloop.v_state = tile_v_state;
      mainloop.Skip(ct.blocks.hi - ct.blocks.lo);
      if (warpgroup == 1) {
        if (!ct.blocks.empty()) KeySplit<Cfg>::Publish(ss, softmax, o_rc, mma_tid);
        continue;
      }
      if (!ct.blocks.empty()) KeySplit<Cfg>::Combine(ss, softmax, o_rc, ct.scale.scale_log2, mma_tid);
    }
    if (Cfg::kTailSplit && q_uses >= kp.sched.tail.first_index) {
      const TailPiece piece = TailPieceOf(kp.sched.tail, q_uses - kp.sched.tail.first_index);
      if (piece.contributes()) {
        TailSplit<Cfg>::Contribute(kp.sched.tail, piece, softmax, o_rc, tid);
        continue;
      }
      TailSplit<Cfg>::Collect(kp.sched.tail, piece.peers, softmax, o_rc, ct.scale.scale_log2, tid);
    }
    float out_scale[2], lse[2];
    softmax.Finalize(ct.scale.scale_log2, work.v_descale, out_scale, lse);
    const OStorePath path = SmemEpilogue<Cfg>::Path(kp, tile, ct.wg_row0);
    if (path != OStorePath::kRegisters) {
      SmemEpilogue<Cfg>::Store(kp, ss, tile, mainloop.mma_pv, tOrO, out_scale, ct.wg_row0, path, mma_tid);
    }
    StoreTile<Cfg::kBlockM, Cfg::kHeadDim, typename Cfg::ElementOut>(p, tile, o_rc, cO_rc, out_scale, lse,
                                                                     /*store_o=*/path == OStorePath::kRegisters);
  }
  SmemEpilogue<Cfg>::Drain(tid);
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kCtasPerSm) AttentionFwdSm90(const __grid_constant__ KernelParams<Cfg> kp) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  auto& ss = *reinterpret_cast<typename Cfg::SharedStorage*>(smem_raw);
  const int warp = cutlass::canonical_warp_idx_sync();
  const bool producer = warp < 4;

  if (warp == 0 && cute::elect_one_sync()) {
    cute::prefetch_tma_descriptor(kp.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(kp.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(kp.tma_v.get_tma_descriptor());
    for (int b = 0; b < Cfg::kQStages; ++b) ss.q_full[b].init(1);
  }
  using PipelineK = typename Cfg::PipelineK;
  using PipelineV = typename Cfg::PipelineV;
  using PipelineVt = typename Cfg::PipelineVt;
  using Role = typename PipelineK::ThreadCategory;
  const bool transposer = Cfg::kTransposeV && producer && warp > 0;
  typename PipelineK::Params k_params;
  k_params.transaction_bytes = Cfg::kKVTileBytes;
  k_params.role = producer ? Role::Producer : Role::Consumer;
  k_params.is_leader = threadIdx.x == 0;
  k_params.num_consumers = Cfg::kStageConsumerThreads;
  PipelineK pipe_k(ss.pipeline_k, k_params, Shape<_1, _1, _1>{});
  // V: TMA to the MMA warpgroups, or (FP8) to the transpose warps, which
  // hand V^T on through pipe_vt.
  typename PipelineV::Params v_params = k_params;
  if constexpr (Cfg::kTransposeV) {
    v_params.role = warp == 0 ? Role::Producer : (transposer ? Role::Consumer : Role::NonParticipant);
    v_params.num_consumers = Cfg::kTransposeThreads;
  }
  PipelineV pipe_v(ss.pipeline_v, v_params, Shape<_1, _1, _1>{});
  typename PipelineVt::Params vt_params;
  using VtRole = typename PipelineVt::ThreadCategory;
  vt_params.role = transposer ? VtRole::Producer : (producer ? VtRole::NonParticipant : VtRole::Consumer);
  vt_params.producer_arv_count = Cfg::kTransposeThreads;
  vt_params.consumer_arv_count = Cfg::kStageConsumerThreads;
  PipelineVt pipe_vt(ss.pipeline_vt, vt_params);
  __syncthreads();  // barriers initialized and visible to every role

  if (producer) {
    cutlass::arch::warpgroup_reg_dealloc<Cfg::kProducerRegisters>();
    if (warp == 0) {
      Producer<Cfg>::Run(kp, ss, pipe_k, pipe_v);
    } else if constexpr (Cfg::kTransposeV) {
      VTransposer<Cfg>::Run(kp, ss, pipe_v, pipe_vt);
    }
    // Warp 1 (otherwise idle, or done transposing) waits for an owner's
    // contributions, so that neither the TMA warp nor the consumers hold
    // the wait loop.
    if (Cfg::kTailSplit && warp == 1 && kp.sched.tail.first_index != INT_MAX) {
      TailSplit<Cfg>::AwaitContributions(kp.sched.tail);
    }
  } else {
    cutlass::arch::warpgroup_reg_alloc<Cfg::kConsumerRegisters>();
    if constexpr (Cfg::kTransposeV) {
      ConsumerLoop<Cfg>(kp, ss, pipe_k, pipe_vt);
    } else {
      ConsumerLoop<Cfg>(kp, ss, pipe_k, pipe_v);
    }
  }
}

}  // namespace jax_fa3::hopper
