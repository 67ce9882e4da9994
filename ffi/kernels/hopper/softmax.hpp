// Score masking and online softmax over wgmma accumulators.
//
// Scores stay raw (Q K^T, or tanh(...) under softcap) and the scale is folded
// into the exponent: p = exp2(s * scale_log2 - ref * scale_log2), one FFMA and
// one MUFU.EX2 per element, where ref trails the row max by at most
// kRescaleThresholdLog2 (FlashAttention-4's conditional rescaling). The
// rules match portable::OnlineSoftmax: rows that see no key yet use 0 as the
// reference, and a row that saw no key at all ends with output 0 and lse -inf.
#pragma once

#include <cmath>

#include "cute/tensor.hpp"
#include "kernels/mask.h"

namespace jax_fa3::hopper {

using namespace cute;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// exp2 on the MUFU unit alone. Flushing results below 2^-126 to zero costs
// nothing: P is rounded to 16 bits (bf16's smallest normal is 2^-126) and
// the row sum is at least 1. exp2f would add a denormal fix-up per element.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Accumulator ((2, 2, N/8), MMA_M, MMA_N) as (rows, cols) =
// ((2, MMA_M), (2, N/8, MMA_N)): each thread holds 2 rows of a warpgroup tile.
template <class Layout>
__device__ __forceinline__ constexpr auto RowColLayout(Layout l) {
  return make_layout(make_layout(get<0, 1>(l), get<1>(l)),
                     make_layout(get<0, 0>(l), get<0, 2>(l), get<2>(l)));
}

// The S accumulator reread as the A operand of a 16-bit RS wgmma:
// ((2, 2, N/8), MMA_M, MMA_N) -> ((2, 2, 2), MMA_M, N/16). Same registers, no moves:
// the accumulator of an m64nNk16 tile and the A fragment of m64n?k16 share
// their thread/value mapping once pairs of 8-column groups are merged.
template <class Layout>
__device__ __forceinline__ constexpr auto AccumulatorAsA(Layout l) {
  auto pairs = logical_divide(get<0, 2>(l), Tile<_2>{});  // ((2, N/16))
  return make_layout(make_layout(get<0, 0>(l), get<0, 1>(l), get<0, 0>(pairs)), get<1>(l),
                     coalesce(make_layout(get<0, 1>(pairs), get<2>(l))));
}

// How raw scores become logits: softcap (tanh) and the exp2 scale.
struct ScoreScale {
  float scale_log2;   // multiplies the (capped) score inside exp2; never negative
  float cap_inverse;  // softmax_scale * descales / softcap; 0 without softcap
  // A negative FP8 descale product: scores are negated so that the row max
  // of the raw scores stays the max of the logits.
  bool negate;

  __device__ __forceinline__ static ScoreScale Make(float scale, float softcap) {
    if (softcap > 0.f) return {softcap * kLog2e, scale / softcap, false};
    if (scale < 0.f) return {-scale * kLog2e, 0.f, true};
    return {scale * kLog2e, 0.f, false};
  }
};

// Softcap, in place, on a (rows, cols) view of raw scores.
template <class TS>
__device__ __forceinline__ void ApplySoftcap(TS& s, const ScoreScale& scale) {
#pragma unroll
  for (int i = 0; i < size(s); ++i) s(i) = tanhf(s(i) * scale.cap_inverse);
}

template <class TS>
__device__ __forceinline__ void NegateScores(TS& s) {
#pragma unroll
  for (int i = 0; i < size(s); ++i) s(i) = -s(i);
}

// Sets masked scores to -inf. `coord` holds each element's (row, col) inside
// the tile; row0/col0 place the tile in the sequence. A thread's columns are
// its first column plus compile-time offsets, so each row's visible key range
// is shifted into that frame once and every element costs one or two integer
// compares against constants (Mask::Allowed per element cost ~13 instructions).
template <class TS, class TC>
__device__ __forceinline__ void ApplyMask(TS& s, const TC& coord, const Mask& mask, int row0, int col0) {
  const int thread_col0 = get<1>(coord(0, 0));
#pragma unroll
  for (int r = 0; r < size<0>(s); ++r) {
    const int row = row0 + get<0>(coord(r, 0));
    int lo, hi;
    mask.KeyRange(row, row + 1, &lo, &hi);
    lo -= col0 + thread_col0;
    hi -= col0 + thread_col0;
    if (mask.left < 0) {  // lo <= 0: only the upper bound can cut
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) {
        if (get<1>(coord(r, c)) - thread_col0 >= hi) s(r, c) = -INFINITY;
      }
    } else {
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) {
        const int k = get<1>(coord(r, c)) - thread_col0;
        if (k >= hi || k < lo) s(r, c) = -INFINITY;
      }
    }
  }
}

