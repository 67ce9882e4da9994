// One consumer warpgroup's work on a tile: 64 query rows against the tile's
// visible key blocks, or under a key split every second one (see
// mainloop_fwd_sm90.hpp for the pipeline order, key_split_sm90.hpp for the
// split).
#pragma once

#include "kernels/hopper/key_split_sm90.hpp"
#include "kernels/hopper/mainloop_fwd_sm90.hpp"
#include "kernels/hopper/transpose_v_sm90.hpp"

namespace jax_fa3::hopper {

template <class Cfg>
struct ConsumerMainloop {
  using Element = typename Cfg::Element;
  using PipelineK = typename Cfg::PipelineK;
  // Where the P V wgmma's V comes from: TMA directly, or the FP8 transpose.
  using PipelineV = std::conditional_t<Cfg::kTransposeV, typename Cfg::PipelineVt, typename Cfg::PipelineV>;
  using BlockM = typename Cfg::BlockM;
  using BlockN = typename Cfg::BlockN;
  using Softmax = OnlineSoftmaxSm90<2, Cfg::kLazyRescale>;

  typename Cfg::TiledMmaQK mma_qk;
  typename Cfg::TiledMmaPV mma_pv;
  typename PipelineK::PipelineState k_state;
  typename PipelineV::PipelineState v_state;

  // Zeroes V rows past the sequence's keys in the block's stage: their P is
  // 0, but 0 * NaN (an unwritten KV-cache row behind seqused_k, or the next
  // sequence's data) would still poison the output. The warpgroups that
  // read the stage all read every V row, so all finish zeroing before any
  // multiplies (under a key split only warpgroup 1 reads the tail block).
  template <class TV>
  __device__ __forceinline__ static void ZeroVTail(TV&& sv, int first_row, int tid) {  // sv: (D, N)
    const int count = (Cfg::kBlockN - first_row) * Cfg::kHeadDim;
    for (int i = tid; i < count; i += Cfg::kStageConsumerThreads) {
      sv(i % Cfg::kHeadDim, first_row + i / Cfg::kHeadDim) = Element(0);
    }
    cutlass::arch::fence_view_async_shared();  // generic-proxy stores, read by wgmma's async proxy
    NamedBarrierSync(Cfg::kStageConsumerThreads, uint32_t(Barrier::kVTailZeroed));
  }

  // Moves both pipelines past n stages (under a key split, the other
  // warpgroup's blocks).
  __device__ __forceinline__ void Skip(int n) {
    k_state.advance(n);
    v_state.advance(n);
  }

  // Warpgroups take turns issuing their GEMMs (ping-pong), so one's softmax
  // runs while the others' GEMMs hold the tensor cores. Each warpgroup waits
  // on its own barrier before issuing and then opens the next one's (in a
  // ring); a turn barrier counts the waiter and the opener.
  static constexpr int kTurnThreads = 2 * 128;
  __device__ __forceinline__ static void WaitTurn(int warpgroup) {
    if constexpr (Cfg::kPingPong) {
      NamedBarrierSync(kTurnThreads, uint32_t(Barrier::kTurnWarpgroup0) + warpgroup);
    }
  }
  __device__ __forceinline__ static void PassTurn(int warpgroup) {
    if constexpr (Cfg::kPingPong) {
      const int next = warpgroup + 1 == Cfg::kConsumerWarpgroups ? 0 : warpgroup + 1;
      NamedBarrierArrive(kTurnThreads, uint32_t(Barrier::kTurnWarpgroup0) + next);
    }
  }

  // Once the last S = Q K^T is done, sQ may take the next tile's queries
  // while this tile's last P V and epilogue still run.
  __device__ __forceinline__ static void ReleaseQuery(int q_buffer) {
    NamedBarrierArrive(Cfg::kQueryEmptyThreads, uint32_t(Barrier::kQueryEmpty0) + q_buffer);
  }

  // P, the A operand of the P V wgmma, in registers.
  template <class TS>
  __device__ __forceinline__ static auto MakeP(const TS& tSrS) {
    if constexpr (kIsFp8<Element>) {
      return make_tensor<Element>(
          Layout<Shape<Shape<_4, _2, _2>, _1, Int<Cfg::kBlockN / 32>>>{});  // (MMA, MMA_M, MMA_K)
    } else {
      return make_tensor<Element>(AccumulatorAsA(tSrS.layout()));  // (MMA, MMA_M, MMA_K)
    }
  }
  template <class TS, class TP>
  __device__ __forceinline__ static void FillP(const TS& tSrS, TP& tOrP) {
    if constexpr (kIsFp8<Element>) {
      PackP8(tSrS, tOrP);
    } else {
      Tensor p_acc = make_tensor(tOrP.data(), tSrS.layout());  // P with the accumulator's layout
      ConvertFragment(tSrS, p_acc);
    }
  }

