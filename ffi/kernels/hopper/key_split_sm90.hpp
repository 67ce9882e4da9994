// Two consumer warpgroups on one tile's key blocks (TileShape::kSplitKeys).
//
// A grid of about one long tile per SM (causal seed 2: 256 tiles of 1 to 8
// key blocks) takes as long as its longest tile's chain of blocks, however
// idle the rest of the GPU is. Under a split both warpgroups hold the tile's
// 64 query rows and take alternate key blocks, each with its own O and
// softmax statistics, so that chain is halved. Warpgroup 1 takes the first
// visited block (the partial, masked one) and every second after it, so the
// larger half of an odd count; warpgroup 0 takes the others, folds warpgroup
// 1's partial tile into its own and stores the result, while warpgroup 1
// goes on to the next tile.
#pragma once

#include "kernels/hopper/mainloop_fwd_sm90.hpp"
#include "kernels/hopper/partial_tile.hpp"

namespace jax_fa3::hopper {

// The key blocks one warpgroup visits, first (the highest) down to last.
struct KeyWalk {
  int first = -1;
  int last = 0;
  __device__ bool empty() const { return first < last; }
};

template <class Cfg>
struct KeySplit {
  static constexpr int kThreads = 128;  // one warpgroup
  static constexpr int kStep = Cfg::kSplitKeys ? 2 : 1;
  static constexpr uint32_t kPairThreads = 2 * kThreads;

  // How many of the tile's visited blocks precede the warpgroup's first.
  __device__ __forceinline__ static int Offset(int warpgroup) {
    return Cfg::kSplitKeys && warpgroup == 0 ? 1 : 0;
  }

  __device__ __forceinline__ static KeyWalk Walk(const KeyBlocks& blocks, int warpgroup) {
    if constexpr (!Cfg::kSplitKeys) return {blocks.hi - 1, blocks.lo};
    const int first = blocks.hi - 1 - Offset(warpgroup);
    if (first < blocks.lo) return {};
    return {first, first - (first - blocks.lo) / kStep * kStep};
  }

  // The merge buffer starts free: warpgroup 0 opens it once.
  __device__ __forceinline__ static void Start(int warpgroup) {
    if (Cfg::kSplitKeys && warpgroup == 0) NamedBarrierArrive(kPairThreads, uint32_t(Barrier::kMergeFree));
  }

  // Warpgroup 1: its rows' statistics and unnormalized O (PartialTile).
  // wt: the thread's index in the warpgroup.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Publish(typename Cfg::SharedStorage& ss, const Softmax& softmax,
                                                 const TO& o_rc, int wt) {  // o_rc: (rows, cols)
    static_assert(PartialTile<kThreads>::template kVectors<decltype(size<1>(o_rc))::value> == Cfg::kMergeVectors);
    float4* buffer = ss.merge.data() + wt;
    NamedBarrierSync(kPairThreads, uint32_t(Barrier::kMergeFree));
    PartialTile<kThreads>::Write(softmax, o_rc, [&](int i, float4 v) { buffer[i] = v; });
    NamedBarrierArrive(kPairThreads, uint32_t(Barrier::kMergeReady));
  }

  // Warpgroup 0: warpgroup 1's partial tile folded into its own.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Combine(typename Cfg::SharedStorage& ss, Softmax& softmax, TO& o_rc,
                                                 float scale_log2, int wt) {  // o_rc: (rows, cols)
    const float4* buffer = ss.merge.data() + wt;
    NamedBarrierSync(kPairThreads, uint32_t(Barrier::kMergeReady));
    PartialTile<kThreads>::Fold(softmax, o_rc, scale_log2, [&](int i) { return buffer[i]; });
    NamedBarrierArrive(kPairThreads, uint32_t(Barrier::kMergeFree));
  }
};

}  // namespace jax_fa3::hopper
