// The FFI signatures of the attention targets, shared by the CPU and CUDA
// handlers, and the translation of XLA buffers into BufferView.
#pragma once

#include <utility>

#include "handlers/make_params.h"
#include "xla/ffi/api/ffi.h"

namespace jax_fa3 {

namespace ffi = xla::ffi;

inline DType FromXla(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F16: return DType::kF16;
    case ffi::DataType::BF16: return DType::kBF16;
    case ffi::DataType::F8E4M3FN: return DType::kF8E4M3;
    case ffi::DataType::F32: return DType::kF32;
    case ffi::DataType::S32: return DType::kS32;
    default: return DType::kUnknown;
  }
}

inline BufferView View(const ffi::AnyBuffer& b) {
  auto dims = b.dimensions();
  return {FromXla(b.element_type()), std::vector<int64_t>(dims.begin(), dims.end()), b.untyped_data()};
}

inline BufferView View(ffi::Result<ffi::AnyBuffer>& b) { return View(*b); }

template <class B>
auto ThreeArgs(B&& binding) {
  return std::forward<B>(binding).template Arg<ffi::AnyBuffer>().template Arg<ffi::AnyBuffer>().template Arg<ffi::AnyBuffer>();
}

// Operands: q, k, v, q_descale, k_descale, v_descale (absent descales are
// float32 (0,) arrays). Results: out, lse, and an int32 (n,) scratch buffer
// (the Hopper kernel's tile counter and tail split; params.h). Then the
// attributes.
template <class B>
auto DenseSignature(B&& binding) {
  return ThreeArgs(ThreeArgs(std::forward<B>(binding)))
      .template Ret<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template Attr<float>("softmax_scale")
      .template Attr<bool>("causal")
      .template Attr<int64_t>("window_left")
      .template Attr<int64_t>("window_right")
      .template Attr<float>("softcap");
}

// Operands: q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k (int32 (0,) when
// absent), q_descale, k_descale, v_descale; results and attributes as dense.
template <class B>
auto VarlenSignature(B&& binding) {
  return DenseSignature(ThreeArgs(std::forward<B>(binding)));
}

inline AttentionAttrs Attrs(float softmax_scale, bool causal, int64_t window_left, int64_t window_right,
                            float softcap) {
  return {softmax_scale, causal, window_left, window_right, softcap};
}

// Builds and validates the params of one call; on failure the error names
// the offending argument and shape.
inline ffi::Error Prepare(AttentionCall& call, AttentionParams* params) {
  std::string err = MakeParams(call, params);
  if (!err.empty()) return ffi::Error::InvalidArgument("jax_fa3: " + err);
  return ffi::Error::Success();
}

}  // namespace jax_fa3

namespace jax_fa3 {

inline AttentionCall DenseCall(ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer q_descale,
                               ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale,
                               ffi::Result<ffi::AnyBuffer>& out, ffi::Result<ffi::AnyBuffer>& lse,
                               ffi::Result<ffi::AnyBuffer>& scratch, const AttentionAttrs& attrs) {
  AttentionCall call;
  call.q = View(q);
  call.k = View(k);
  call.v = View(v);
  call.q_descale = View(q_descale);
  call.k_descale = View(k_descale);
  call.v_descale = View(v_descale);
  call.out = View(out);
  call.lse = View(lse);
  call.scratch = View(scratch);
  call.attrs = attrs;
  return call;
}

inline AttentionCall VarlenCall(ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                                ffi::AnyBuffer cu_seqlens_q, ffi::AnyBuffer cu_seqlens_k,
                                ffi::AnyBuffer seqused_k, ffi::AnyBuffer q_descale,
                                ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale,
                                ffi::Result<ffi::AnyBuffer>& out, ffi::Result<ffi::AnyBuffer>& lse,
                                ffi::Result<ffi::AnyBuffer>& scratch, const AttentionAttrs& attrs) {
  AttentionCall call = DenseCall(q, k, v, q_descale, k_descale, v_descale, out, lse, scratch, attrs);
  call.cu_seqlens_q = View(cu_seqlens_q);
  call.cu_seqlens_k = View(cu_seqlens_k);
  call.seqused_k = View(seqused_k);
  call.varlen = true;
  return call;
}

}  // namespace jax_fa3
