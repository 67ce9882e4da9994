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
#include "kernels/hopper/softmax.hpp"

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

  // The merge buffer, thread-major in 16-byte vectors (a warp's stores and
  // loads are whole 512-byte lines): vector 0 holds a thread's row
  // statistics, vector 1 + i its O values 4i .. 4i+3 in (rows, cols) order.
  // wt: the thread's index in the warpgroup.
  template <int kCols>
  __device__ __forceinline__ static int Slot(int r, int c, int wt) {
    return (1 + (r * kCols + c) / 4) * kThreads + wt;
  }

  // Warpgroup 1: its rows' statistics and unnormalized O.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Publish(typename Cfg::SharedStorage& ss, const Softmax& softmax,
                                                 const TO& o_rc, int wt) {  // o_rc: (rows, cols)
    static_assert(decltype(size<0>(o_rc))::value == 2 && decltype(size<1>(o_rc))::value % 4 == 0);
    constexpr int kCols = decltype(size<1>(o_rc))::value;
    static_assert(2 * kCols + 4 == 4 * Cfg::kMergeVectors);
    float4* buffer = ss.merge.data();
    NamedBarrierSync(kPairThreads, uint32_t(Barrier::kMergeFree));
    buffer[wt] = make_float4(softmax.row_ref[0], softmax.row_ref[1], softmax.row_sum[0], softmax.row_sum[1]);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int c = 0; c < kCols; c += 4) {
        buffer[Slot<kCols>(r, c, wt)] =
            make_float4(o_rc(r, c), o_rc(r, c + 1), o_rc(r, c + 2), o_rc(r, c + 3));
      }
    }
    NamedBarrierArrive(kPairThreads, uint32_t(Barrier::kMergeReady));
  }

  // Warpgroup 0: both partial tiles brought to the larger reference of each
  // row and added. A row that one warpgroup saw no key of (reference -inf)
  // takes nothing from it.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Combine(typename Cfg::SharedStorage& ss, Softmax& softmax, TO& o_rc,
                                                 float scale_log2, int wt) {  // o_rc: (rows, cols)
    constexpr int kCols = decltype(size<1>(o_rc))::value;
    const float4* buffer = ss.merge.data();
    NamedBarrierSync(kPairThreads, uint32_t(Barrier::kMergeReady));
    const float4 stats = buffer[wt];
    const float other_ref[2] = {stats.x, stats.y};
    const float other_sum[2] = {stats.z, stats.w};
    float mine_scale[2], other_scale[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float ref = fmaxf(softmax.row_ref[r], other_ref[r]);
      auto factor = [&](float from) { return from == -INFINITY ? 0.f : Exp2((from - ref) * scale_log2); };
      mine_scale[r] = factor(softmax.row_ref[r]);
      other_scale[r] = factor(other_ref[r]);
      softmax.row_ref[r] = ref;
      softmax.row_sum[r] = softmax.row_sum[r] * mine_scale[r] + other_sum[r] * other_scale[r];
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int c = 0; c < kCols; c += 4) {
        const float4 v = buffer[Slot<kCols>(r, c, wt)];
        o_rc(r, c) = o_rc(r, c) * mine_scale[r] + v.x * other_scale[r];
        o_rc(r, c + 1) = o_rc(r, c + 1) * mine_scale[r] + v.y * other_scale[r];
        o_rc(r, c + 2) = o_rc(r, c + 2) * mine_scale[r] + v.z * other_scale[r];
        o_rc(r, c + 3) = o_rc(r, c + 3) * mine_scale[r] + v.w * other_scale[r];
      }
    }
    NamedBarrierArrive(kPairThreads, uint32_t(Barrier::kMergeFree));
  }
};

}  // namespace jax_fa3::hopper
