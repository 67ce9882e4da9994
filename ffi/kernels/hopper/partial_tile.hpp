// A consumer's partial tile: its rows' softmax statistics and unnormalized
// O over some of the tile's key blocks, as one thread leaves them for
// another that holds the same rows of the same tile and folds them into its
// own. The key split (key_split_sm90.hpp) passes one between the two
// warpgroups of a CTA through shared memory, the tail split
// (tail_split_sm90.hpp) between CTAs through global memory.
#pragma once

#include <cmath>

#include "kernels/hopper/softmax.hpp"

namespace jax_fa3::hopper {

// The buffer is thread-major in 16-byte vectors, so that a warp's stores and
// loads are whole 512-byte lines: vector 0 holds a thread's row statistics,
// vector 1 + i its O values 4i .. 4i+3 in (rows, cols) order. Vector v of
// thread t is element v * kThreads + t, for the kThreads threads that share
// the buffer; the caller's accessors add t, once.
template <int kThreads>
struct PartialTile {
  template <int kCols>
  static constexpr int kVectors = 1 + 2 * kCols / 4;

  template <int kCols>
  __device__ __forceinline__ static constexpr int Vector(int r, int c) {
    return (1 + (r * kCols + c) / 4) * kThreads;
  }

  // store(v * kThreads, value) writes the thread's vector v.
  template <class Softmax, class TO, class StoreVector>
  __device__ __forceinline__ static void Write(const Softmax& softmax, const TO& o_rc, StoreVector&& store) {  // o_rc: (rows, cols)
    static_assert(decltype(size<0>(o_rc))::value == 2 && decltype(size<1>(o_rc))::value % 4 == 0);
    constexpr int kCols = decltype(size<1>(o_rc))::value;
    store(0, make_float4(softmax.row_ref[0], softmax.row_ref[1], softmax.row_sum[0], softmax.row_sum[1]));
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int c = 0; c < kCols; c += 4) {
        store(Vector<kCols>(r, c), make_float4(o_rc(r, c), o_rc(r, c + 1), o_rc(r, c + 2), o_rc(r, c + 3)));
      }
    }
  }

  // Both partial tiles brought to the larger reference of each row and
  // added. A row that one side saw no key of (reference -inf) takes nothing
  // from it. load(v * kThreads) reads the thread's vector v.
  template <class Softmax, class TO, class LoadVector>
  __device__ __forceinline__ static void Fold(Softmax& softmax, TO& o_rc, float scale_log2, LoadVector&& load) {  // o_rc: (rows, cols)
    constexpr int kCols = decltype(size<1>(o_rc))::value;
    const float4 stats = load(0);
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
        const float4 v = load(Vector<kCols>(r, c));
        o_rc(r, c) = o_rc(r, c) * mine_scale[r] + v.x * other_scale[r];
        o_rc(r, c + 1) = o_rc(r, c + 1) * mine_scale[r] + v.y * other_scale[r];
        o_rc(r, c + 2) = o_rc(r, c + 2) * mine_scale[r] + v.z * other_scale[r];
        o_rc(r, c + 3) = o_rc(r, c + 3) * mine_scale[r] + v.w * other_scale[r];
      }
    }
  }
};

}  // namespace jax_fa3::hopper
