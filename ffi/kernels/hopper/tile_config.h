// Tile shapes, shared-memory layouts and MMAs of the Hopper forward kernel.
//
// A CTA owns kBlockM query rows of one head: one or two consumer
// warpgroups of 64 rows each (TileShape), or under a key split two on the
// same 64 rows, plus one producer warpgroup that issues the TMA loads. K and V stream through kStages-deep shared-memory
// pipelines.
#pragma once

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "The Hopper kernels need sm_90a (wgmma, setmaxnreg); build them for 90a-real only"
#endif

// Key tiles of 80 and 176 use wgmma's N = 80 / 176 shapes.
#if !defined(CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED)
#error "define CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED for the Hopper kernels (CMake does)"
#endif

#include "cute/tensor.hpp"
#include "cutlass/arch/barrier.h"
#include "cutlass/gemm/collective/builders/sm90_common.inl"
#include "cutlass/pipeline/sm90_pipeline.hpp"
#include "kernels/hopper/tile_scheduler.hpp"
#include "kernels/launch_fwd.h"

namespace jax_fa3::hopper {

using namespace cute;

// Consumer warpgroups (64 query rows each), key-tile width and pipeline
// depth per head-dim bucket. Wider key tiles amortize the softmax's per-row
// work; the limit is the consumers' registers (S, P and O fragments) and
// 227 KB of shared memory per SM, shared by two CTAs for TileShape::kShort.
// Three consumer warpgroups (160 registers per thread instead of 240) fit
// only narrower key tiles and measured slower for head dim 64 and FP8
// (bench/NOTES.md, v20). FP8 tiles are multiples of 32 keys (the K of an
// FP8 wgmma). Query buffers: with two, the next tile's Q loads during this
// one (short sequences are otherwise bound by that latency); tilings short
// of shared memory keep one.
template <int kHeadDim, int kElemBytes, TileShape kTile>
struct BlockTiling;
template <int kElemBytes>
struct BlockTiling<64, kElemBytes, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 192;
  static constexpr int kStages = 3;  // 16-bit: 160 KB
  static constexpr int kQStages = 2;
};
template <int kElemBytes>
struct BlockTiling<128, kElemBytes, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;  // 16-bit: 160 KB
  static constexpr int kQStages = 2;
};
// 16-bit only (FP8 runs head dims 65-128 and 129-256 in the 128 and 256
// buckets). Head dim 96: the 16-bit long tile's 176 keys fit beside O's 48
// registers and both Q buffers.
template <>
struct BlockTiling<96, 2, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 176;
  static constexpr int kStages = 2;  // 180 KB, + O's 24 KB
  static constexpr int kQStages = 2;
};
// Head dim 192: FlashAttention-3's 112 keys; O leaves from registers.
template <>
struct BlockTiling<192, 2, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 112;
  static constexpr int kStages = 2;  // 216 KB
  static constexpr int kQStages = 1;
};
template <>
struct BlockTiling<256, 2, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 80;
  static constexpr int kStages = 2;  // 224 KB
  static constexpr int kQStages = 1;
};
template <>
struct BlockTiling<256, 1, TileShape::kMedium> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;  // 128 KB with the V^T buffers, 192 KB with O's
  static constexpr int kQStages = 1;
};
// Long sequences. 16-bit: 176 keys with one Q buffer (a tile of 8192 keys
// is 47 key blocks, so loading its Q ahead hardly counts), and no room
// left for the shared-memory epilogue (bench/NOTES.md, v18, v35).
template <>
struct BlockTiling<128, 2, TileShape::kLong> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 176;
  static constexpr int kStages = 2;  // 208 KB with one Q buffer
  static constexpr int kQStages = 1;
};
// FP8: 224 keys (FA3's FP8 choice; e4m3 P takes half the registers of
// 16-bit P). Its 200 KB leave no room for O's buffer either; still s8192
// 839 -> 895 TFLOP/s against 192 keys with the buffer (bench/NOTES.md, v34).
template <>
struct BlockTiling<128, 1, TileShape::kLong> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 224;
  static constexpr int kStages = 2;  // 200 KB with the V^T buffers: O leaves from registers
  static constexpr int kQStages = 2;
};
// Short sequences have few keys per block, too.
template <int kElemBytes>
struct BlockTiling<128, kElemBytes, TileShape::kShort> {
  static constexpr int kConsumerWarpgroups = 1;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;  // 16-bit: 96 KB; FP8 with the V^T buffers: 64 KB
  static constexpr int kQStages = 2;
};
// The short tile's rows with its key blocks dealt alternately to two
// warpgroups (KeySplit): four stages keep two blocks in flight for each.
template <>
struct BlockTiling<128, 2, TileShape::kSplitKeys> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 4;  // 128 KB, + Q 32 KB, O 16 KB, the merge buffer 34 KB
  static constexpr int kQStages = 2;
};

