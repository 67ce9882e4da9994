// The two halves of the Hopper mainloop: the producer's TMA loads and the
// consumers' wgmma + online-softmax loop over the visible key blocks.
//
// Key blocks are visited from the last one down (the partial, masked block
// first), K and V in separate pipelines so K(n-1) can land while V(n) is
// still being read. Each consumer step issues S(n-1) = Q K(n-1)^T and then
// O += P(n) V(n) without waiting, so the softmax of S(n-1) runs on the CUDA
// cores while the tensor cores finish P(n) V(n).
#pragma once

#include "kernels/hopper/tile_config.h"  // first: cute/tensor.hpp before any cute atom header
#include "cute/atom/copy_traits_sm90_tma.hpp"
#include "cutlass/numeric_conversion.h"
#include "kernels/hopper/softmax.hpp"
#include "kernels/hopper/tile_scheduler.hpp"

namespace jax_fa3::hopper {

// Global tensors as TMA addresses them: (seqlen, d, head, batch).
using ShapeQKV = Shape<int32_t, int32_t, int32_t, int32_t>;
using StrideQK = Stride<int64_t, _1, int64_t, int64_t>;

// How V is seen by its TMA: 16-bit V is addressed transposed, (d, seqlen,
// head, batch), and lands as V^T; FP8 V lands as it is, (seqlen, d, ...),
// for the transpose warps.
template <class Cfg, bool kTranspose = Cfg::kTransposeV>
struct VGlobal {
  using Stride = cute::Stride<_1, int64_t, int64_t, int64_t>;
  using Tile = Shape<typename Cfg::HeadDim, typename Cfg::BlockN>;
  __host__ __device__ static ShapeQKV MakeShape(int seqlen, int d, int heads, int batch) {
    return make_shape(d, seqlen, heads, batch);
  }
  __host__ static Stride MakeStride(const TensorStrides& s, int64_t batch_stride) {
    return make_stride(_1{}, s.row, s.head, batch_stride);
  }
  template <class TV>
  __device__ static auto Tiles(const TV& mv, int k_start) {  // (D, N, key blocks)
    return local_tile(domain_offset(make_coord(_0{}, k_start), mv), Tile{}, make_coord(_0{}, _));
  }
};
template <class Cfg>
struct VGlobal<Cfg, true> {
  using Stride = StrideQK;
  using Tile = Shape<typename Cfg::BlockN, typename Cfg::HeadDim>;
  __host__ __device__ static ShapeQKV MakeShape(int seqlen, int d, int heads, int batch) {
    return make_shape(seqlen, d, heads, batch);
  }
  __host__ static Stride MakeStride(const TensorStrides& s, int64_t batch_stride) {
    return make_stride(s.row, _1{}, s.head, batch_stride);
  }
  template <class TV>
  __device__ static auto Tiles(const TV& mv, int k_start) {  // (N, D, key blocks)
    return local_tile(domain_offset(make_coord(k_start, _0{}), mv), Tile{}, make_coord(_, _0{}));
  }
};

template <class Cfg>
struct TmaTypes {
  using E = typename Cfg::Element;
  template <class Stride>
  using GTensor = decltype(make_tensor(make_gmem_ptr(static_cast<const E*>(nullptr)), ShapeQKV{}, Stride{}));
  using Q = decltype(make_tma_copy(SM90_TMA_LOAD{}, GTensor<StrideQK>{}, typename Cfg::SmemLayoutQ{},
                                   Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{}, _1{}));
  using K = decltype(make_tma_copy(SM90_TMA_LOAD{}, GTensor<StrideQK>{}, take<0, 2>(typename Cfg::SmemLayoutK{}),
                                   Shape<typename Cfg::BlockN, typename Cfg::HeadDim>{}, _1{}));
  using V = decltype(make_tma_copy(SM90_TMA_LOAD{}, GTensor<typename VGlobal<Cfg>::Stride>{},
                                   take<0, 2>(typename Cfg::SmemLayoutVLoad{}), typename VGlobal<Cfg>::Tile{}, _1{}));
  using GTensorO =
      decltype(make_tensor(make_gmem_ptr(static_cast<typename Cfg::ElementOut*>(nullptr)), ShapeQKV{}, StrideQK{}));
  using O = decltype(make_tma_copy(SM90_TMA_STORE{}, GTensorO{}, typename Cfg::SmemLayoutOWarpgroup{},
                                   Shape<Int<Cfg::kRowsPerWarpgroup>, typename Cfg::HeadDim>{}, _1{}));
};

template <class Cfg>
struct KernelParams {
  AttentionParams p;
  SchedulerParams sched;
  typename TmaTypes<Cfg>::Q tma_q;
  typename TmaTypes<Cfg>::K tma_k;
  typename TmaTypes<Cfg>::V tma_v;
  typename TmaTypes<Cfg>::O tma_o;
  bool o_tma = false;  // out's address and strides allow TMA stores
  ShapeQKV shape_q;   // (seqlen_q, d, heads, batch); also out's
  ShapeQKV shape_k;   // (seqlen_k, d, heads_k, batch)
  ShapeQKV shape_v;   // VGlobal's view of V
};

// Key blocks [lo, hi) that some row of the tile may see; empty when none.
struct KeyBlocks {
  int lo = 0;
  int hi = 0;
  __device__ bool empty() const { return lo >= hi; }
};

template <class Cfg>
__device__ __forceinline__ KeyBlocks VisibleKeyBlocks(const AttentionParams& p, const TileInfo& t) {
  const Mask mask{t.seq.seqlen_q, t.seq.seqlen_k, p.window_left, p.window_right};
  const int m0 = t.m_block * Cfg::kBlockM;
  int lo, hi;
  mask.KeyRange(m0, min(m0 + Cfg::kBlockM, t.seq.seqlen_q), &lo, &hi);
  if (lo >= hi) return {};
  return {lo / Cfg::kBlockN, (hi + Cfg::kBlockN - 1) / Cfg::kBlockN};
}

// The key blocks the CTA visits of its index-th tile: the visible ones, or
// of a tail piece (TailSplitParams) its run of them.
template <class Cfg>
__device__ __forceinline__ KeyBlocks TileKeyBlocks(const KernelParams<Cfg>& kp, const TileInfo& t, int index) {
  const KeyBlocks visible = VisibleKeyBlocks<Cfg>(kp.p, t);
  if (!Cfg::kTailSplit || index < kp.sched.tail.first_index) return visible;
  const TailPiece piece = TailPieceOf(kp.sched.tail, index - kp.sched.tail.first_index);
  return {max(visible.lo, piece.lo), min(visible.hi, piece.hi)};
}

// First V row of the tile's first visited key block to zero, or -1. Dense
// K/V past seqlen_k are zero-filled by TMA; varlen and seqused_k tails are
// real memory (the next sequence, an unwritten cache).
template <class Cfg>
__device__ __forceinline__ int VTailRow(const AttentionParams& p, const TileInfo& t, const KeyBlocks& kb) {
  const int tail_keys = t.seq.seqlen_k - (kb.hi - 1) * Cfg::kBlockN;
  return (p.is_varlen() || p.seqused_k != nullptr) && tail_keys < Cfg::kBlockN ? tail_keys : -1;
}

// One warp; lane 0 issues every TMA and drives the pipelines. With two Q
// buffers the next tile's Q lands while this tile's keys stream, instead of
// queuing behind them.
template <class Cfg>
struct Producer {
  using PipelineK = typename Cfg::PipelineK;
  using PipelineV = typename Cfg::PipelineV;

