// Global-to-shared tile loads and the two per-warp GEMMs of the portable
// kernel. Fragment layouts are those of mma.m16n8k16 (PTX ISA): with
// g = lane / 4 and t = lane % 4, accumulator element e of an 8-column tile
// holds (row g + 8 * (e / 2), column 2 t + e % 2).
#pragma once

#include <cstdint>

#include <type_traits>

#include "cute/arch/copy_sm75.hpp"
#include "cute/arch/copy_sm80.hpp"
#include "kernels/portable/numeric_sm80.cuh"

namespace jax_fa3::portable {

// Copies rows [0, rows_valid) x columns [0, head_dim) of a global tile into
// shared memory as Compute, zero-filling the rest of the kRows x kHeadDim tile
// so that padded rows and columns contribute nothing to either GEMM.
// `row_ptr(r)` gives the global address of tile row r (rows need not be
// evenly spaced: packed GQA and paged caches). Every load is issued before
// the first store: interleaved, each store could alias the next load and the
// loads would run one at a time.
template <class Cfg, int kRows, class RowPtr, class Compute>
__device__ __forceinline__ void LoadTile(Compute* smem, const RowPtr& row_ptr, int rows_valid, int head_dim) {
  constexpr int kVecsPerRow = Cfg::kHeadDim / Cfg::kVecElems;
  constexpr int kVecs = kRows * kVecsPerRow;
  constexpr int kPerThread = (kVecs + Cfg::kThreads - 1) / Cfg::kThreads;
  uint4 values[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int vec = i * Cfg::kThreads + threadIdx.x;
    const int row = vec / kVecsPerRow;
    const int col = (vec % kVecsPerRow) * Cfg::kVecElems;
    values[i] = make_uint4(0, 0, 0, 0);
    if (vec < kVecs && row < rows_valid && col < head_dim) values[i] = LoadVec8(row_ptr(row) + col);
  }
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int vec = i * Cfg::kThreads + threadIdx.x;
    if (vec < kVecs) {
      *reinterpret_cast<uint4*>(smem + (vec / kVecsPerRow) * Cfg::kSmemStride +
                                (vec % kVecsPerRow) * Cfg::kVecElems) = values[i];
    }
  }
}

// Starts loading a tile as LoadTile would. 16-bit inputs go straight to
// shared memory with cp.async (zero-filled where out of range) and complete
// at the next cp_async_wait; FP8 inputs need widening and load synchronously.
template <class Cfg, int kRows, class In, class RowPtr, class Compute>
__device__ __forceinline__ void StartTileLoad(Compute* smem, const RowPtr& row_ptr, int rows_valid, int head_dim) {
  if constexpr (std::is_same_v<In, Compute>) {
    constexpr int kVecsPerRow = Cfg::kHeadDim / Cfg::kVecElems;
    constexpr int kVecs = kRows * kVecsPerRow;
#pragma unroll
    for (int i = 0; i < (kVecs + Cfg::kThreads - 1) / Cfg::kThreads; ++i) {
      const int vec = i * Cfg::kThreads + threadIdx.x;
      if (vec < kVecs) {
        const int row = vec / kVecsPerRow;
        const int col = (vec % kVecsPerRow) * Cfg::kVecElems;
        const bool in_range = row < rows_valid && col < head_dim;
        // Out of range: 0 bytes are read and the 16 bytes are zero-filled
        // (the source must still be a valid address: row 0's).
        const In* src = in_range ? row_ptr(row) + col : row_ptr(0);
        cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<cute::uint128_t>::copy(
            *reinterpret_cast<const cute::uint128_t*>(src),
            *reinterpret_cast<cute::uint128_t*>(smem + row * Cfg::kSmemStride + col), in_range);
      }
    }
    cute::cp_async_fence();
  } else {
    LoadTile<Cfg, kRows>(smem, row_ptr, rows_valid, head_dim);
  }
}

// The 16-row slice of a row-major shared tile that ldmatrix.x4 reads as four
// 8x8 matrices: rows r0 + (lane % 16), columns c0 + 8 * (lane / 16).
template <class Cfg, class Compute>
__device__ __forceinline__ const cute::uint128_t& LdsmAddrA(const Compute* tile, int r0, int c0) {
  const int lane = threadIdx.x % 32;
  return *reinterpret_cast<const cute::uint128_t*>(tile + (r0 + lane % 16) * Cfg::kSmemStride + c0 +
                                                   8 * (lane / 16));
}

// S (16 x kBlockN) = Q K^T for the 16 query rows at sQ. K is stored
// [key][dim], which is already the "col" B operand, so a plain ldmatrix
// yields it.
template <class Cfg, class Compute>
__device__ __forceinline__ void WarpScores(const Compute* sQ, const Compute* sK,
                                           float (&s)[Cfg::kBlockN / 8][4]) {
  using Mma = typename MmaOf<Compute>::type;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < Cfg::kBlockN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < Cfg::kHeadDim / 16; ++kk) {
    uint32_t a[4];
    cute::SM75_U32x4_LDSM_N::copy(LdsmAddrA<Cfg>(sQ, 0, kk * 16), a[0], a[1],
                                  a[2], a[3]);
#pragma unroll
    for (int np = 0; np < Cfg::kBlockN / 16; ++np) {
      // Matrices: (keys +0, dims +0), (+0, +8), (+8, +0), (+8, +8).
      const Compute* addr = sK + (np * 16 + lane % 8 + 8 * (lane / 16)) * Cfg::kSmemStride + kk * 16 +
                            8 * ((lane / 8) % 2);
      uint32_t b[4];
      cute::SM75_U32x4_LDSM_N::copy(*reinterpret_cast<const cute::uint128_t*>(addr), b[0], b[1], b[2],
                                    b[3]);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float(&c)[4] = s[2 * np + half];
        Mma::fma(c[0], c[1], c[2], c[3], a[0], a[1], a[2], a[3], b[2 * half], b[2 * half + 1], c[0],
                 c[1], c[2], c[3]);
      }
    }
  }
}

// O (16 x kHeadDim) += P V with P taken straight from the score registers:
// two adjacent 8-column accumulator tiles form one 16x16 A operand.
template <class Cfg, class Compute>
__device__ __forceinline__ void WarpAccumulatePV(const float (&p)[Cfg::kBlockN / 8][4], const Compute* sV,
                                                 float (&o)[Cfg::kHeadDim / 8][4]) {
  using Mma = typename MmaOf<Compute>::type;
#pragma unroll
  for (int kk = 0; kk < Cfg::kBlockN / 16; ++kk) {
    const uint32_t a[4] = {PackPair<Compute>(p[2 * kk][0], p[2 * kk][1]),
                           PackPair<Compute>(p[2 * kk][2], p[2 * kk][3]),
                           PackPair<Compute>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                           PackPair<Compute>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < Cfg::kHeadDim / 16; ++dp) {
      // V is [key][dim]; the transposing ldmatrix yields the "col" B operand.
      uint32_t b[4];
      cute::SM75_U16x8_LDSM_T::copy(LdsmAddrA<Cfg>(sV, kk * 16, dp * 16), b[0], b[1], b[2], b[3]);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float(&c)[4] = o[2 * dp + half];
        Mma::fma(c[0], c[1], c[2], c[3], a[0], a[1], a[2], a[3], b[2 * half], b[2 * half + 1], c[0],
                 c[1], c[2], c[3]);
      }
    }
  }
}

}  // namespace jax_fa3::portable