  // Accumulates this warpgroup's unnormalized O (cleared by the caller) and
  // the softmax statistics over the walk's key blocks, the pipelines
  // already at its first. tid: the thread's index among the warpgroups
  // that share the TiledMmas; warpgroup: its consumer warpgroup (turns).
  template <class TO>
  __device__ __forceinline__ void Run(typename Cfg::SharedStorage& ss, PipelineK& pipe_k, PipelineV& pipe_v,
                                      const ConsumerTile& ct, const KeyWalk& walk, int q_buffer,
                                      Softmax& softmax, TO& tOrO, int tid, int warpgroup) {
    constexpr int kStep = KeySplit<Cfg>::kStep;
    // To this warpgroup's next block.
    auto step = [](auto& state) {
      if constexpr (kStep == 1) {
        ++state;
      } else {
        state.advance(kStep);
      }
    };
    auto thr_qk = mma_qk.get_thread_slice(tid);
    auto thr_pv = mma_pv.get_thread_slice(tid);
    Tensor sQ = make_tensor(make_smem_ptr(ss.q_buffer(q_buffer)), typename Cfg::SmemLayoutQ{});  // (M, D)
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Cfg::SmemLayoutK{});    // (N, D, stages)
    Tensor sVt = make_tensor(make_smem_ptr(ss.v_mma()), typename Cfg::SmemLayoutVt{});  // (D, N or more, stages)
    Tensor tSrQ = thr_qk.partition_fragment_A(sQ);                         // (MMA, MMA_M, MMA_K)
    Tensor tSrK = thr_qk.partition_fragment_B(sK);                         // (MMA, MMA_N, MMA_K, stages)
    Tensor tOrV = thr_pv.partition_fragment_B(sVt);                        // (MMA, MMA_N, MMA_K, stages)
    Tensor tSrS = partition_fragment_C(mma_qk, Shape<BlockM, BlockN>{});  // (MMA, MMA_M, MMA_N)
    Tensor tOrP = MakeP(tSrS);                                             // (MMA, MMA_M, MMA_K)
    Tensor s_rc = make_tensor(tSrS.data(), RowColLayout(tSrS.layout()));   // (rows, cols)
    Tensor o_rc = make_tensor(tOrO.data(), RowColLayout(tOrO.layout()));   // (rows, cols)
    Tensor cS = thr_qk.partition_C(make_identity_tensor(Shape<BlockM, BlockN>{}));  // (MMA, MMA_M, MMA_N)
    Tensor c_rc = make_tensor(cS.data(), RowColLayout(cS.layout()));                // (rows, cols)

    float correction[2];
    bool moved = false;  // any correction differs from 1
    auto softmax_step = [&](int n) {
      const int n0 = n * Cfg::kBlockN;
      if (ct.scale.cap_inverse != 0.f) ApplySoftcap(s_rc, ct.scale);
      if (ct.scale.negate) NegateScores(s_rc);
      if (!ct.mask.AllVisible(ct.wg_row0, ct.wg_row0 + Cfg::kRowsPerWarpgroup, n0, n0 + Cfg::kBlockN)) {
        ApplyMask(s_rc, c_rc, ct.mask, ct.m0, n0);
      }
      moved = softmax.Update(s_rc, ct.scale.scale_log2, correction);
    };

    // Issue S = Q K^T for the next key block (K consumed in order).
    auto issue_qk = [&] {
      pipe_k.consumer_wait(k_state);
      WaitTurn(warpgroup);
      Gemm<true, -1>(mma_qk, tSrQ, tSrK(_, _, _, k_state.index()), tSrS);
    };
    auto issue_pv = [&] { Gemm<false, -1>(mma_pv, tOrP, tOrV(_, _, _, v_state.index()), tOrO); };
    // After S of key block n landed in registers.
    auto release_k = [&](int n) {
      warpgroup_fence_operand(tSrS);
      pipe_k.consumer_release(k_state);
      step(k_state);
      if (n == walk.last) ReleaseQuery(q_buffer);
    };
    auto release_v = [&] {
      warpgroup_fence_operand(tOrO);
      pipe_v.consumer_release(v_state);
      step(v_state);
    };
    auto wait_v = [&](bool first) {
      pipe_v.consumer_wait(v_state);
      if constexpr (!Cfg::kTransposeV) {  // the FP8 transpose zeroes the tail itself
        if (first && ct.v_tail_row >= 0) ZeroVTail(sVt(_, _, v_state.index()), ct.v_tail_row, tid);
      }
    };

    // The tile's first visited block is its partial one (VTailRow).
    const int n_tail = ct.blocks.hi - 1;
    const int n_last = Cfg::kSplitKeys ? walk.first : n_tail;
    if constexpr (!Cfg::kIntraWarpgroupOverlap) {
      for (int n = n_last; n >= walk.last; n -= kStep) {
        issue_qk();
        PassTurn(warpgroup);
        warpgroup_wait<0>();
        release_k(n);
        softmax_step(n);
        Softmax::Rescale(o_rc, correction, moved);
        FillP(tSrS, tOrP);
        wait_v(n == n_tail);
        WaitTurn(warpgroup);
        issue_pv();
        PassTurn(warpgroup);
        warpgroup_wait<0>();
        release_v();
      }
      return;
    }
    issue_qk();
    PassTurn(warpgroup);
    warpgroup_wait<0>();
    release_k(n_last);
    softmax_step(n_last);  // O is still zero: the correction is moot
    FillP(tSrS, tOrP);
    wait_v(n_last == n_tail);
    for (int n = n_last; n > walk.last; n -= kStep) {
      issue_qk();
      issue_pv();
      PassTurn(warpgroup);
      warpgroup_wait<1>();  // S(n - kStep) is ready; P(n) V(n) may still run
      release_k(n - kStep);
      softmax_step(n - kStep);
      warpgroup_wait<0>();
      release_v();
      Softmax::Rescale(o_rc, correction, moved);
      FillP(tSrS, tOrP);
      wait_v(false);
    }
    WaitTurn(warpgroup);
    issue_pv();
    PassTurn(warpgroup);
    warpgroup_wait<0>();
    release_v();
  }
};

}  // namespace jax_fa3::hopper