  // A published tile, for its K/V loads.
  struct Pending {
    TileInfo tile;
    KeyBlocks blocks;
  };

  // Decodes the CTA's tile number `index`, waits for its Q buffer, publishes
  // it in work[] and loads its Q (the end of the walk is published too).
  __device__ __forceinline__ static Pending Publish(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                                    TileScheduler<Cfg::kBlockM>& scheduler, int index, bool leader) {
    const bool tail = Cfg::kTailSplit && index >= kp.sched.tail.first_index;
    const int t = tail ? TailTile(kp.sched.tail, index, kp.sched.num_tiles) : scheduler.NextTile(index);
    const TileInfo tile = t < kp.sched.num_tiles ? scheduler.Decode(t) : TileInfo{};
    // Q buffer b and work[b] hold an earlier tile until the consumers say so.
    const int q_buffer = index % Cfg::kQStages;
    if (index >= Cfg::kQStages) {
      NamedBarrierSync(Cfg::kQueryEmptyThreads, uint32_t(Barrier::kQueryEmpty0) + q_buffer);
    }
    const KeyBlocks kb = tile.valid ? TileKeyBlocks<Cfg>(kp, tile, index) : KeyBlocks{};
    if (kb.empty()) {  // the end, or a tile whose consumers write zeros without Q, K or V
      if (leader) {
        ss.work[q_buffer] = TileWork{tile};
        ss.q_full[q_buffer].arrive();
      }
      return {tile, kb};
    }
    Tensor sQ = make_tensor(make_smem_ptr(ss.q_buffer(q_buffer)), typename Cfg::SmemLayoutQ{});  // (M, D)
    Tensor mQ = kp.tma_q.get_tma_tensor(kp.shape_q);  // (seqlen_q, d, heads, batch)
    const int b = kp.p.is_varlen() ? 0 : tile.batch;
    Tensor gQ = local_tile(domain_offset(make_coord(tile.seq.q_start, _0{}), mQ(_, _, tile.head, b)),
                           Shape<typename Cfg::BlockM, typename Cfg::HeadDim>{},
                           make_coord(tile.m_block, _0{}));  // (M, D)
    auto [tQg, tQs] = tma_partition(kp.tma_q, _0{}, Layout<_1>{}, group_modes<0, 2>(sQ),
                                    group_modes<0, 2>(gQ));  // (TMA), (TMA)
    if (leader) {
      using BarrierWord = cutlass::arch::ClusterTransactionBarrier::ValueType;
      const int kv_head = kp.sched.head_group.Div(tile.head);
      ss.work[q_buffer] = TileWork{tile, DescaleAt(kp.p.q_descale, tile.batch, kv_head) *
                                             DescaleAt(kp.p.k_descale, tile.batch, kv_head),
                                   DescaleAt(kp.p.v_descale, tile.batch, kv_head)};
      ss.q_full[q_buffer].arrive_and_expect_tx(Cfg::kQBytes);
      copy(kp.tma_q.with(reinterpret_cast<BarrierWord&>(ss.q_full[q_buffer]), 0), tQg, tQs);
    }
    return {tile, kb};
  }

