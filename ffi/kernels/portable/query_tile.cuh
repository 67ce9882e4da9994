// The query rows of one CTA of the portable kernels and their loading.
#pragma once

#include "cute/arch/copy_sm80.hpp"

#include "kernels/params.h"
#include "kernels/rotary.h"

namespace jax_fa3::portable {

// The query rows of one CTA's tile. Tile row r is packed row m0 + r of the
// sequence: token (m0 + r) / pack, head head0 + (m0 + r) % pack. Without
// packed GQA pack = 1 and head0 is the CTA's head.
struct QueryTile {
  int m0;
  int rows;  // packed rows of the sequence: seqlen_q * pack
  FastDivisor pack;
  int head0;

  __device__ __forceinline__ int Token(int r) const { return pack.Div(m0 + r); }
  __device__ __forceinline__ int Head(int r) const { return head0 + m0 + r - Token(r) * pack.divisor; }
};

// Rows of out (and of each split's partials): batch * seqlen_q * num_heads.
FA3_HD int64_t OutRows(const AttentionParams& p) {
  return int64_t{p.batch} * p.seqlen_q * p.num_heads;
}

// Row of (batch, token, head) in each split's partials (and LSEs): out's
// rows in order. Splits are dense-only (CanSplit), so the batch counts.
__device__ __forceinline__ int64_t SplitRow(const AttentionParams& p, int batch, int64_t token, int head) {
  return (int64_t{batch} * p.seqlen_q + token) * p.num_heads + head;
}

// Element offset of (batch, token, head) in out.
__device__ __forceinline__ int64_t OutOffset(const AttentionParams& p, int batch, int64_t token, int head) {
  return batch * p.out_stride.batch + token * p.out_stride.row + head * p.out_stride.head;
}

// Offset of (batch, token, head) in lse.
__device__ __forceinline__ int64_t LseOffset(const AttentionParams& p, int64_t batch, int64_t token, int64_t head) {
  return batch * p.lse_batch_stride + head * p.lse_head_stride + token;
}

// Rotates the loaded query tile in shared memory (rotary embedding at each
// row's absolute position). Waits for the tile's copies first.
template <class Cfg, class Compute>
__device__ __forceinline__ void RotateQueryTile(Compute* sQ, const AttentionParams& p, int batch,
                                                const QueryTile& t) {
  cute::cp_async_wait<0>();
  __syncthreads();
  const int half = p.rotary.rotary_dim / 2;
  for (int item = threadIdx.x; item < Cfg::kBlockM * half; item += Cfg::kThreads) {
    const int r = item / half;
    const int pair = item % half;
    if (t.m0 + r >= t.rows) continue;
    int d0, d1;
    RotaryPairDims(p.rotary, pair, &d0, &d1);
    const int idx = RotaryIndex(p.rotary, NewTokenPosition(p, batch, t.Token(r)), pair);
    Compute* row = sQ + r * Cfg::kSmemStride;  // (kHeadDim)
    float y0, y1;
    RotatePair(static_cast<float>(row[d0]), static_cast<float>(row[d1]), p.rotary.cos[idx], p.rotary.sin[idx],
               &y0, &y1);
    row[d0] = Compute(y0);
    row[d1] = Compute(y1);
  }
  __syncthreads();
}

}  // namespace jax_fa3::portable
