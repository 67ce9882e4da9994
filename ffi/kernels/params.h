// Framework-free description of one attention forward call.
//
// Both the CPU implementation and the CUDA kernels consume this struct; the
// FFI handlers fill it (field by field, in one function) from XLA buffers.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace jax_fa3 {

enum class DType : int { kF16, kBF16, kF8E4M3, kF32, kS32, kUnknown };

// Per-tensor descale factors for FP8 inputs: value = stored * descale.
// Indexed as ptr[batch * batch_stride + kv_head * head_stride]; a null pointer
// means 1. A scalar descale has both strides 0.
struct Descale {
  const float* ptr = nullptr;
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
};

// Strides are in elements. For varlen problems the batch stride is 0 and rows
// are addressed through cu_seqlens.
struct TensorStrides {
  int64_t batch = 0;
  int64_t row = 0;
  int64_t head = 0;
};

struct AttentionParams {
  const void* q = nullptr;  // (batch, seqlen_q, num_heads, head_dim) or (total_q, num_heads, head_dim)
  const void* k = nullptr;  // (batch, seqlen_k, num_heads_k, head_dim) or (total_k, num_heads_k, head_dim)
  const void* v = nullptr;  // like k
  void* out = nullptr;      // like q, in out_dtype
  float* lse = nullptr;     // (batch, num_heads, seqlen_q) or (num_heads, total_q); natural log
  TensorStrides q_stride, k_stride, v_stride, out_stride;
  int64_t lse_batch_stride = 0;
  int64_t lse_head_stride = 0;

  // Varlen only (null for dense problems). cu_seqlens have batch + 1 entries.
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  const int32_t* seqused_k = nullptr;  // (batch,), may be null

  Descale q_descale, k_descale, v_descale;

  int batch = 0;
  // Dense: the per-sequence lengths. Varlen: the total token counts, which
  // bound every sequence (device data is clamped to them).
  int seqlen_q = 0;
  int seqlen_k = 0;
  int num_heads = 0;
  int num_heads_k = 0;
  int head_dim = 0;

  float softmax_scale = 0.f;
  float softcap = 0.f;      // 0 disables
  int window_left = -1;     // -1: unbounded
  int window_right = -1;    // -1: unbounded; causal is window_right = 0

  DType in_dtype = DType::kF16;
  DType out_dtype = DType::kF16;

  FA3_HD bool is_varlen() const { return cu_seqlens_q != nullptr; }
  FA3_HD int head_group() const { return num_heads / num_heads_k; }
};

}  // namespace jax_fa3