  // The tile's K and V blocks, last first, into the stage rings.
  template <class KState, class VState>
  __device__ __forceinline__ static void LoadKV(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                                PipelineK& pipe_k, PipelineV& pipe_v, KState& k_state,
                                                VState& v_state, const Pending& work, bool leader) {
    if (work.blocks.empty()) return;
    const TileInfo& tile = work.tile;
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Cfg::SmemLayoutK{});      // (N, D, stages)
    Tensor sV = make_tensor(make_smem_ptr(ss.v.data()), typename Cfg::SmemLayoutVLoad{});  // VGlobal tile, stages
    Tensor mK = kp.tma_k.get_tma_tensor(kp.shape_k);  // (seqlen_k, d, heads_k, batch)
    Tensor mV = kp.tma_v.get_tma_tensor(kp.shape_v);  // VGlobal view
    const int b = kp.p.is_varlen() ? 0 : tile.batch;
    const int kv_head = kp.sched.head_group.Div(tile.head);
    Tensor gK = local_tile(domain_offset(make_coord(tile.seq.k_start, _0{}), mK(_, _, kv_head, b)),
                           Shape<typename Cfg::BlockN, typename Cfg::HeadDim>{},
                           make_coord(_, _0{}));                                 // (N, D, key blocks)
    Tensor gV = VGlobal<Cfg>::Tiles(mV(_, _, kv_head, b), tile.seq.k_start);  // (tile, key blocks)
    auto [tKg, tKs] = tma_partition(kp.tma_k, _0{}, Layout<_1>{}, group_modes<0, 2>(sK),
                                    group_modes<0, 2>(gK));  // (TMA, key blocks), (TMA, stages)
    auto [tVg, tVs] = tma_partition(kp.tma_v, _0{}, Layout<_1>{}, group_modes<0, 2>(sV),
                                    group_modes<0, 2>(gV));  // (TMA, key blocks), (TMA, stages)
    if (leader) {
      for (int n = work.blocks.hi - 1; n >= work.blocks.lo; --n) {
        pipe_k.producer_acquire(k_state);
        copy(kp.tma_k.with(*pipe_k.producer_get_barrier(k_state), 0), tKg(_, n), tKs(_, k_state.index()));
        ++k_state;
        pipe_v.producer_acquire(v_state);
        copy(kp.tma_v.with(*pipe_v.producer_get_barrier(v_state), 0), tVg(_, n), tVs(_, v_state.index()));
        ++v_state;
      }
    }
    __syncwarp();
  }

