// Which problems the Hopper kernel takes (host only, no device code: the
// dispatcher includes it in every architecture's compile).
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace jax_fa3::hopper {

// TMA needs 16-byte aligned base addresses and strides; the output is
// stored in 4-byte pairs. Problems that miss any of this, and the dtypes
// without a Hopper instantiation, run on the portable kernel.
inline bool Supported(const AttentionParams& p) {
  const bool fp8 = p.in_dtype == DType::kF8E4M3;
  if (fp8 ? (p.out_dtype != DType::kF16 && p.out_dtype != DType::kBF16) : p.out_dtype != p.in_dtype) return false;
  if (!fp8 && p.in_dtype != DType::kF16 && p.in_dtype != DType::kBF16) return false;
  if (p.seqlen_q <= 0 || p.seqlen_k <= 0 || p.head_dim > 256) return false;
  const int64_t kElemBytes = fp8 ? 1 : 2;
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  auto strides_ok = [&](const TensorStrides& s) {
    return (s.row * kElemBytes) % 16 == 0 && (s.head * kElemBytes) % 16 == 0 && (s.batch * kElemBytes) % 16 == 0;
  };
  if (!aligned(p.q) || !aligned(p.k) || !aligned(p.v)) return false;
  if (!strides_ok(p.q_stride) || !strides_ok(p.k_stride) || !strides_ok(p.v_stride)) return false;
  if (reinterpret_cast<uintptr_t>(p.out) % 4 != 0 || p.out_stride.row % 2 != 0 || p.out_stride.head % 2 != 0 ||
      p.out_stride.batch % 2 != 0) {
    return false;
  }
  return (p.head_dim * kElemBytes) % 16 == 0;
}

}  // namespace jax_fa3::hopper
