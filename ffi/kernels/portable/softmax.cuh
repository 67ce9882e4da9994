// Online softmax over the accumulator fragments of one warp (two rows per
// thread: g and g + 8), in the log2 domain so each weight is a single exp2.
#pragma once

#include <cmath>

#include "kernels/mask.h"

namespace jax_fa3::portable {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// exp2 as a bare MUFU.EX2; the libm exp2 adds a denormal fix-up (a compare
// and two predicated multiplies) per call. Results below 2^-126 matter
// nowhere here: they weigh against a row maximum of weight 1, and fp16 /
// bf16 P cannot hold them anyway.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Scales raw Q K^T scores, applies softcap, and masks them to -inf.
struct ScoreTransform {
  float scale;    // softmax_scale * q_descale * k_descale
  float softcap;  // 0 disables

  __device__ __forceinline__ float operator()(float qk) const {
    const float x = qk * scale;
    return (softcap > 0.f ? softcap * tanhf(x / softcap) : x) * kLog2e;
  }
};

// ScoreTransform without softcap, for loops that choose once per tile
// instead of branching per element.
struct ScaleScores {
  float scale_log2;  // ScoreTransform::scale * kLog2e

  __device__ __forceinline__ float operator()(float qk) const { return qk * scale_log2; }
};

// row0 is the warp's first (packed) tile row: with packed GQA, `pack` rows
// share one query token, row / pack, which is what the mask sees.
template <bool kMasked, int kNTiles, class Transform>
__device__ __forceinline__ void TransformAndMask(float (&s)[kNTiles][4], const Transform& f,
                                                 const Mask& mask, int row0, int col0, const FastDivisor& pack) {
  const int lane = threadIdx.x % 32;
  const int token[2] = {pack.Div(row0 + lane / 4), pack.Div(row0 + lane / 4 + 8)};
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = col0 + n * 8 + 2 * (lane % 4) + e % 2;
      s[n][e] = !kMasked || mask.Allowed(token[e / 2], col) ? f(s[n][e]) : -INFINITY;
    }
  }
}

struct OnlineSoftmax {
  float row_max[2] = {-INFINITY, -INFINITY};  // log2 units
  float row_sum[2] = {0.f, 0.f};              // this thread's columns only until Finalize

  // Turns scores into unnormalized weights and rescales the running output.
  template <int kNTiles, int kDTiles>
  __device__ __forceinline__ void Update(float (&s)[kNTiles][4], float (&o)[kDTiles][4]) {
    float correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m = row_max[r];
#pragma unroll
      for (int n = 0; n < kNTiles; ++n) m = fmaxf(m, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      // A row with nothing visible yet keeps max -inf; subtracting 0 instead
      // keeps exp2(-inf - ref) = 0 rather than NaN.
      const float ref = m == -INFINITY ? 0.f : m;
      correction[r] = Exp2(row_max[r] - ref);
      row_max[r] = m;
      float sum = row_sum[r] * correction[r];
#pragma unroll
      for (int n = 0; n < kNTiles; ++n) {
        s[n][2 * r] = Exp2(s[n][2 * r] - ref);
        s[n][2 * r + 1] = Exp2(s[n][2 * r + 1] - ref);
        sum += s[n][2 * r] + s[n][2 * r + 1];
      }
      row_sum[r] = sum;
    }
    // Rescaling the output costs a multiply per accumulator; once the running
    // maxima settle every correction is exactly 1 and the warp skips it.
    if (__any_sync(0xffffffffu, correction[0] != 1.f || correction[1] != 1.f)) {
#pragma unroll
      for (int d = 0; d < kDTiles; ++d) {
        o[d][0] *= correction[0];
        o[d][1] *= correction[0];
        o[d][2] *= correction[1];
        o[d][3] *= correction[1];
      }
    }
  }

  // Sums the row across its quad; returns the factor that normalizes the
  // output (0 for rows that saw no key) and the natural-log LSE.
  __device__ __forceinline__ void Finalize(int r, float v_scale, float* out_scale, float* lse) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    *out_scale = sum > 0.f ? v_scale / sum : 0.f;
    *lse = sum > 0.f ? row_max[r] * kLn2 + logf(sum) : -INFINITY;
  }
};

}  // namespace jax_fa3::portable