// With kLazy, the exponent's reference moves only when a row's max exceeds
// it by more than this many powers of two, so most key blocks need no O
// rescale and the weights stay at most 2^8 = 256: exact range for fp16/bf16
// P and within e4m3's 448 for FP8 P (rounding is relative, so the precision
// is the same). Without, the reference is the running max.
constexpr float kRescaleThresholdLog2 = 8.f;

template <int kRows, bool kLazy>
struct OnlineSoftmaxSm90 {
  float row_ref[kRows];  // the exponent's reference (raw-score units)
  float row_sum[kRows];  // this thread's columns only until Finalize

  __device__ __forceinline__ void Reset() {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      row_ref[r] = -INFINITY;
      row_sum[r] = 0.f;
    }
  }

  // Turns the (rows, cols) scores into unnormalized weights. `correction` is
  // what the running output must be multiplied by; the result says whether
  // any of this thread's corrections differs from 1.
  template <class TS>
  __device__ __forceinline__ bool Update(TS& s, float scale_log2, float (&correction)[kRows]) {
    bool moved = false;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float m = kLazy ? -INFINITY : row_ref[r];
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) m = fmaxf(m, s(r, c));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      float ref = m;
      if constexpr (kLazy) {
        // The first visible key always moves it (also under a zero FP8
        // descale, where (m - -inf) * 0 would be NaN).
        const bool first = row_ref[r] == -INFINITY;
        const bool move = m > row_ref[r] && (first || (m - row_ref[r]) * scale_log2 > kRescaleThresholdLog2);
        ref = move ? m : row_ref[r];
        correction[r] = !move ? 1.f : first ? 0.f : Exp2((row_ref[r] - m) * scale_log2);
        moved |= move;
      } else {
        correction[r] = Exp2(row_ref[r] * scale_log2 - (m == -INFINITY ? 0.f : m) * scale_log2);
      }
      row_ref[r] = ref;
      const float ref_scaled = (ref == -INFINITY ? 0.f : ref) * scale_log2;
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < size<1>(s); ++c) {
        s(r, c) = Exp2(fmaf(s(r, c), scale_log2, -ref_scaled));
        sum += s(r, c);
      }
      row_sum[r] = row_sum[r] * correction[r] + sum;
    }
    return moved;
  }

  // Multiplies O by the corrections; with kLazy only when any thread of the
  // warp has one (a warp-uniform branch: the threshold leaves most blocks
  // without).
  template <class TO>
  __device__ __forceinline__ static void Rescale(TO& o, const float (&correction)[kRows], bool moved) {
    if constexpr (kLazy) {
      if (!__any_sync(0xffffffffu, moved)) return;
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int c = 0; c < size<1>(o); ++c) o(r, c) *= correction[r];
    }
  }

  // Per row: the factor that normalizes the output (0 for rows that saw no
  // key) and the natural-log LSE.
  __device__ __forceinline__ void Finalize(float scale_log2, float v_scale, float (&out_scale)[kRows],
                                           float (&lse)[kRows]) const {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float sum = row_sum[r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      out_scale[r] = sum > 0.f ? v_scale / sum : 0.f;
      lse[r] = sum > 0.f ? (row_ref[r] * scale_log2 + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
};

}  // namespace jax_fa3::hopper
