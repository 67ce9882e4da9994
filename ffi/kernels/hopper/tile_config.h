// Tile shapes, shared-memory layouts and MMAs of the Hopper forward kernel.
//
// A CTA owns kBlockM = 128 query rows of one head: two consumer warpgroups
// of 64 rows each, plus one producer warpgroup that issues the TMA loads.
// K and V stream through kStages-deep shared-memory pipelines.
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

namespace jax_fa3::hopper {

using namespace cute;

// Key-tile width and pipeline depth per head-dim bucket. Wider key tiles
// amortize the softmax's per-row work; the limit is the consumers' 240
// registers (S, P and O fragments) and 227 KB of shared memory.
template <int kHeadDim>
struct KeyTiling;
template <>
struct KeyTiling<64> {
  static constexpr int kBlockN = 192;
  static constexpr int kStages = 3;  // 160 KB
};
template <>
struct KeyTiling<128> {
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;  // 192 KB
};
template <>
struct KeyTiling<256> {
  static constexpr int kBlockN = 80;
  static constexpr int kStages = 2;  // 224 KB
};

template <class Element_, int kHeadDim_>
struct TileConfig {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kRowsPerWarpgroup = 64;  // the M of one wgmma
  static constexpr int kBlockM = kRowsPerWarpgroup * kConsumerWarpgroups;
  static constexpr int kBlockN = KeyTiling<kHeadDim>::kBlockN;
  static constexpr int kStages = KeyTiling<kHeadDim>::kStages;
  static constexpr int kConsumerThreads = 128 * kConsumerWarpgroups;
  static constexpr int kThreads = kConsumerThreads + 128;
  // setmaxnreg budgets: 128 x 24 + 256 x 240 = 64,512 of 65,536 registers.
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;
  // Warpgroups alternate their GEMM issue (see ConsumerMainloop::WaitTurn).
  static constexpr bool kPingPong = true;
  // Softmax of S(n-1) overlaps P(n) V(n) in the same warpgroup; that keeps S
  // and P live together, which head dim 256's O fragment leaves no room for.
  static constexpr bool kIntraWarpgroupOverlap = kHeadDim <= 128;

  using BlockM = Int<kBlockM>;
  using BlockN = Int<kBlockN>;
  using HeadDim = Int<kHeadDim>;
  using Stages = Int<kStages>;

  // Two warpgroups side by side along M.
  using WarpgroupLayout = Layout<Shape<Int<kConsumerWarpgroups>, _1, _1>>;
  // S = Q K^T: both operands K-major in shared memory.
  using TiledMmaQK = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<Int<kRowsPerWarpgroup>, BlockN, HeadDim>>(),
      WarpgroupLayout{}));
  // O += P V: P from registers, V read MN-major (keys are V's rows).
  using TiledMmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<Int<kRowsPerWarpgroup>, HeadDim, BlockN>,
                           GMMA::Major::K, GMMA::Major::MN>(),
      WarpgroupLayout{}));

  using SmemLayoutQ = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BlockM, HeadDim>(),
      Shape<BlockM, HeadDim>{}));
  using SmemLayoutK = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::K, Element, BlockN, HeadDim>(),
      Shape<BlockN, HeadDim, Stages>{}));
  // V^T: the same bytes as a K-major (keys, d) tile, addressed (d, keys).
  using SmemLayoutVt = decltype(tile_to_shape(
      cutlass::gemm::collective::detail::ss_smem_selector<GMMA::Major::MN, Element, HeadDim, BlockN>(),
      Shape<HeadDim, BlockN, Stages>{}, Step<_2, _1, _3>{}));

  using PipelineK = cutlass::PipelineTmaAsync<kStages>;
  using PipelineV = cutlass::PipelineTmaAsync<kStages>;

  struct SharedStorage {
    cute::array_aligned<Element, cosize_v<SmemLayoutQ>, 1024> q;
    cute::array_aligned<Element, cosize_v<SmemLayoutK>, 1024> k;
    cute::array_aligned<Element, cosize_v<SmemLayoutVt>, 1024> v;
    cutlass::arch::ClusterTransactionBarrier q_full;
    typename PipelineK::SharedStorage pipeline_k;
    typename PipelineV::SharedStorage pipeline_v;
  };

  static constexpr int kQBytes = kBlockM * kHeadDim * sizeof(Element);
  static constexpr int kKVTileBytes = kBlockN * kHeadDim * sizeof(Element);
  static constexpr int kSmemBytes = sizeof(SharedStorage);
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90");
};

// Named-barrier ids (cutlass adds its reserved offset).
enum class Barrier : uint32_t {
  kQueryEmpty = 0,  // consumers are done with sQ; the producer may reload it
  kVTailZeroed = 1, // both consumer warpgroups finished zeroing a V tail
  kTurnWarpgroup0 = 2,  // ping-pong turns; warpgroup 1 uses id 3
};

}  // namespace jax_fa3::hopper