// FP8 wgmma reads both operands K-major, but V arrives with keys as rows
// (MN-major for P V). The producer warpgroup's spare warps transpose each
// V tile into a second buffer; 16-bit V is read transposed by the MMA.
template <class Element, int kHeadDim, int kBlockN, int kStages>
struct VLayouts {
  static constexpr bool kTranspose = false;
  // V^T: the same bytes as a K-major (keys, d) tile, addressed (d, keys).
  using Mma = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::MN, Element, Int<kHeadDim>, Int<kBlockN>>(),
      Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{}, Step<_2, _1, _3>{}));
  using Load = Mma;  // TMA writes V^T directly (global V viewed as (d, keys))
  static constexpr int kMmaSmemElems = 0;
};
// V^T is a (d, keys) tile of the same swizzle family (SwizzledTile in
// transpose_v_sm90.hpp addresses both).
template <int kHeadDim, int kBlockN, int kStages>
struct VLayouts<cutlass::float_e4m3_t, kHeadDim, kBlockN, kStages> {
  using Element = cutlass::float_e4m3_t;
  static constexpr bool kTranspose = true;
  using Mma = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, Int<kHeadDim>, Int<kBlockN>>(),
      Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{}));
  using Load = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, Int<kBlockN>, Int<kHeadDim>>(),
      Shape<Int<kBlockN>, Int<kHeadDim>, Int<kStages>>{}));
  static constexpr int kMmaSmemElems = cosize_v<Mma>;
};

template <class Element_, class ElementOut_, int kHeadDim_, TileShape kTile = TileShape::kMedium>
struct TileConfig {
  using Element = Element_;
  using ElementOut = ElementOut_;
  static constexpr int kHeadDim = kHeadDim_;
  using Tiling = BlockTiling<kHeadDim, sizeof(Element), kTile>;
  static constexpr int kConsumerWarpgroups = Tiling::kConsumerWarpgroups;
  // Three warpgroups (192 rows, 160 registers each) measured slower for
  // every shape tried (bench/NOTES.md, v20).
  static_assert(kConsumerWarpgroups == 1 || kConsumerWarpgroups == 2);
  static constexpr int kCtasPerSm = kConsumerWarpgroups == 1 ? 2 : 1;
  // Both warpgroups on the same rows, each on half of the key blocks.
  static constexpr bool kSplitKeys = kTile == TileShape::kSplitKeys;
  // Warpgroups side by side along M in the TiledMmas; they (their
  // kStageConsumerThreads) read and release each K/V stage.
  static constexpr int kMmaWarpgroups = kSplitKeys ? 1 : kConsumerWarpgroups;
  // A persistent grid of one CTA per SM whose last round of tiles can be cut
  // into runs of key blocks (tail_split_sm90.hpp). The shapes of two CTAs
  // per SM and the key split serve problems of about one wave.
  static constexpr bool kTailSplit = kCtasPerSm == 1 && !kSplitKeys;
  static constexpr int kRowsPerWarpgroup = 64;  // the M of one wgmma
  static constexpr int kBlockM = kRowsPerWarpgroup * kMmaWarpgroups;
  static constexpr int kBlockN = Tiling::kBlockN;
  static constexpr int kStages = Tiling::kStages;
  static constexpr int kConsumerThreads = 128 * kConsumerWarpgroups;
  static constexpr int kStageConsumerThreads = 128 * kMmaWarpgroups;
  static constexpr int kThreads = kConsumerThreads + 128;

