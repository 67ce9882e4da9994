// Element types of the portable kernel and their conversions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cutlass/numeric_types.h"
#include "cute/arch/mma_sm80.hpp"

namespace jax_fa3::portable {

// The MMA operand type: FP8 inputs widen exactly to float16 on load (every
// e4m3 value is a float16 value), so FP8 shares the float16 MMA path.
template <class In> struct ComputeTypeOf { using type = cutlass::half_t; };
template <> struct ComputeTypeOf<cutlass::bfloat16_t> { using type = cutlass::bfloat16_t; };

template <class Compute> struct MmaOf;
template <> struct MmaOf<cutlass::half_t> { using type = cute::SM80_16x8x16_F32F16F16F32_TN; };
template <> struct MmaOf<cutlass::bfloat16_t> { using type = cute::SM80_16x8x16_F32BF16BF16F32_TN; };

// Packs two floats into one 32-bit MMA operand register (low half first).
template <class Compute>
__device__ __forceinline__ uint32_t PackPair(float lo, float hi) {
  if constexpr (std::is_same_v<Compute, cutlass::bfloat16_t>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// Eight consecutive input elements, widened to the compute type: 16 bytes.
template <class In>
__device__ __forceinline__ uint4 LoadVec8(const In* src) {
  if constexpr (sizeof(In) == 2) {
    return *reinterpret_cast<const uint4*>(src);
  } else {
    const uint2 raw = *reinterpret_cast<const uint2*>(src);
    uint4 out;
    uint32_t* o = reinterpret_cast<uint32_t*>(&out);
    const uint32_t words[2] = {raw.x, raw.y};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const auto pair = static_cast<__nv_fp8x2_storage_t>(words[i / 2] >> (16 * (i % 2)));
      __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      o[i] = static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
    }
    return out;
  }
}

template <class Out>
__device__ __forceinline__ void StorePair(Out* dst, float lo, float hi) {
  *reinterpret_cast<uint32_t*>(dst) = PackPair<Out>(lo, hi);
}

// Four consecutive values (a merged float4 piece of a row) as two pairs.
template <class Out>
__device__ __forceinline__ void StoreQuad(Out* dst, float4 v) {
  StorePair(dst, v.x, v.y);
  StorePair(dst + 2, v.z, v.w);
}

}  // namespace jax_fa3::portable
