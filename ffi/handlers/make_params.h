// Turns a call's buffers and attributes into AttentionParams, validating
// every shape and dtype on the way. Shared by the CPU and CUDA handlers so
// that both reject the same inputs with the same messages. No XLA types here:
// the handlers translate ffi::AnyBuffer into BufferView first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/params.h"

namespace jax_fa3 {

// Largest value of the int32 fields params hold (lengths, windows, strides in rows).
inline constexpr int64_t kMaxInt = (int64_t{1} << 31) - 1;

struct BufferView {
  DType dtype = DType::kUnknown;
  std::vector<int64_t> dims;
  void* data = nullptr;
};

struct AttentionAttrs {
  float softmax_scale = 0.f;
  bool causal = false;
  int64_t window_left = -1;
  int64_t window_right = -1;
  float softcap = 0.f;
};

struct AttentionCall {
  BufferView q, k, v;
  BufferView cu_seqlens_q, cu_seqlens_k, seqused_k;  // varlen only; seqused_k may be empty
  BufferView q_descale, k_descale, v_descale;         // empty (0 elements) when absent
  BufferView out, lse;
  BufferView scratch;  // int32 (n,), n >= 1: the Hopper kernel's (params.h)
  AttentionAttrs attrs;
  bool varlen = false;
};

// Returns an empty string on success, else a message naming the argument.
std::string MakeParams(const AttentionCall& call, AttentionParams* params);

const char* DTypeName(DType dtype);

// Validation helpers shared by the targets' parameter builders.
std::string ShapeStr(const std::vector<int64_t>& dims);
int64_t NumElements(const BufferView& b);
std::string Describe(const char* name, const BufferView& b);  // e.g. "q float16(2, 1, 8, 64)"
bool Is16Bit(DType t);
// Absent (0 elements), a float32 scalar or (batch, heads_k): fills `out`.
std::string CheckDescale(const char* name, const BufferView& b, int batch, int heads_k, DType in_dtype,
                         Descale* out);
std::string CheckInt32Vector(const char* name, const BufferView& b, int64_t expected_len);
// Descales, softmax scale, softcap, window and dtypes: the part of params
// every target fills alike, after p->batch and p->num_heads_k.
std::string FillScoreRule(const AttentionAttrs& attrs, const BufferView& q_descale, const BufferView& k_descale,
                          const BufferView& v_descale, DType in, DType out, AttentionParams* p);

}  // namespace jax_fa3