  using VLayout = VLayouts<Element, kHeadDim, kBlockN, kStages>;
  static constexpr bool kTransposeV = VLayout::kTranspose;
  // Varlen tiles dealt to the fewest CTAs that need no more rounds
  // (TileScheduler::BalanceVarlen). Measured on seed 1's geometry (1344
  // one-block tiles on 264 CTAs): FP8 24.1 -> 23.2 µs, but f16 34.5 -> 35.3,
  // so 16-bit calls keep dealing tiles to the whole grid (bench/NOTES.md,
  // v43).
  static constexpr bool kBalanceVarlen = std::is_same_v<Element, cutlass::float_e4m3_t>;
  // Producer warp 0 issues TMA; warps 1-3 transpose FP8 V.
  static constexpr int kTransposeThreads = 96;
  // Who meet at a Q buffer's kQueryEmpty barrier before the producer reuses
  // it and its work[] slot: the producer warp, the consumers (done with Q)
  // and the transpose warps (done reading work[]).
  static constexpr int kQueryEmptyThreads = 32 + kConsumerThreads + (kTransposeV ? kTransposeThreads : 0);
  // setmaxnreg budgets. setmaxnreg.inc draws only on the registers the CTA
  // was launched with (kThreads x the launch bound's per-thread count), so
  // the producer warpgroup's and the consumers' budgets must fit in that;
  // the consumers take the rest in multiples of 8 (setmaxnreg's
  // granularity), at most 240. The FP8 transpose runs in 40 registers
  // without local memory beside two consumer warpgroups; beside one (the
  // short tile, two CTAs per SM) it takes 48, as the tile loop it follows
  // spilled 16 bytes at 40. The 16-bit producer takes 24 (no local
  // memory since it stopped splitting its loads around the next tile's
  // publication). Consumers: two warpgroups 240 (FP8 232); one 232 (FP8
  // 208).
  static constexpr int kLaunchRegisters = 65536 / kCtasPerSm / kThreads / 8 * 8;
  static constexpr int kProducerRegisters =
      !kTransposeV ? 24 : (kConsumerWarpgroups == 1 ? 48 : 40);
  static constexpr int kConsumerRegisters = cute::min(
      240, (kLaunchRegisters * kThreads - 128 * kProducerRegisters) / kConsumerThreads / 8 * 8);
  static_assert(128 * kProducerRegisters + kConsumerThreads * kConsumerRegisters <= kLaunchRegisters * kThreads);
  // Warpgroups alternate their GEMM issue (see ConsumerMainloop::WaitTurn).
  // Not under a key split: with warpgroup 0 padding its turns where a
  // tile's block count is odd, the strict alternation tied each 64-key step
  // to the other warpgroup's and warpgroup 1's next tile to warpgroup 0's
  // merge and epilogue (seed 2 13.5 -> 15.5 µs, causal b1 h8 s2048 25.8 ->
  // 31.6; bench/NOTES.md, v47).
  static constexpr bool kPingPong = kConsumerWarpgroups > 1 && !kSplitKeys;
  // Softmax of S(n-1) overlaps P(n) V(n) in the same warpgroup, which keeps
  // S and P live together. 16-bit head dim 256 fits them beside O's 128
  // registers (80 keys: s8192 3187 -> 2862 us, causal -9%); FP8 head dim 256
  // measured 13% slower with it (bench/NOTES.md, v52).
  static constexpr bool kIntraWarpgroupOverlap = sizeof(Element) == 2 || kHeadDim <= 128;
  // FlashAttention-4's conditional O rescale (OnlineSoftmaxSm90) pays where
  // the rescale runs on its own and outweighs the exponentials (FP8 head dim
  // 256: 128 O values per thread against 32 scores; +12%, v22);
  // inside the intra-warpgroup overlap its branch measured 2-6% slower
  // (bench/NOTES.md, v22).
  static constexpr bool kLazyRescale = !kIntraWarpgroupOverlap;
  static constexpr int kQStages = Tiling::kQStages;

  using BlockM = Int<kBlockM>;
  using BlockN = Int<kBlockN>;
  using HeadDim = Int<kHeadDim>;
  using Stages = Int<kStages>;