  __device__ __forceinline__ static void Run(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                             PipelineK& pipe_k, PipelineV& pipe_v) {
    const bool leader = threadIdx.x % 32 == 0;
    auto k_state = cutlass::make_producer_start_state<PipelineK>();
    auto v_state = cutlass::make_producer_start_state<PipelineV>();
    TileScheduler<Cfg::kBlockM> scheduler{kp.p, kp.sched};
    if constexpr (Cfg::kBalanceVarlen) scheduler.BalanceVarlen();
    // The next tile is published once this one's K/V loads are issued, not
    // before them: with two Q buffers its buffer is free only after the
    // previous tile's last Q K^T, and waiting for that held this tile's
    // first K/V back (s512 and seed 2 2-5% slower, FP8 s512 1.5%;
    // bench/NOTES.md, v38); a dynamic order claimed early also lost most of
    // its balance (b1 h8 s8192: as uneven as the static order). Published
    // this late, the next tile's Q still lands before its K/V are needed:
    // the stage rings hold this tile's last blocks in between.
    Pending next = Publish(kp, ss, scheduler, 0, leader);
    for (int index = 0; next.tile.valid; ++index) {
      LoadKV(kp, ss, pipe_k, pipe_v, k_state, v_state, next, leader);
      next = Publish(kp, ss, scheduler, index + 1, leader);
    }
    // The CTA must not exit while its TMA writes are in flight.
    if (leader) {
      pipe_k.producer_tail(k_state);
      pipe_v.producer_tail(v_state);
    }
  }
};

// Issues one wgmma batch over all k-blocks: C (+)= A B. kWait < 0 leaves it
// in flight (the caller waits with warpgroup_wait).
template <bool kZeroInit, int kWait, class Mma, class TA, class TB, class TC>
__device__ __forceinline__ void Gemm(Mma& mma, TA& a, const TB& b, TC& c) {
  // A is either shared-memory descriptors (SS) or registers (RS).
  constexpr bool kRegisterA = !is_same_v<typename TA::iterator, GMMA::DescriptorIterator>;
  if constexpr (kRegisterA) warpgroup_fence_operand(a);
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  if constexpr (kZeroInit) mma.accumulate_ = GMMA::ScaleOut::Zero;
  // Compile-time k: a register A fragment indexed at run time would live in
  // local memory (nvcc stops unrolling these large bodies past ~8 steps).
  cute::for_each(make_int_sequence<decltype(size<2>(a))::value>{}, [&](auto k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  });
  warpgroup_commit_batch();
  if constexpr (kWait >= 0) warpgroup_wait<kWait>();
  warpgroup_fence_operand(c);
  if constexpr (kRegisterA) warpgroup_fence_operand(a);
}

// Element-wise conversion of register fragments, two values at a time (one
// packed cvt). Static indices keep both fragments in registers.
template <class TSrc, class TDst>
__device__ __forceinline__ void ConvertFragment(const TSrc& src, TDst& dst) {
  using From = typename TSrc::value_type;
  using To = typename TDst::value_type;
  cutlass::NumericArrayConverter<To, From, 2> convert;
#pragma unroll
  for (int i = 0; i < size(src); i += 2) {
    cutlass::Array<From, 2> in;
    in[0] = src(i);
    in[1] = src(i + 1);
    const cutlass::Array<To, 2> out = convert(in);
    dst(i) = out[0];
    dst(i + 1) = out[1];
  }
}

// What one consumer warpgroup needs to know about the current tile.
struct ConsumerTile {
  Mask mask;
  ScoreScale scale;
  KeyBlocks blocks;
  int m0;           // first row of the CTA tile
  int wg_row0;      // first row of this warpgroup's 64
  int v_tail_row;   // V rows >= this in the first (last) key block must be zeroed; -1: none
};

}  // namespace jax_fa3::hopper
