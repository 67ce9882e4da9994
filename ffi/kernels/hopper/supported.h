// Which problems the Hopper kernel takes (host only, no device code: the
// dispatcher includes it in every architecture's compile).
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace jax_fa3::hopper {

// TMA addresses a tensor whose base address and strides are 16-byte
// aligned (loads here, O's stores in launch_fwd_sm90.cuh).
inline bool TmaAligned(const void* ptr, const TensorStrides& s, int64_t elem_bytes) {
  auto aligned = [](int64_t bytes) { return bytes % 16 == 0; };
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && aligned(s.row * elem_bytes) &&
         aligned(s.head * elem_bytes) && aligned(s.batch * elem_bytes);
}

// TMA needs 16-byte aligned base addresses and strides; the output is
// stored in 4-byte pairs. Problems that miss any of this, and the dtypes
// without a Hopper instantiation, run on the portable kernel.
inline bool Supported(const AttentionParams& p) {
  const bool fp8 = p.in_dtype == DType::kF8E4M3;
  if (fp8 ? (p.out_dtype != DType::kF16 && p.out_dtype != DType::kBF16) : p.out_dtype != p.in_dtype) return false;
  if (!fp8 && p.in_dtype != DType::kF16 && p.in_dtype != DType::kBF16) return false;
  if (p.seqlen_q <= 0 || p.seqlen_k <= 0 || p.head_dim > 256) return false;
  const int64_t kElemBytes = fp8 ? 1 : 2;
  if (!TmaAligned(p.q, p.q_stride, kElemBytes) || !TmaAligned(p.k, p.k_stride, kElemBytes) ||
      !TmaAligned(p.v, p.v_stride, kElemBytes)) {
    return false;
  }
  if (reinterpret_cast<uintptr_t>(p.out) % 4 != 0 || p.out_stride.row % 2 != 0 || p.out_stride.head % 2 != 0 ||
      p.out_stride.batch % 2 != 0) {
    return false;
  }
  return (p.head_dim * kElemBytes) % 16 == 0;
}

}  // namespace jax_fa3::hopper