  using WarpgroupLayout = Layout<Shape<Int<kMmaWarpgroups>, _1, _1>>;
  // S = Q K^T: both operands K-major in shared memory.
  using TiledMmaQK = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<Int<kRowsPerWarpgroup>, BlockN, HeadDim>>(),
      WarpgroupLayout{}));
  // O += P V: P from registers.
  using TiledMmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<Int<kRowsPerWarpgroup>, HeadDim, BlockN>,
                           GMMA::Major::K, kTransposeV ? GMMA::Major::K : GMMA::Major::MN>(),
      WarpgroupLayout{}));

  using SmemLayoutQ = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BlockM, HeadDim>(),
      Shape<BlockM, HeadDim>{}));
  using SmemLayoutK = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BlockN, HeadDim>(),
      Shape<BlockN, HeadDim, Stages>{}));
  using SmemLayoutVLoad = typename VLayout::Load;  // what TMA writes
  using SmemLayoutVt = typename VLayout::Mma;      // what the P V wgmma reads, (D, N or more, stages)
  // One warpgroup's O tile, what its TMA store reads; the CTA's tile stacks
  // the warpgroups' along M.
  using SmemLayoutOWarpgroup = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, ElementOut, Int<kRowsPerWarpgroup>,
                                                          HeadDim>(),
      Shape<Int<kRowsPerWarpgroup>, HeadDim>{}));
  using SmemLayoutO = decltype(tile_to_shape(SmemLayoutOWarpgroup{}, Shape<BlockM, HeadDim>{}));

  // sm_90: 228 KB per SM, 1 KB of it reserved per CTA, at most 227 KB per CTA.
  static constexpr int kSmemBudget = 228 * 1024 / kCtasPerSm - 1024;
  static constexpr int kPipelineSmemBytes =
      (cosize_v<SmemLayoutQ> * kQStages + cosize_v<SmemLayoutK> + cosize_v<SmemLayoutVLoad> +
       VLayout::kMmaSmemElems) * int(sizeof(Element));
  // Under a key split: one warpgroup's O fragment and its rows' softmax
  // statistics (KeySplit), 16 bytes per thread at a time.
  static constexpr int kMergeVectors = kSplitKeys ? (kRowsPerWarpgroup * kHeadDim / 128 + 4) / 4 : 0;
  static constexpr int kMergeSmemBytes = kMergeVectors * 128 * 16;
  // Barriers and TileWork; SharedStorage rounds up to its 1 KB alignment.
  static constexpr int kBarrierSmemBytes = 1024;
  // O leaves through shared memory (a TMA store, or beside one consumer
  // warpgroup 16-byte row stores where a varlen tile ends inside the next
  // sequence; the warpgroup moves on while they drain) where there is room:
  // not at head dim 256.
  static constexpr bool kSmemEpilogue = kPipelineSmemBytes + kMergeSmemBytes +
                                             cosize_v<SmemLayoutO> * int(sizeof(ElementOut)) + kBarrierSmemBytes <=
                                         kSmemBudget;

  using PipelineK = cutlass::PipelineTmaAsync<kStages>;
  using PipelineV = cutlass::PipelineTmaAsync<kStages>;
  // FP8: transposed V, from the transpose warps to the MMA warpgroups.
  using PipelineVt = cutlass::PipelineAsync<kStages>;

  struct SharedStorage {
    cute::array_aligned<Element, cosize_v<SmemLayoutQ> * kQStages, 1024> q;
    cute::array_aligned<Element, cosize_v<SmemLayoutK>, 1024> k;
    cute::array_aligned<Element, cosize_v<SmemLayoutVLoad>, 1024> v;
    // An unused buffer is one element with 16-byte alignment, and V^T comes
    // last, so that neither costs a 1 KB alignment gap: the 16-bit short
    // tile's O buffer fits only so.
    cute::array_aligned<ElementOut, kSmemEpilogue ? cosize_v<SmemLayoutO> : 1, kSmemEpilogue ? 1024 : 16> o;
    cute::array_aligned<Element, kTransposeV ? VLayout::kMmaSmemElems : 1, kTransposeV ? 1024 : 16> vt;
    // q_full[b] completes when buffer b's tile is published in work[b] and,
    // for a tile with visible keys, its Q has landed.
    cutlass::arch::ClusterTransactionBarrier q_full[kQStages];
    TileWork work[kQStages];
    typename PipelineK::SharedStorage pipeline_k;
    typename PipelineV::SharedStorage pipeline_v;
    typename PipelineVt::SharedStorage pipeline_vt;
    // Last, so that the other members' offsets do not depend on it.
    cute::array_aligned<float4, kSplitKeys ? kMergeVectors * 128 : 1, 16> merge;

    __device__ Element* q_buffer(int b) { return q.data() + b * cosize_v<SmemLayoutQ>; }
    // The buffer the P V wgmma reads.
    __device__ Element* v_mma() { return kTransposeV ? vt.data() : v.data(); }
  };

  static constexpr int kQBytes = kBlockM * kHeadDim * sizeof(Element);
  static constexpr int kKVTileBytes = kBlockN * kHeadDim * sizeof(Element);
  static constexpr int kSmemBytes = sizeof(SharedStorage);
  static_assert(kSmemBytes <= kSmemBudget, "shared memory per CTA on sm_90");
};

// Hardware named-barrier ids (0 is __syncthreads). The kernel uses none of
// CUTLASS's reserved ones, so NamedBarrierSync/Arrive take them raw.
enum class Barrier : uint32_t {
  kVTailZeroed = 1,     // every consumer warpgroup finished zeroing a V tail
  kTurnWarpgroup0 = 2,  // ping-pong turns: id 2 + warpgroup
  kQueryEmpty0 = 5,     // Q buffer b and work[b] are read (id 5 + b); the producer may reuse them
  kEpilogue0 = 7,       // a warpgroup's O buffer is free / written (id 7 + warpgroup)
  kMergeReady = 9,      // KeySplit: warpgroup 1's partial tile is in the merge buffer
  kMergeFree = 10,      // KeySplit: warpgroup 0 has read it
  kTailCollect = 11,    // TailSplit: the owner's contributions are in global memory
};
static_assert(uint32_t(Barrier::kTailCollect) < 16, "sm_90 has 16 named barriers");

__device__ __forceinline__ void NamedBarrierSync(int threads, uint32_t id) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int threads, uint32_t id) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// e4m3, for the FP8 specializations.
template <class Element>
constexpr bool kIsFp8 = std::is_same_v<Element, cutlass::float_e4m3_t>;

}  // namespace jax_fa3::hopper
