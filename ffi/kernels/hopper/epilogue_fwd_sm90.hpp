// Writes one consumer warpgroup's rows of O and LSE straight from registers.
//
// Stores are predicated per row (rows past seqlen_q belong to the next
// varlen sequence or to nothing) and per column pair (head dims below the
// bucket width).
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/array.h"
#include "cutlass/numeric_conversion.h"
#include "kernels/hopper/tile_scheduler.hpp"

namespace jax_fa3::hopper {

using namespace cute;

// o and coord are (rows, cols) views of the O accumulator and of its
// coordinates inside the tile; out_scale = 0 writes zeros.
template <int kBlockM, int kHeadDim, class Out, int kRows, class TO, class TC>
__device__ __forceinline__ void StoreTile(const AttentionParams& p, const TileInfo& tile, const TO& o,
                                          const TC& coord, const float (&out_scale)[kRows],
                                          const float (&lse)[kRows]) {
  static_assert(decltype(size<0>(o))::value == kRows);
  using Pair = cutlass::Array<Out, 2>;
  cutlass::NumericArrayConverter<Out, float, 2> convert;
  const int m0 = tile.m_block * kBlockM;
  // Columns are the thread's first column plus compile-time offsets: with the
  // row base pointer at that column, every store takes an immediate offset.
  const int thread_col0 = get<1>(coord(0, 0));
  const bool full_width = p.head_dim == kHeadDim;
  Out* out = static_cast<Out*>(p.out) + tile.batch * p.out_stride.batch + tile.head * p.out_stride.head + thread_col0;
  float* lse_out = p.lse + tile.batch * p.lse_batch_stride + tile.head * p.lse_head_stride;
#pragma unroll
  for (int r = 0; r < size<0>(o); ++r) {
    const int row = m0 + get<0>(coord(r, 0));
    if (row >= tile.seq.seqlen_q) continue;
    const int64_t token = tile.seq.q_start + row;
    Out* dst = out + token * p.out_stride.row;
#pragma unroll
    for (int c = 0; c < size<1>(o); c += 2) {
      const int offset = get<1>(coord(r, c)) - thread_col0;
      cutlass::Array<float, 2> v;
      v[0] = o(r, c) * out_scale[r];
      v[1] = o(r, c + 1) * out_scale[r];
      const Pair pair = convert(v);
      if (full_width || thread_col0 + offset < p.head_dim) *reinterpret_cast<Pair*>(dst + offset) = pair;
    }
    if (threadIdx.x % 4 == 0) lse_out[token] = lse[r];
  }
}

}  // namespace jax_fa3::hopper
