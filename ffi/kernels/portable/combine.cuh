// Split-KV combine: merges the fp32 partials of num_splits CTAs into out
// and lse. Partial s of row R has LSE l_s and normalized output O_s; the
// result is lse = log sum_s exp(l_s) and out = sum_s exp(l_s - lse) O_s.
// Splits that saw no key have l_s = -inf and weigh nothing; a row no split
// saw gets 0 and lse -inf.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>

#include "kernels/params.h"
#include "kernels/portable/numeric_sm80.cuh"
#include "kernels/portable/query_tile.cuh"
#include "kernels/split_kv.h"

namespace jax_fa3::portable {

struct CombineConfig {
  static constexpr int kWarps = 4;  // one or two per row (CombineWarpsPerRow)
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kColsPerLane = 4;  // one float4 of a partial row per lane and step
  static constexpr int kLseRegs = (kMaxSplits + 31) / 32;  // lane l holds splits l, l + 32, ...
  static constexpr int kSplitsInFlight = 16;  // partial loads issued before the first is used
};

// Loads the partials of splits [s0, s0 + min(n, kSplitsInFlight)) at column
// col (zeros past them and for columns past the head dim).
__device__ __forceinline__ void LoadSplits(const AttentionParams& p, int64_t rows, int64_t row, int s0, int n,
                                           int col, bool col_valid, float4 (&x)[CombineConfig::kSplitsInFlight]) {
  const float* part = p.split.out_accum + (s0 * rows + row) * p.head_dim + col;
  const int64_t split_stride = rows * p.head_dim;
#pragma unroll
  for (int u = 0; u < CombineConfig::kSplitsInFlight; ++u) {
    x[u] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (col_valid && u < n) x[u] = *reinterpret_cast<const float4*>(part);
    part += split_stride;
  }
}

// Rows with more splits than one batch of loads take a pair of warps, which
// load and weigh alternate batches (so up to 32 splits cost one L2 round
// trip) and add their sums through shared memory.
__host__ __device__ inline int CombineWarpsPerRow(int splits) {
  return splits > CombineConfig::kSplitsInFlight ? 2 : 1;
}

// Adds this warp's batches of the partials of splits [s0, s0 + n) (n <= 32)
// at column col, lane j holding split s0 + j's weight: batches of
// kSplitsInFlight (one after another, each split would cost a full L2 round
// trip), from the part-th, every warps_per_row-th. With first_loaded, x
// already holds the first of them.
__device__ __forceinline__ void AccumulateSplits(const AttentionParams& p, int64_t rows, int64_t row, int s0, int n,
                                                 int part, int warps_per_row, int col, bool col_valid, float weight,
                                                 bool first_loaded, float4 (&x)[CombineConfig::kSplitsInFlight],
                                                 float4* acc) {
  const int first = part * CombineConfig::kSplitsInFlight;
  for (int j = first; j < n; j += warps_per_row * CombineConfig::kSplitsInFlight) {
    if (j > first || !first_loaded) LoadSplits(p, rows, row, s0 + j, n - j, col, col_valid, x);
#pragma unroll
    for (int u = 0; u < CombineConfig::kSplitsInFlight; ++u) {
      const float w = __shfl_sync(0xffffffffu, weight, (j + u) % 32);
      acc->x += w * x[u].x;
      acc->y += w * x[u].y;
      acc->z += w * x[u].z;
      acc->w += w * x[u].w;
    }
  }
}

// The launch bound's minimum of one CTA per SM lets ptxas use 128 registers:
// by default it held the kernel at 96 and spilled the prefetched partials.
template <class Out>
__global__ void __launch_bounds__(CombineConfig::kThreads, 1) CombineSplits(const __grid_constant__ AttentionParams p) {
  __shared__ float4 pair_sums[CombineConfig::kWarps / 2][32];  // the second warp's of each pair
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int splits = p.split.num_splits;  // <= kMaxSplits (validated)
  const int warps_per_row = CombineWarpsPerRow(splits);
  const int part = warp % warps_per_row;
  const int64_t rows = OutRows(p);
  const int64_t row = int64_t{blockIdx.x} * (CombineConfig::kWarps / warps_per_row) + warp / warps_per_row;
  // Warp-uniform (the shuffles see full warps); a warp past the last row
  // still meets its pair at the barriers.
  const bool has_row = row < rows;
  const float* lse_in = p.split.lse_accum + row;  // split s at lse_in[s * rows]
  // The first partials do not depend on the LSEs: their loads go out with
  // the LSEs' instead of one L2 round trip later.
  float4 x[CombineConfig::kSplitsInFlight];
  const int first_col = lane * CombineConfig::kColsPerLane;
  const int s_first = part * CombineConfig::kSplitsInFlight;
  LoadSplits(p, rows, row, s_first, has_row ? splits - s_first : 0, first_col, first_col < p.head_dim, x);

  float part_lse[CombineConfig::kLseRegs];
  float max_lse = -INFINITY;
#pragma unroll
  for (int c = 0; c < CombineConfig::kLseRegs; ++c) {
    const int s = lane + 32 * c;
    part_lse[c] = has_row && s < splits ? lse_in[s * rows] : -INFINITY;
    max_lse = fmaxf(max_lse, part_lse[c]);
  }
  // ptxas schedules the reduction below (on the LSEs' critical path) ahead
  // of the partials' loads, which then wait a round trip more. A select that
  // never picks them (head_dim is never 0) makes it wait for them instead.
#pragma unroll
  for (int u = 0; u < CombineConfig::kSplitsInFlight; ++u) max_lse = p.head_dim == 0 ? x[u].x : max_lse;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) max_lse = fmaxf(max_lse, __shfl_xor_sync(0xffffffffu, max_lse, off));
  // A row no split saw keeps sum 0: out 0 and lse -inf.
  float sum = 0.f;
  if (max_lse > -INFINITY) {
#pragma unroll
    for (int c = 0; c < CombineConfig::kLseRegs; ++c) sum += __expf(part_lse[c] - max_lse);
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const float lse = sum > 0.f ? max_lse + __logf(sum) : -INFINITY;

  Out* out = static_cast<Out*>(p.out) + row * p.head_dim;
  constexpr int kColsPerStep = 32 * CombineConfig::kColsPerLane;
  for (int col0 = 0; col0 < p.head_dim; col0 += kColsPerStep) {
    const int col = col0 + lane * CombineConfig::kColsPerLane;
    const bool col_valid = col < p.head_dim;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    // Splits without keys (lse -inf) weigh 0 and their partials, written as
    // zeros, add nothing.
#pragma unroll
    for (int c = 0; c < CombineConfig::kLseRegs; ++c) {
      if (32 * c < splits && sum > 0.f) {
        AccumulateSplits(p, rows, row, 32 * c, min(32, splits - 32 * c), part, warps_per_row, col, col_valid,
                         __expf(part_lse[c] - lse), col0 == 0 && c == 0, x, &acc);
      }
    }
    if (warps_per_row > 1) {  // grid-uniform
      if (part == 1) pair_sums[warp / 2][lane] = acc;
      __syncthreads();
      if (part == 0) {
        const float4 other = pair_sums[warp / 2][lane];
        acc = make_float4(acc.x + other.x, acc.y + other.y, acc.z + other.z, acc.w + other.w);
      }
      __syncthreads();  // read before the next column step writes
    }
    if (has_row && part == 0 && col_valid) {
      StoreQuad(out + col, acc);
    }
  }
  if (has_row && part == 0 && lane == 0) {
    // Row R of out is (b, token, head) in (batch, seqlen_q, num_heads) order.
    const int64_t head = row % p.num_heads;
    const int64_t token = (row / p.num_heads) % p.seqlen_q;
    const int64_t b = row / (int64_t{p.num_heads} * p.seqlen_q);
    p.lse[LseOffset(p, b, token, head)] = lse;
  }
}

template <class Out>
cudaError_t LaunchCombine(const AttentionParams& p, cudaStream_t stream) {
  const int64_t rows = OutRows(p);
  const int rows_per_block = CombineConfig::kWarps / CombineWarpsPerRow(p.split.num_splits);
  const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  if (blocks == 0) return cudaSuccess;
  CombineSplits<Out><<<static_cast<unsigned>(blocks), CombineConfig::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace jax_fa3::portable
